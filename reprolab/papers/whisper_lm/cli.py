"""``reprolab whisper-lm ...``: transcribe with a language model fused into Whisper, or build an n-gram LM.

    reprolab whisper-lm build-lm corpus.txt --out es.arpa --order 5       # modified Kneser-Ney, ARPA
    reprolab whisper-lm transcribe a.wav b.wav --model whisper-base --lm es.arpa --language es --alpha 0.5 --beta 1
    reprolab whisper-lm transcribe talks/*.mp3 --format jsonl --out talks.jsonl      # or --format srt [--out subtitles/]
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Whisper-LM (arXiv 2503.23542): n-gram language models fused into Whisper's beam search (CTranslate2 / faster-whisper models).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(soft_wrap=True)


FORMATS = ("text", "jsonl", "srt")


def _srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def srt_cue(text: str, seconds: float, index: int = 1) -> str:
    """One SubRip cue spanning the whole utterance (Whisper-LM transcribes a file of at most 30 s as one hypothesis)."""
    return f"{index}\n{_srt_time(0.0)} --> {_srt_time(seconds)}\n{text.strip()}\n"


@app.command()
def transcribe(
    audio: list[Path] = typer.Argument(..., help="Audio files, each at most 30 s, in any format faster-whisper's decoder (PyAV) reads: wav, flac, mp3, ogg, m4a, ..."),
    model: str = typer.Option("whisper-base", "--model", help="A faster-whisper/CTranslate2 Whisper folder, or an asset name (whisper-base, whisper-small, whisper-tiny.en)."),
    lm: Optional[Path] = typer.Option(None, "--lm", help="A KenLM .arpa or .bin file (omit for plain Whisper)."),
    language: str = typer.Option("es", "--language", "-l", help="Whisper language code (es, ca, eu, gl, en, ...)."),
    alpha: float = typer.Option(0.0, "--alpha", help="LM weight (tune it: the paper's Basque tiny value is 0.3358)."),
    beta: float = typer.Option(0.0, "--beta", help="Word-count weight (Basque tiny: 0.6883)."),
    method: str = typer.Option("fusion", "--method", help="fusion (per step, the paper) | rescore (n-best) | plain."),
    beam_size: int = typer.Option(5, "--beam-size", help="Beam width (paper: 5)."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for CTranslate2 (0 = its default)."),
    fmt: str = typer.Option("text", "--format", help="text: one 'file<TAB>transcript' line per file on stdout | jsonl: one JSON object per "
                            "file (audio, text, language, method, seconds, audio_seconds) | srt: one .srt per file."),
    out: Optional[Path] = typer.Option(None, "--out", help="jsonl: the file to write (default stdout); srt: the folder for the .srt files "
                                       "(default beside each audio file). Written atomically."),
) -> None:
    """Transcribe audio files with Whisper + LM shallow fusion: a progress bar over files, then text, JSONL or SRT."""
    import json
    import time

    from ...errors import ConfigError
    from ...runtime import atomic_write_text, progress_display, track
    from .language_models import LM_FIX, readable_file
    from .whisper_lm import SAMPLE_RATE, FusionConfig, WhisperLM

    if fmt not in FORMATS:
        raise ConfigError("--format", fmt, " | ".join(FORMATS))
    if out is not None and fmt == "text":
        raise ConfigError("--out", str(out), "no --out with --format text (it prints); use --format jsonl or srt to write files")
    if (alpha or beta) and lm is None and method != "plain":
        raise ConfigError("--lm", None, "a KenLM .arpa/.bin path when --alpha or --beta is non-zero")
    # every input is checked before the model loads: a missing or unreadable file is a one-line error (exit 2)
    for a in audio:
        readable_file(a, "audio", "pass the path of a readable audio file")
    if lm is not None:
        readable_file(lm, "language-model", LM_FIX)
    wl = WhisperLM(model, lm=lm, config=FusionConfig(alpha=alpha, beta=beta, beam_size=beam_size), cpu_threads=threads or None)
    records = []
    with progress_display():
        for a in track(audio, f"transcribing {len(audio)} file(s) ({method})"):
            t0 = time.perf_counter()
            enc = wl.encode(a)
            h = wl.transcribe(a, language=language, method=method, encoded=enc)
            rec = {"audio": str(a), "text": h.text.strip(), "language": language, "method": method,
                   "seconds": round(time.perf_counter() - t0, 3), "audio_seconds": round(wl.last_audio_samples / SAMPLE_RATE, 3)}
            records.append(rec)
            if fmt == "text":
                console.print(f"{a}\t{rec['text']}", markup=False, highlight=False)
    if fmt == "jsonl":
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if out is None:
            console.print(lines, end="", markup=False, highlight=False)
        else:
            atomic_write_text(out, lines)
            console.print(f"{len(records)} transcript(s) -> {out}", markup=False, highlight=False)
    elif fmt == "srt":
        for r in records:
            target = (out / Path(r["audio"]).with_suffix(".srt").name) if out is not None else Path(r["audio"]).with_suffix(".srt")
            atomic_write_text(target, srt_cue(r["text"], r["audio_seconds"]))
            console.print(f"{r['audio']} -> {target}", markup=False, highlight=False)


@app.command("build-lm")
def build_lm(
    text: Path = typer.Argument(..., help="A UTF-8 text file, one sentence per line."),
    out: Path = typer.Option(..., "--out", help="The ARPA file to write."),
    order: int = typer.Option(5, "--order", help="n-gram order (paper: 5)."),
    language: Optional[str] = typer.Option(None, "--language", help="Language of the text (the normaliser is the same for all)."),
) -> None:
    """Estimate an interpolated modified Kneser-Ney n-gram LM on normalised text and write it as ARPA."""
    from .language_models import build_arpa, readable_file

    readable_file(text, "text", "pass a readable UTF-8 text file, one sentence per line")
    try:
        lines = [line for line in text.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        from ...errors import MalformedFile

        raise MalformedFile(str(text), f"not UTF-8 text (byte {e.start})", fix="convert it to UTF-8, one sentence per line") from None
    path = build_arpa(lines, out, order=order, language=language)
    console.print(f"{text} ({len(lines)} sentences) -> {path} ({path.stat().st_size / 1e6:.1f} MB, order {order})", markup=False, highlight=False)
