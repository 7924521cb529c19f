"""Benchmark ``whisper_lm``: real-time factor of plain faster-whisper (beam 5), n-best rescoring and per-step
fusion on the same synthetic utterances, with the WER of each.

Variants (Whisper base, Spanish, espeak-ng speech of held-out LibreOffice-help sentences, the study's ID 5-gram):

- ``faster-whisper beam 5``: ``WhisperModel.transcribe(audio, language, beam_size=5, without_timestamps=True,
  temperature=0, condition_on_previous_text=False, vad_filter=False)`` - what a user runs without an LM;
- ``n-best rescoring``: our encoder call + CTranslate2's beam 5 with 5 hypotheses + LM re-ranking;
- ``per-step fusion``: our encoder call + our beam search with the LM in every step (the paper's decoder);
- ``transformers beam 5`` / ``transformers per-step fusion``: the same weights read into transformers
  (``ct2_to_hf``), its KV-cached beam search without / with :class:`WhisperLMLogitsProcessor` (``hf_decode``; the
  study's decoder since v4), one utterance per call.

Each call transcribes one utterance end to end (audio file -> text); variants run round-robin
(``runtime.interleaved_timings``); the ratio column is seconds over the faster-whisper baseline; ``extra``
gives the real-time factor (seconds of compute per second of audio) and the WER of each variant over the
benchmark's utterances. alpha/beta: the study's tuned values for (base, es, ID LM) from
``runs/whisper_lm/{full,quick}/result.json`` when present, else (0.5, 1.0); the bench measures cost, its WER
on 2-6 utterances is indicative only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ...errors import AssetMissing, MissingExtra
from ...errors import StudySkipped as _Skip
from ...runtime import interleaved_timings
from ...study import Benchmark, BenchResult, bench_rows, register_bench


@dataclass(frozen=True)
class _BenchConfig:
    languages: tuple[str, ...] = ("es",)
    n_dev: int = 1
    n_test: int = 3
    lm_order: int = 5
    lm_max_sentences: int = 0
    ood: bool = False
    perturb: float = 0.3


def _tuned_weights() -> tuple[float, float, str]:
    import json
    from pathlib import Path

    for scale in ("full", "quick"):
        p = Path("runs", "whisper_lm", scale, "result.json")
        if p.exists():
            try:
                tuned = json.loads(p.read_text())["metrics"]["tuned"]["whisper-base"]["es"]
                t = tuned.get("id/formula") or tuned["id"]  # v4 names the arm; v3 had one weight pair per LM
                return float(t["alpha"]), float(t["beta"]), str(p)
            except (KeyError, ValueError):
                continue
    return 0.5, 1.0, "default (no study result on disk)"


@register_bench
class WhisperLMBench(Benchmark):
    name = "whisper_lm"
    description = "Whisper base beam 5: faster-whisper vs n-best rescoring vs per-step LM fusion (real-time factor, WER)"

    def run(self, quick: bool) -> BenchResult:
        try:
            from faster_whisper.audio import decode_audio

            from .experiment import prepare_language
            from .whisper_lm import SAMPLE_RATE, FusionConfig, WhisperLM, wer

            cfg = _BenchConfig(n_test=2 if quick else 6)
            data = prepare_language("es", cfg, seed=0)
            alpha, beta, source = _tuned_weights()
            wl = WhisperLM("whisper-base", lm=data.lms["id"], config=FusionConfig(alpha=alpha, beta=beta))
            from .hf_decode import HFWhisperLM

            hf = HFWhisperLM("whisper-base")
        except (ImportError, AssetMissing, MissingExtra) as e:
            raise _Skip(f"whisper_lm bench cannot run: {e}") from None
        items = data.test
        seconds_audio = sum(len(decode_audio(str(a), sampling_rate=SAMPLE_RATE)) / SAMPLE_RATE for _, a in items)
        outputs: dict[str, list[str]] = {"faster-whisper beam 5": [], "n-best rescoring": [], "per-step fusion": [],
                                         "transformers beam 5": [], "transformers per-step fusion": []}

        def fw_plain() -> None:
            for ref, a in items:
                segs, _ = wl.fw.transcribe(str(a), language="es", beam_size=5, without_timestamps=True, temperature=0.0,
                                           condition_on_previous_text=False, vad_filter=False)
                outputs["faster-whisper beam 5"].append(" ".join(s.text for s in segs))

        def rescore() -> None:
            for ref, a in items:
                outputs["n-best rescoring"].append(wl.transcribe(a, "es", method="rescore").text)

        def fusion() -> None:
            for ref, a in items:
                outputs["per-step fusion"].append(wl.transcribe(a, "es", method="fusion").text)

        def hf_decode(lm: bool) -> None:
            key = "transformers per-step fusion" if lm else "transformers beam 5"
            for ref, a in items:
                enc = hf.encode([a])
                outputs[key].append(hf.search(enc, "es", lm=data.lms["id"] if lm else None, config=wl.config, seconds=hf.last_seconds)[0][0].text)

        calls = {"faster-whisper beam 5": fw_plain, "n-best rescoring": rescore, "per-step fusion": fusion,
                 "transformers beam 5": lambda: hf_decode(False), "transformers per-step fusion": lambda: hf_decode(True)}
        t0 = time.perf_counter()
        times = interleaved_timings(calls, repeats=1 if quick else 3, warmup=0)
        refs = [r for r, _ in items]
        n = len(items)
        wers = {k: wer(refs, v[-n:], "es") for k, v in outputs.items()}
        rtf = {k: sorted(v)[len(v) // 2] / seconds_audio for k, v in times.items()}
        notes = {k: f"RTF {rtf[k]:.2f}, WER {wers[k]:.3f}" for k in calls}
        rows = bench_rows(times, "faster-whisper beam 5", f"{n} utterances, {seconds_audio:.1f} s audio", notes)
        return BenchResult(
            bench=self.name,
            baseline="faster-whisper beam 5",
            rows=rows,
            config={"model": "whisper-base", "language": "es", "utterances": n, "alpha": alpha, "beta": beta, "weights_from": source, "beam_size": 5,
                    "repeats": 1 if quick else 3, "threads": "REPROLAB_THREADS or CTranslate2 default"},
            extra={"real_time_factor": rtf, "wer": wers, "transcripts": {"reference": refs, **{k: v[-n:] for k, v in outputs.items()}}, "seconds_of_audio": seconds_audio, "wall_s": time.perf_counter() - t0,
                   "note": "synthetic espeak-ng speech; timings on a shared 2-core machine are noisy"},
        )
