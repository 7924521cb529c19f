"""The elements-to-video data: exact tracks, identities, references in another pose, backgrounds, captions."""

from __future__ import annotations

import numpy as np
import pytest

from reprolab.data.shapes import ShapeSpec, render_scene
from reprolab.errors import ConfigError
from reprolab.papers.skyreels_a2 import (BACKGROUNDS, CAPTION_WORDS, ElementsConfig, generate_element_clips, identity_names, render_background,
                                         word_tokenizer)
from reprolab.papers.skyreels_a2.elements import DIRECTIONS, element_layer


@pytest.fixture(scope="module")
def clips():
    return generate_element_clips(12, ElementsConfig(), seed=3)


def test_clips_are_seeded_and_shaped(clips):
    again = generate_element_clips(12, ElementsConfig(), seed=3)
    assert all(np.array_equal(a.video, b.video) and a.caption == b.caption for a, b in zip(clips, again))
    other = generate_element_clips(12, ElementsConfig(), seed=4)
    assert any(not np.array_equal(a.video, b.video) for a, b in zip(clips, other))
    c = clips[0]
    assert c.video.shape == (8, 3, 32, 32) and c.video.dtype == np.float32 and 0 <= c.video.min() and c.video.max() <= 1
    assert len(c.references) == 3 and all(r.shape == (3, 32, 32) for r in c.references)


def test_tracks_move_as_the_caption_says_by_the_configured_speed(clips):
    cfg = ElementsConfig()
    for c in clips:
        names = identity_names(cfg)
        for e, (ident, d) in enumerate(zip(c.identities, c.directions)):
            assert f"a {names[ident]} moves {d}" in c.caption
            step = np.diff(c.tracks[e], axis=0)
            np.testing.assert_allclose(step, np.tile(np.asarray(DIRECTIONS[d]) * cfg.speed, (cfg.frames - 1, 1)), atol=1e-6)
        assert c.caption.endswith(f"on {c.background}")
        assert c.identities[0] != c.identities[1]
        assert np.linalg.norm(c.tracks[0] - c.tracks[1], axis=1).min() >= cfg.min_separation


def test_pixels_are_the_background_where_no_element_covers_and_the_element_where_it_does(clips):
    c = clips[1]
    free = (c.coverage.max(axis=0) == 0)  # (T, H, W)
    for t in range(c.video.shape[0]):
        np.testing.assert_allclose(c.video[t][:, free[t]], c.background_image[:, free[t]], atol=1e-6)
        top = c.coverage[-1, t] == 1  # the last element is drawn on top
        alone = render_scene([ShapeSpec(**{**c.elements[-1].__dict__, "cx": float(c.tracks[-1, t, 0]), "cy": float(c.tracks[-1, t, 1])})], 32)
        np.testing.assert_allclose(c.video[t][:, top], alone[:, top], atol=1e-6)


def test_layer_composited_on_a_uniform_background_equals_render_scene():
    spec = ShapeSpec("triangle", "red", "medium", 0.4, 0.6, "stripes")
    premult, cov = element_layer(spec, 32)
    bg = np.full((3, 32, 32), 0.1, np.float32)
    np.testing.assert_allclose(premult + bg * (1 - cov[None]), render_scene([spec], 32, background=0.1), atol=1e-5)


def test_references_are_the_elements_on_white_in_another_pose_and_the_bare_background(clips):
    cfg = ElementsConfig()
    for c in clips:
        for e, ref in enumerate(c.references[:2]):
            assert (ref[:, 0, 0] == 1).all() and (ref[:, -1, -1] == 1).all()  # white corners
            spec = c.elements[e]
            colour_px = ref.reshape(3, -1)[:, (ref < 0.99).any(axis=0).reshape(-1)]
            assert colour_px.shape[1] > 0
            clip_size = (c.coverage[e, 0] > 0.5).sum()
            ref_size = (ref < 0.99).any(axis=0).sum()
            assert ref_size != clip_size  # another size (small or large vs medium)
            assert spec.size == cfg.size
        np.testing.assert_array_equal(c.references[2], c.background_image)


def test_backgrounds_are_textured_and_distinct():
    imgs = {n: render_background(n, 32) for n in BACKGROUNDS}
    assert all(img.std() > 0.01 for img in imgs.values())
    names = list(imgs)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert np.abs(imgs[names[i]] - imgs[names[j]]).mean() > 0.02


def test_every_caption_word_is_in_the_tiny_tokenizer(clips):
    tok = word_tokenizer()
    for c in clips:
        assert tok.unk_token_id not in tok(c.caption).input_ids
    assert set(c.caption.split()) <= set(CAPTION_WORDS)


def test_bad_configs_get_typed_errors():
    with pytest.raises(ConfigError, match="shapes"):
        ElementsConfig(shapes=("hexagon",))
    with pytest.raises(ConfigError, match="speed"):
        ElementsConfig(speed=0.5)
    with pytest.raises(ConfigError, match="identities"):
        ElementsConfig(shapes=("circle",), colours=("red",))
    with pytest.raises(ConfigError, match="background"):
        render_background("lava", 32)


def test_sides_layout_centres_each_role_near_its_anchor_and_keeps_tracks_in_frame():
    from reprolab.papers.skyreels_a2.elements import SIDE_ANCHORS, SIZE_RADIUS

    cfg = ElementsConfig(frames=4, speed=0.09, caption="roles", layout="sides", jitter=0.05)
    r = SIZE_RADIUS[cfg.size]
    clips = generate_element_clips(16, cfg, seed=5)
    assert all(np.array_equal(a.video, b.video) for a, b in zip(clips, generate_element_clips(16, cfg, seed=5)))
    for c in clips:
        for role, track in enumerate(c.tracks):
            assert track.min() >= r - 1e-6 and track.max() <= 1 - r + 1e-6  # the whole track in frame
            mid = track.mean(axis=0)  # centred near the anchor unless the frame's edge clipped the start
            assert np.abs(mid - np.asarray(SIDE_ANCHORS[role])).max() <= cfg.jitter + r
        assert c.tracks[0, :, 0].mean() < c.tracks[1, :, 0].mean()  # the character on the left, the object on the right
    with pytest.raises(ConfigError, match="layout"):
        ElementsConfig(layout="diagonal")
