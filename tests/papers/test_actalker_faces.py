"""The cartoon talking faces: mouth tracks from planted and espeak-ng phonemes, regions, determinism, the conflict."""

from __future__ import annotations

import numpy as np
import pytest

from reprolab.data.tts import SpokenPhoneme, espeak_available
from reprolab.errors import ConfigError
from reprolab.papers.actalker.faces import (FacesConfig, generate_talking_clips, mouth_box, mouth_track, phoneme_opening, random_identity, region_masks,
                                            render_face)


def test_phoneme_openings():
    assert phoneme_opening("p") == phoneme_opening("m") == phoneme_opening("_:") == 0.0
    assert phoneme_opening("a#") == phoneme_opening("A:") == 1.0
    assert phoneme_opening("i:") < phoneme_opening("E") < phoneme_opening("a")
    assert phoneme_opening("t") == 0.25


def test_mouth_track_on_planted_phonemes_by_hand():
    ph = [SpokenPhoneme("p", 0.0, 0.04), SpokenPhoneme("a", 0.04, 0.12), SpokenPhoneme("m", 0.12, 0.20), SpokenPhoneme("i", 0.20, 0.24)]
    track = mouth_track(ph, n_frames=4, fps=12.5)  # frames of 80 ms: [0, .08), [.08, .16), [.16, .24), [.24, .32)
    np.testing.assert_allclose(track, [(0.04 * 0 + 0.04 * 1.0) / 0.08, (0.04 * 1.0 + 0.04 * 0) / 0.08, (0.04 * 0 + 0.04 * 0.35) / 0.08, 0.0])


@pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng (make assets)")
def test_espeak_bilabials_close_the_mouth_and_vowels_open_it():
    from reprolab.data.tts import speak_with_phoneme_times

    _, _, ph = speak_with_phoneme_times("mama papa", "en", rate_wpm=80)
    names = [p.phoneme for p in ph]
    assert names[0] == "m" and "p" in names
    track = mouth_track(ph, n_frames=int(ph[-1].end * 50) + 1, fps=50.0)  # 20 ms frames
    for p in ph:
        f = int((p.start + p.end) / 2 * 50)
        if p.phoneme in ("m", "p") and p.end - p.start > 0.04:
            assert track[f] == 0.0
        if p.phoneme.startswith(("a", "A")) and p.end - p.start > 0.04:
            assert track[f] > 0.9


def test_mouth_moves_only_inside_the_mouth_mask_and_the_upper_face_only_outside_it():
    ident = random_identity(np.random.default_rng(0))
    face, mouth = region_masks(ident)
    base = render_face(ident, mouth=0.0)
    open_ = render_face(ident, mouth=1.0)
    moved = np.abs(open_ - base).max(0) > 0
    assert moved.any() and not moved[~mouth].any()
    upper = render_face(ident, mouth=0.0, blink=1.0, brow=1.0, gaze=(1.0, -1.0))
    moved = np.abs(upper - base).max(0) > 0
    assert moved.any() and not moved[mouth].any() and not moved[~face].any()


@pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng (make assets)")
def test_clips_are_seeded_and_carry_exact_targets_and_a_conflicting_mouth():
    cfg = FacesConfig(frames=10)
    a, b = generate_talking_clips(2, cfg, seed=4), generate_talking_clips(2, cfg, seed=4)
    assert all(np.array_equal(x.video, y.video) and np.array_equal(x.audio, y.audio) for x, y in zip(a, b))
    c = a[0]
    assert c.video.shape == (10, 3, 32, 32) and c.audio.shape == (int(16000 * 10 / 12.5),) and c.motion.shape == (10, 5)
    for f in range(10):  # the target frame is exactly the render of its signals
        blink, brow, gx, gy, _ = c.motion[f]
        np.testing.assert_array_equal(c.video[f], render_face(c.identity, mouth=float(c.mouth[f]), blink=float(blink), brow=float(brow),
                                                              gaze=(float(gx), float(gy))))
    assert c.sentence != c.conflict_sentence or not np.array_equal(c.mouth, c.motion[:, 4])
    with pytest.raises(ConfigError):
        FacesConfig(frames=1)


@pytest.mark.parametrize("size", [16, 24, 32])
def test_the_fixed_mouth_box_holds_every_mouth_mask_and_an_open_mouth_is_large(size):
    rng = np.random.default_rng(0)
    h, w = mouth_box(size)
    for _ in range(200):
        ident = random_identity(rng)
        _, mouth = region_masks(ident, size)
        ys, xs = np.nonzero(mouth)
        assert ys.max() - ys.min() + 1 <= h and xs.max() - xs.min() + 1 <= w
    # the audio's region must be a visible share of the face: a wide-open mouth changes >= 4% of a 32x32 frame's pixels
    if size == 32:
        ident = random_identity(np.random.default_rng(1))
        closed, open_ = render_face(ident, mouth=0.0, size=32), render_face(ident, mouth=1.0, size=32)
        assert (np.abs(open_ - closed).max(axis=0) > 0.05).mean() >= 0.04
