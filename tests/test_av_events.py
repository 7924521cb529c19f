"""data/av_events.py and data/av_io.py: planted events at exact frames and samples, negatives that change only
what their name says, mp4/wav round trips in JavisBench's layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.data.av_events import (BANDS_HZ, NEGATIVES, SPARE_BAND_HZ, AVEventsConfig, band_stop, flash_frames, generate_clip,
                                     generate_clips, make_negative)
from reprolab.data.av_io import mel_to_wave, read_pairs, read_video, read_wav, write_pair, write_video, write_wav
from reprolab.errors import ConfigError, MalformedFile, ShapeError

CFG = AVEventsConfig()


def _band_energy(audio: np.ndarray, band: tuple[float, float], sr: int = 16000, hop: int = 250) -> np.ndarray:
    """Energy per hop of ``audio`` inside ``band`` (a band-pass via FFT, then squared and summed)."""
    spec = np.fft.rfft(audio)
    f = np.fft.rfftfreq(len(audio), 1 / sr)
    spec[(f < band[0] - 50) | (f > band[1] + 50)] = 0
    x = np.fft.irfft(spec, n=len(audio))
    return (x[: len(x) // hop * hop].reshape(-1, hop) ** 2).sum(1)


def _onsets(audio: np.ndarray, band, hop: int = 250) -> list[int]:
    e = _band_energy(audio, band, hop=hop)
    on = e > 0.05 * e.max()
    return [int(i) * hop for i in np.nonzero(on & ~np.r_[False, on[:-1]])[0]]


def test_events_sit_at_the_planted_frame_and_sample():
    rng = np.random.default_rng(0)
    for _ in range(5):
        clip = generate_clip(rng, CFG)
        assert sorted(set(flash_frames(clip.video).tolist())) == sorted({e.frame for e in clip.events})
        for i, (kind, _) in enumerate(clip.shapes):
            mine = [e for e in clip.events if e.shape == i]
            assert all(e.sample == round(e.frame * 16000 / 8) for e in mine)
            track = clip.tracks[i]
            first = int(np.nonzero(np.abs(track) > 1e-6)[0][0])
            assert first == min(e.sample for e in mine) + 1  # sin(0) = 0 at the exact onset sample, nonzero right after
            assert all(BANDS_HZ[kind][0] <= e.f0 <= BANDS_HZ[kind][1] for e in mine)
        for e in clip.events:  # the caption names each event's time window
            assert ["early", "in the middle", "late"][e.word] in clip.caption
            lo, hi = CFG.window(e.word)
            assert lo <= e.frame <= hi


def _clip():
    return generate_clip(np.random.default_rng(3), CFG, kinds=("circle", "square"))


def test_each_negative_touches_one_modality_only():
    clip = _clip()
    video_kinds = {"grid_mask", "add_masklet", "video_shift", "stall"}
    for kind in NEGATIVES:
        neg = make_negative(clip, kind, np.random.default_rng(1))
        assert neg.negative == kind
        changed_v = not np.array_equal(neg.video, clip.video)
        changed_a = not np.array_equal(neg.audio, clip.audio)
        assert (changed_v, changed_a) == ((True, False) if kind in video_kinds else (False, True)), kind
    with pytest.raises(ConfigError):
        make_negative(clip, "reverse", np.random.default_rng(0))


def test_temporal_shift_keeps_the_spectrum_and_moves_the_onsets():
    clip = _clip()
    neg = make_negative(clip, "audio_shift", np.random.default_rng(1))
    assert np.allclose(np.abs(np.fft.rfft(neg.audio)), np.abs(np.fft.rfft(clip.audio)), rtol=1e-3, atol=1e-3)
    xc = np.fft.irfft(np.fft.rfft(neg.audio) * np.conj(np.fft.rfft(clip.audio)), n=len(clip.audio))
    lag = int(np.argmax(xc))
    lag = lag - len(clip.audio) if lag > len(clip.audio) // 2 else lag
    assert abs(lag) >= 2 * 2000 and lag % 2000 == 0  # whole frames, at least 2
    v = make_negative(clip, "video_shift", np.random.default_rng(1))
    assert np.allclose(np.sort(v.video, axis=0), np.sort(clip.video, axis=0))  # the same frames, in another order
    assert set(flash_frames(v.video).tolist()) != set(flash_frames(clip.video).tolist())


def test_adding_a_source_keeps_the_timing_and_deleting_one_removes_only_its_band():
    clip = _clip()
    neg = make_negative(clip, "add_source", np.random.default_rng(2))
    for kind in ("circle", "square"):
        assert _onsets(neg.audio, BANDS_HZ[kind]) == _onsets(clip.audio, BANDS_HZ[kind])
    assert _band_energy(neg.audio, SPARE_BAND_HZ).max() > 100 * _band_energy(clip.audio, SPARE_BAND_HZ).max()
    d = make_negative(clip, "delete_source", np.random.default_rng(2))
    gone = [k for k in ("circle", "square") if _band_energy(d.audio, BANDS_HZ[k]).max() < 1e-3 * _band_energy(clip.audio, BANDS_HZ[k]).max()]
    kept = [k for k in ("circle", "square") if k not in gone]
    assert len(gone) == 1 and _onsets(d.audio, BANDS_HZ[kept[0]]) == _onsets(clip.audio, BANDS_HZ[kept[0]])
    assert np.allclose(band_stop(np.zeros(100, np.float32), 16000, (100, 200)), 0)


def test_video_spatial_negatives_keep_the_flash_times_of_what_stays():
    clip = _clip()
    m = make_negative(clip, "add_masklet", np.random.default_rng(0))
    assert set(flash_frames(clip.video).tolist()) < set(flash_frames(m.video).tolist())  # one more flash, the others kept
    s = make_negative(clip, "stall", np.random.default_rng(0))
    assert len(set(flash_frames(s.video).tolist())) < len(set(flash_frames(clip.video).tolist()))


def test_generation_is_seeded_and_config_is_checked():
    a, b = generate_clips(2, CFG, seed=5), generate_clips(2, CFG, seed=5)
    assert all(np.array_equal(x.video, y.video) and np.array_equal(x.audio, y.audio) and x.caption == y.caption for x, y in zip(a, b))
    with pytest.raises(ConfigError):
        AVEventsConfig(frames=3)
    with pytest.raises(ShapeError):
        flash_frames(np.zeros((4, 16, 16)))


def test_mp4_wav_pairs_round_trip_atomically(tmp_path):
    clip = _clip()
    write_pair(tmp_path, 7, clip.video, clip.audio, fps=8, sample_rate=16000)
    (index, video, fps, audio, sr), = read_pairs(tmp_path)
    assert index == 7 and fps == 8 and sr == 16000 and video.shape == clip.video.shape
    assert np.abs(video - clip.video).mean() < 0.08 and np.abs(audio - clip.audio).max() < 1e-4
    assert flash_frames(video).tolist() == flash_frames(clip.video).tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample_0007.mp4", "sample_0007.wav"]  # no temporary files left
    (tmp_path / "sample_0008.mp4").write_bytes((tmp_path / "sample_0007.mp4").read_bytes())
    with pytest.raises(MalformedFile, match="sample_0008.wav"):
        read_pairs(tmp_path)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really")
    with pytest.raises(MalformedFile):
        read_wav(tmp_path / "bad.wav")
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(MalformedFile):
        read_video(tmp_path / "bad.mp4")
    with pytest.raises(MalformedFile):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(ShapeError):
        write_wav(tmp_path / "x.wav", np.array([np.nan], np.float32), 16000)
    with pytest.raises(ShapeError):
        write_video(tmp_path / "x.mp4", np.zeros((2, 16, 16)), 8)
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "x.mp4").exists()


def test_mel_resynthesis_keeps_the_band_envelopes():
    from reprolab.nn.audio import FrontEndConfig, log_mel

    clip = _clip()
    fe = FrontEndConfig(sample_rate=16000, n_fft=512, hop_length=320, n_mels=64, top_db=None, f_min=0.0)
    db = log_mel(torch.tensor(clip.audio), fe).numpy()
    wave = mel_to_wave(10 ** (db / 10), sample_rate=16000, hop_length=320, n_samples=len(clip.audio))
    db2 = log_mel(torch.tensor(wave), fe).numpy()
    assert np.corrcoef(db.ravel(), db2.ravel())[0, 1] > 0.7
    for kind in ("circle", "square"):
        assert _onsets(wave, BANDS_HZ[kind], hop=320) == pytest.approx(_onsets(clip.audio, BANDS_HZ[kind], hop=320), abs=640)
