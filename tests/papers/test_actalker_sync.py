"""The SyncNet-like offset classifier on planted audio-visual offsets; mouth crops."""

from __future__ import annotations

import numpy as np
import pytest

from reprolab.errors import ShapeError
from reprolab.papers.actalker.sync import mouth_crops, train_offset_classifier


def _clips(n, F=24, seed=0):
    rng = np.random.default_rng(seed)
    opening = np.clip(np.cumsum(rng.normal(0, 0.4, (n, F + 4)), axis=1) % 1.0, 0, 1)  # a jumpy mouth track
    mouth = np.concatenate([opening[:, 2:-2, None] * np.ones((1, 1, 6)), rng.normal(0, 0.05, (n, F, 4))], axis=2)
    audio = np.concatenate([opening[:, 2:-2, None] * np.ones((1, 1, 3)) * 2 - 1, rng.normal(0, 0.05, (n, F, 5))], axis=2)
    return mouth.astype(np.float32), audio.astype(np.float32)


def test_the_classifier_reads_true_clips_as_in_sync_and_finds_planted_delays():
    from reprolab.runtime import torch_threads

    mouth, audio = _clips(96)
    with torch_threads(1):  # tiny MLPs: one thread is fastest
        clf = train_offset_classifier(mouth, audio, steps=150, batch=64, seed=0)
    m, a = _clips(24, seed=1)
    assert np.mean(clf.clip_offsets(m, a) == 0) >= 0.9
    delayed = np.concatenate([a[:, :2], a[:, :-2]], axis=1)  # the audio arrives 2 frames late
    assert np.mean(clf.clip_offsets(m, delayed) == -2) >= 0.8  # read as a lead of -2 frames
    shuffled = a[np.roll(np.arange(24), 1)]  # another clip's audio: no consistent offset 0
    assert np.mean(clf.clip_offsets(m, shuffled) == 0) < 0.6


def test_mouth_crops_and_bad_shapes():
    video = np.zeros((3, 3, 8, 8), np.float32)
    video[:, :, 5:7, 2:6] = 1.0
    mask = np.zeros((8, 8), bool)
    mask[5:7, 2:6] = True
    crops = mouth_crops(video, mask)
    assert crops.shape == (3, 3 * 2 * 4) and crops.min() == 1.0
    with pytest.raises(ShapeError):
        mouth_crops(video, np.zeros((8, 8), bool))
    with pytest.raises(ShapeError):
        train_offset_classifier(np.zeros((4, 5, 2)), np.zeros((4, 5, 2)))  # too few frames for span 5 and offsets +-2
