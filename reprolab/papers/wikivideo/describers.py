"""Describers: the VideoLLM role of CAG, ``describe(video, question) -> text``.

- :class:`VideoFrameDescriber`: a real video file, frames sampled uniformly with OpenCV, sent as base64 JPEG
  ``image_url`` parts (:mod:`reprolab.llm.multimodal`) to any OpenAI-compatible VLM endpoint (vLLM serving
  Qwen2.5-VL or LLaVA-Video, llama.cpp's server with a vision projector, OpenAI). The paper's VideoLLMs take
  the video itself; an endpoint that accepts only images gets ``n_frames`` of them (ours: 8, uniform over the
  whole video, the usual frame sampling of LLaVA-Video and Qwen2.5-VL at low budgets).
- :class:`SymbolicDescriber`: the study's VideoLLM with perfect perception: a text LLM reading a synthetic
  video's exact frame log (:mod:`.events`). It tests the CAG loop, not perception.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import ConfigError, MalformedFile, MissingExtra
from ...llm import LLM, CachedLLM, Completion, ResponseCache, Sampling
from .cag import load_prompt


def sample_frames(path: str | os.PathLike, n_frames: int = 8) -> list[Any]:
    """``n_frames`` RGB ``uint8`` frames (H, W, 3) at uniformly spaced indices over the whole video
    (``numpy.linspace(0, frames - 1, n)``; fewer when the video is shorter)."""
    import numpy as np

    try:
        import cv2
    except ImportError as exc:
        raise MissingExtra("opencv-python-headless", "wikivideo") from exc
    if not isinstance(n_frames, int) or n_frames < 1:
        raise ConfigError("n_frames", n_frames, "an integer >= 1")
    p = Path(path)
    if not p.is_file():
        raise MalformedFile(str(p), "no such video file", fix="pass the path of an existing video (mp4, webm, mkv, ...)")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise MalformedFile(str(p), "OpenCV cannot open it as a video", fix="pass a video file OpenCV's FFmpeg can decode")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        frames: list[Any] = []
        if count > 0:
            for idx in sorted({int(i) for i in np.linspace(0, count - 1, min(n_frames, count)).round()}):
                cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
                ok, bgr = cap.read()
                if ok and bgr is not None:
                    frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not frames:  # containers without a frame count (or a bad one): decode everything, then pick
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            every = []
            while True:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                every.append(bgr)
            if not every:
                raise MalformedFile(str(p), "no frame could be decoded (empty or corrupt video)", fix="re-encode the video (e.g. ffmpeg -i in -c:v libx264 out.mp4)")
            idx = sorted({int(i) for i in np.linspace(0, len(every) - 1, min(n_frames, len(every))).round()})
            frames = [cv2.cvtColor(every[i], cv2.COLOR_BGR2RGB) for i in idx]
        return frames
    finally:
        cap.release()


class VideoFrameDescriber:
    """``describe(video_path, question)``: the question and ``n_frames`` uniformly sampled frames (JPEG, longest
    side at most ``max_side`` px) in one user message to an OpenAI-compatible VLM (``llm``, e.g.
    ``load_llm("http://HOST/v1", model="Qwen/Qwen2.5-VL-7B-Instruct")``)."""

    def __init__(self, llm: LLM, *, n_frames: int = 8, max_side: int = 768, jpeg_quality: int = 85,
                 sampling: Sampling = Sampling(max_tokens=512), cache: str | os.PathLike | ResponseCache | None = None):
        if not isinstance(llm, LLM):
            raise ConfigError("llm", type(llm).__name__, "a reprolab.llm.LLM speaking to a VLM endpoint (load_llm('http://...'))")
        if not isinstance(n_frames, int) or n_frames < 1:
            raise ConfigError("n_frames", n_frames, "an integer >= 1")
        self.llm = CachedLLM(llm, cache) if cache is not None else llm
        self.n_frames = n_frames
        self.max_side = max_side
        self.jpeg_quality = jpeg_quality
        self.sampling = sampling
        self.last: Completion | None = None

    def messages(self, video: str | os.PathLike, question: str) -> list[dict[str, Any]]:
        from ...llm.multimodal import user_message

        frames = sample_frames(video, self.n_frames)
        return [user_message(question, frames, max_side=self.max_side, quality=self.jpeg_quality)]

    def describe(self, video: str | os.PathLike, question: str) -> str:
        (c,) = self.llm.chat(self.messages(video, question), self.sampling)
        self.last = c
        return c.text.strip()


class SymbolicDescriber:
    """``describe(video, question)`` for a :class:`.events.SyntheticVideo`: ``llm`` reads the video's exact
    frame log (``prompts/describer_v1.txt``) and answers the question (a VideoLLM with perfect perception)."""

    def __init__(self, llm: LLM, *, sampling: Sampling = Sampling(max_tokens=100), prompt: str = "describer_v1",
                 cache: str | os.PathLike | ResponseCache | None = None):
        if not isinstance(llm, LLM):
            raise ConfigError("llm", type(llm).__name__, "a reprolab.llm.LLM")
        self.llm = CachedLLM(llm, cache) if cache is not None else llm
        self.sampling = sampling
        self.system, self.user = load_prompt(prompt)
        self.last: Completion | None = None

    def describe(self, video: Any, question: str) -> str:
        log = getattr(video, "frame_log", None)
        if not isinstance(log, str) or not log.strip():
            raise ConfigError("video", type(video).__name__, "a SyntheticVideo with a frame_log (make_events())")
        q = question.strip()
        q = q[0].upper() + q[1:] if q else q
        msgs = [{"role": "system", "content": self.system}, {"role": "user", "content": self.user.format(frame_log=log, question=q)}]
        (c,) = self.llm.chat(msgs, self.sampling)
        self.last = c
        return c.text.strip()


__all__ = ["SymbolicDescriber", "VideoFrameDescriber", "sample_frames"]
