"""CUPS's OpenCV front-end on real formats: skimage's stereo_motorcycle pair and planted shifts."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2", reason="opencv-python-headless is not installed: pip install -e '.[cups]'")

from reprolab.errors import ConfigError, ShapeError  # noqa: E402
from reprolab.papers.cups import CueConfig, motorcycle_disparity_error, optical_flow, sgbm_disparity, sgbm_disparity_right, stereo_cues  # noqa: E402


def _texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    return ndimage.gaussian_filter(rng.random((h, w)), 1.0)


def test_sgbm_recovers_a_planted_disparity_both_ways():
    tex = _texture(48, 100)
    left = tex[:, 8:88]
    right = tex[:, 14:94]  # left(x) = tex(x + 8) = right(x - 6): disparity 6
    d = sgbm_disparity(left, right, CueConfig(num_disparities=16))
    assert np.median(d[:, 20:]) == pytest.approx(6.0, abs=0.25)
    dr = sgbm_disparity_right(left, right, CueConfig(num_disparities=16))
    assert np.median(dr[:, :60][dr[:, :60] > 0]) == pytest.approx(6.0, abs=0.25)


def test_flow_recovers_a_planted_shift():
    tex = _texture(48, 96, 1)
    a, b = tex[:, 4:84], tex[:, 2:82]  # content moves right by 2 px
    for method in ("dis", "farneback"):
        f = optical_flow(a, b, method)
        assert np.median(f[0, 10:-10, 10:-10]) == pytest.approx(2.0, abs=0.3)
        assert abs(np.median(f[1, 10:-10, 10:-10])) < 0.3


def test_motorcycle_disparity_error_is_reported():
    pytest.importorskip("skimage")
    r = motorcycle_disparity_error(scale=0.25)
    assert r["width"] == 185 and 0 < r["epe_px"] < 3.0 and r["density"] > 0.5


def test_stereo_cues_and_typed_errors():
    tex = _texture(32, 64)
    cues = stereo_cues(tex, tex, tex, tex, CueConfig(num_disparities=16))
    assert set(cues) == {"disparity0", "disparity0_right", "disparity1", "disparity1_right", "flow", "flow_back"}
    assert cues["flow"].shape == (2, 32, 64)
    with pytest.raises(ConfigError):
        CueConfig(num_disparities=20)
    with pytest.raises(ShapeError):
        sgbm_disparity(tex, tex[:, :10])
    with pytest.raises(ShapeError):
        optical_flow(np.zeros((2, 4, 4, 4)), np.zeros((2, 4, 4, 4)))
