"""The study's pipeline (data, LMs, decodes, tuning, figures), built on this folder's public API.

Also used by the benchmark (``prepare_language`` gives it the same audio and LMs)."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...data import speech_text, tts
from ...errors import AssetMissing
from ...runtime import track
from ...study import run_key
from .language_models import LanguageModel, build_arpa, load_lm, normalise_text
from .tuning import tune
from .whisper_lm import FusionConfig, Hypothesis, relative_error_reduction, wer, word_errors


def cache_dir() -> Path:
    return Path(os.environ.get("REPROLAB_CACHE", Path.home() / ".cache" / "reprolab")) / "whisper_lm"


@dataclass
class LanguageData:
    language: str
    dev: list[tuple[str, Path]]  # (reference sentence, audio)
    test: list[tuple[str, Path]]
    lms: dict[str, LanguageModel]  # "id" / "ood" / "llm"
    lm_names: dict[str, str] = dataclasses.field(default_factory=dict)  # the ARPA file's content-addressed name (decode cache keys)
    voice_of: dict[str, str] = dataclasses.field(default_factory=dict)  # audio file name -> "variant@words per minute"
    coverage: dict[str, float] = dataclasses.field(default_factory=dict)  # held-out text vs the ID LM's text (hold_out)


def hold_out(corpus: list[str], held: list[str], language: str, order: int) -> tuple[list[str], dict[str, float]]:
    """LM training text without the held-out sentences: a corpus sentence is dropped when its normalised text
    (:func:`normalise_text`: lower case, no punctuation) equals a held-out one's or contains one whole (normalised
    de-duplication). Returns the kept sentences and the coverage left: the share of held-out ``order``-grams that
    still occur in the kept text (a held-out sentence shares phrases with its source, not the sentence itself)."""
    held_norm = {normalise_text(s, language) for s in held}
    kept = []
    for s in corpus:
        n = normalise_text(s, language)
        if n in held_norm or any(h in n for h in held_norm if len(h) < len(n)):
            continue
        kept.append(s)
    grams = set()
    for s in kept:
        w = normalise_text(s, language).split()
        grams.update(tuple(w[i:i + order]) for i in range(len(w) - order + 1))
    test_grams = [tuple(w[i:i + order]) for h in held_norm for w in [h.split()] for i in range(len(w) - order + 1)]
    cov = sum(g in grams for g in test_grams) / len(test_grams) if test_grams else 0.0
    return kept, {"lm_sentences": len(kept), "dropped": len(corpus) - len(kept), f"heldout_{order}gram_coverage": cov}


def _lm_file(sentences: list[str], order: int, language: str, tag: str) -> Path:
    key = run_key(sentences, order, language, "v1")  # content-addressed: shared by the study and the benchmark
    path = cache_dir() / "lms" / f"{language}-{tag}-{order}gram-{key}.arpa"
    if not path.exists():
        build_arpa(sentences, path, order=order, language=language)
    return path


def _speak(sentence: str, language: str, i: int, config: Any, rng: random.Random, seed: int) -> Path:
    """The i-th held-out sentence spoken by voice ``i mod len(voices)`` (espeak-ng variant, words per minute), with a
    seeded sox perturbation."""
    voices = getattr(config, "voices", (("", 120),))
    variant, rate = voices[i % len(voices)]
    return tts.synthesize(sentence, language, tts.random_perturbation(rng, config.perturb), seed=seed, rate_wpm=rate, variant=variant)


def prepare_language(language: str, config: Any, seed: int = 0) -> LanguageData:
    """Splits, LMs (cached ARPA files) and synthetic audio (cached WAVs) for one language.

    Held-out sentences: dev and test among the speakable (5-12-word) sentences of the in-distribution source,
    chosen by a hash of the lower-cased sentence after de-duplication (``speech_text.split_sentences``); the LM
    trains on every other sentence of that source, so no test sentence (after lower-casing) is in its text."""
    corpus = speech_text.sentences(language, speech_text.IN_DOMAIN[language])
    speakable = set(speech_text.speech_sentences(corpus))
    n_test = dict(getattr(config, "n_test_by_language", ())).get(language, config.n_test)
    held = speech_text.split_sentences(sorted(speakable), config.n_dev, n_test)
    train, coverage = hold_out(corpus, held.dev + held.test, language, config.lm_order)
    if config.lm_max_sentences:
        train = train[: config.lm_max_sentences]
    files = {"id": _lm_file(train, config.lm_order, language, "id")}
    if config.ood and language in speech_text.OUT_OF_DOMAIN:
        ood = speech_text.sentences(language, speech_text.OUT_OF_DOMAIN[language])
        ood, _ = hold_out(ood, held.dev + held.test, language, config.lm_order)
        if config.lm_max_sentences:
            ood = ood[: config.lm_max_sentences]
        files["ood"] = _lm_file(ood, config.lm_order, language, "ood")
    lms: dict[str, LanguageModel] = {k: load_lm(f) for k, f in files.items()}
    names = {k: f.name for k, f in files.items()}
    rng = random.Random(seed)
    voice_of: dict[str, str] = {}
    voices = getattr(config, "voices", (("", 120),))

    def audio(sents: list[str], offset: int) -> list[tuple[str, Path]]:
        out = []
        for i, s in enumerate(sents):
            p = _speak(s, language, offset + i, config, rng, seed)
            variant, rate = voices[(offset + i) % len(voices)]
            voice_of[p.name] = f"{variant or 'default'}@{rate}"
            out.append((s, p))
        return out

    if getattr(config, "llm", "") and language in getattr(config, "llm_languages", (language,)):
        from .language_models import LLMScorer

        lms["llm"] = LLMScorer(_shared_llm(config.llm))
        names["llm"] = config.llm
    dev = audio(held.dev, 0)
    return LanguageData(language, dev, audio(held.test, len(dev)), lms, names, voice_of, coverage)


_LLMS: dict[str, Any] = {}


def _shared_llm(name: str) -> Any:
    from ...llm import load_llm

    if name not in _LLMS:
        _LLMS[name] = load_llm(name)
    return _LLMS[name]


class DecodeCache:
    """Decoder outputs per (model, utterance, decoder configuration), appended as JSON lines and read back on a
    rerun, so an interrupted run resumes where it stopped (a torn last line is ignored)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.items: dict[str, Any] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    k, v = json.loads(line)
                except ValueError:
                    continue
                self.items[k] = v
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Any:
        return self.items.get(key)

    def put_many(self, pairs: list[tuple[str, Any]]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            for k, v in pairs:
                self.items[k] = v
                f.write(json.dumps([k, v]) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _arm_signature(arm: str, cfg: FusionConfig | None, lm_name: str, config: Any) -> str:
    if cfg is None:
        return f"plain|beam{config.beam_size}|n{config.beam_size}|cap{config.max_new_tokens}|hf-v1"
    return (f"{arm}|acc{int(cfg.accumulate_lm)}|a{cfg.alpha:.8f}|b{cfg.beta:.8f}|{lm_name}|beam{config.beam_size}"
            f"|cap{config.max_new_tokens}|hf-v1")


def _decode(w: Any, items: list[tuple[str, Path]], language: str, arms: dict[str, tuple[FusionConfig | None, Any, str]],
            config: Any, cache: DecodeCache, label: str) -> dict[str, list[dict[str, Any]]]:
    """Every arm's output on every utterance: ``arms`` maps an arm name to (fusion config or None for plain
    Whisper with its 5-best, LM, LM name). The encoder runs once per batch that misses any arm; cached outputs
    are reused. Returns arm -> per utterance {"hyps": [(tokens, text, logprob), ...], "seconds": s}."""
    out: dict[str, list[Any]] = {a: [None] * len(items) for a in arms}
    sigs = {a: _arm_signature(a, cfg, lm_name, config) for a, (cfg, _lm, lm_name) in arms.items()}
    keys = [f"{w.name}|{language}|{Path(a).name}" for _s, a in items]
    for a in arms:
        for i, k in enumerate(keys):
            out[a][i] = cache.get(f"{k}|{sigs[a]}")
    b = max(1, config.batch)
    for start in track(range(0, len(items), b), label):
        idx = list(range(start, min(start + b, len(items))))
        missing = [a for a in arms if any(out[a][i] is None for i in idx)]
        if not missing:
            continue
        t0 = time.perf_counter()
        enc = w.encode([items[i][1] for i in idx])
        enc_s = (time.perf_counter() - t0) / len(idx)
        for a in missing:
            cfg, lm, _name = arms[a]
            t0 = time.perf_counter()
            if cfg is None:
                res = w.search(enc, language, config=FusionConfig(beam_size=config.beam_size), n_best=config.beam_size,
                               max_new_tokens=config.max_new_tokens)
            else:
                res = w.search(enc, language, lm=lm, config=cfg, n_best=1, max_new_tokens=config.max_new_tokens)
            sec = (time.perf_counter() - t0) / len(idx)
            pairs = []
            for i, hyps in zip(idx, res):
                v = {"hyps": [[list(h.tokens), h.text, h.logprob] for h in hyps], "seconds": sec, "encoder_seconds": enc_s}
                out[a][i] = v
                pairs.append((f"{keys[i]}|{sigs[a]}", v))
            cache.put_many(pairs)
    return out


def _hyps(v: dict[str, Any]) -> list[Hypothesis]:
    return [Hypothesis(tuple(t), text, lp, lp / (len(t) + 1)) for t, text, lp in v["hyps"]]


def models_for(language: str, config: Any) -> tuple[str, ...]:
    return tuple(m for lang, m in config.models if lang == language)


def run_experiment(config: Any, run: Any) -> dict[str, Any]:
    # "utterances" keeps the raw per-utterance numbers the claims are judged on (reference words and word
    # errors of every arm on the same test utterances, and the voice that spoke each), so that
    # `reprolab rejudge` recomputes every verdict from result.json alone; the rest is for display.
    from .hf_decode import HFWhisperLM, rescore_as_search

    metrics: dict[str, Any] = {"wer": {}, "rer": {}, "tuned": {}, "seconds_per_utterance": {}, "n_words_test": {},
                               "examples": {}, "utterances": {}, "skipped_models": {}, "voices": [list(v) for v in config.voices]}
    surfaces: dict[str, Any] = {}
    cache = DecodeCache(run.checkpoints / "decodes.jsonl")
    loaded: dict[str, Any] = {}
    timing: dict[str, dict[str, list[float]]] = {}
    for lang in config.languages:
        d = prepare_language(lang, config, run.seed)
        metrics.setdefault("heldout", {})[lang] = d.coverage
        for model_name in models_for(lang, config):
            if model_name not in loaded:
                try:
                    loaded[model_name] = HFWhisperLM(model_name)
                except (RuntimeError, AssetMissing) as e:
                    metrics["skipped_models"][model_name] = str(e).splitlines()[0][:200]
                    continue
            w = loaded[model_name]
            text_of = w.view.decode
            refs_dev = [s for s, _ in d.dev]
            refs_test = [s for s, _ in d.test]
            dev = _decode(w, d.dev, lang, {"plain": (None, None, "")}, config, cache, f"{model_name} {lang} dev")["plain"]
            nb_dev = [_hyps(v) for v in dev]
            tuned: dict[str, Any] = {}
            weights: dict[str, FusionConfig] = {}
            lm_memo: dict[str, dict] = {}
            for lm_tag, lm in d.lms.items():
                for arm in (("formula", "official") if lm_tag == "id" and config.official_arm else ("formula",)):
                    acc = arm == "official"
                    memo = lm_memo.setdefault(lm_tag, {})

                    def objective(alpha: float, beta: float, lm: Any = lm, acc: bool = acc, memo: dict = memo) -> float:
                        cfg = FusionConfig(alpha=alpha, beta=beta, accumulate_lm=acc, beam_size=config.beam_size)
                        return wer(refs_dev, [rescore_as_search(h, lm, text_of, cfg, memo)[0].text for h in nb_dev], lang)

                    tag = f"{lm_tag}/{arm}"
                    tr = tune(objective, config.n_trials, storage=run.checkpoints / f"optuna-{run.key_with(model_name, lang, lm_tag, arm)}.db",
                              study_name=f"{model_name}-{lang}-{lm_tag}-{arm}", seed=run.seed,
                              alpha_range=config.alpha_range, beta_range=config.beta_range)
                    tuned[tag] = {"alpha": tr.alpha, "beta": tr.beta, "dev_wer": tr.dev_wer, "dev_wer_plain": tr.trials[0][2]}
                    surfaces[f"{model_name.replace('whisper-', '')} {lang} {tag}"] = (tr.trials, (tr.alpha, tr.beta))
                    weights[tag] = FusionConfig(alpha=tr.alpha, beta=tr.beta, accumulate_lm=acc, beam_size=config.beam_size,
                                                max_new_tokens=config.max_new_tokens)
            arms: dict[str, tuple[FusionConfig | None, Any, str]] = {"plain": (None, None, "")}
            if "id" in d.lms and model_name in config.fusion_models:
                if config.formula_arm and (lang, model_name) in config.formula_arm:
                    arms["fusion/id"] = (weights["id/formula"], d.lms["id"], d.lm_names["id"])
                if config.official_arm:
                    arms["official/id"] = (weights["id/official"], d.lms["id"], d.lm_names["id"])
            test = _decode(w, d.test, lang, arms, config, cache, f"{model_name} {lang} test")
            nb_test = [_hyps(v) for v in test["plain"]]
            hyps: dict[str, list[str]] = {"plain": [h[0].text for h in nb_test]}
            for lm_tag in d.lms:
                hyps[f"rescore/{lm_tag}"] = [rescore_as_search(h, d.lms[lm_tag], text_of, weights[f"{lm_tag}/formula"], lm_memo.get(lm_tag))[0].text
                                            for h in nb_test]
            for a in arms:
                if a != "plain":
                    hyps[a] = [v["hyps"][0][1] for v in test[a]]
            utt = {"words": [word_errors(r, r, lang)[1] for r in refs_test], "voice": [d.voice_of[a.name] for _s, a in d.test],
                   "errors": {a: [word_errors(r, h, lang)[0] for r, h in zip(refs_test, hs)] for a, hs in hyps.items()}}
            metrics["utterances"].setdefault(model_name, {})[lang] = utt
            res = {a: wer(refs_test, hs, lang) for a, hs in hyps.items()}
            metrics["wer"].setdefault(model_name, {})[lang] = res
            metrics["rer"].setdefault(model_name, {})[lang] = {a: relative_error_reduction(v, res["plain"]) for a, v in res.items() if a != "plain"}
            metrics["tuned"].setdefault(model_name, {})[lang] = tuned
            metrics["n_words_test"][lang] = sum(utt["words"])
            metrics["examples"].setdefault(model_name, {})[lang] = [{"ref": r, **{a: hs[i] for a, hs in hyps.items()}}
                                                                    for i, r in enumerate(refs_test[:3])]
            tm = timing.setdefault(model_name, {})
            tm.setdefault("encoder", []).extend(v["encoder_seconds"] for v in test["plain"])
            for a in arms:
                tm.setdefault(a.split("/")[0], []).extend(v["seconds"] for v in test[a])
    for model_name, tm in timing.items():
        metrics["seconds_per_utterance"][model_name] = {k: sum(v) / len(v) for k, v in tm.items() if v}
    if config.basque_probe:
        metrics["basque"] = _basque_probe(config, run, loaded, cache)
    _figures(metrics, surfaces, run)
    return metrics


def _basque_probe(config: Any, run: Any, loaded: dict[str, Any], cache: DecodeCache) -> dict[str, Any]:
    """Issue 21 item 5: does Whisper base hear espeak-ng's Basque voice? Plain Whisper's WER on ``basque_probe``
    held-out LibreOffice-help sentences (the same voices and perturbations as the other languages)."""
    from .hf_decode import HFWhisperLM

    try:
        corpus = speech_text.sentences("eu", speech_text.IN_DOMAIN["eu"])
    except AssetMissing as e:
        return {"ran": False, "why": e.one_line()}
    held = speech_text.split_sentences(sorted(set(speech_text.speech_sentences(corpus))), 0, config.basque_probe)
    rng = random.Random(run.seed)
    items = [(s, _speak(s, "eu", i, config, rng, run.seed)) for i, s in enumerate(held.test)]
    name = "whisper-base"
    w = loaded.get(name) or HFWhisperLM(name)
    out = _decode(w, items, "eu", {"plain": (None, None, "")}, config, cache, f"{name} eu probe")["plain"]
    hyps = [v["hyps"][0][1] for v in out]
    refs = [s for s, _ in items]
    return {"ran": True, "model": name, "n": len(items), "plain_wer": wer(refs, hyps, "eu"),
            "examples": [{"ref": r, "plain": h} for r, h in zip(refs[:3], hyps[:3])]}


def _figures(metrics: dict[str, Any], surfaces: dict[str, list], run: Any) -> None:
    from ...runtime import pyplot

    plt = pyplot()

    colours = {"plain": "tab:gray", "rescore": "tab:blue", "fusion": "tab:orange", "official": "tab:red"}
    rows = []
    for model, by_lang in metrics["wer"].items():
        for lang, res in by_lang.items():
            for k, v in res.items():
                rows.append((f"{model.replace('whisper-', '')} {lang} {k}", v, colours.get(k.split("/")[0], "tab:green")))
    if rows:
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1))
        ax.barh([r[0] for r in rows], [100 * r[1] for r in rows], color=[r[2] for r in rows])
        ax.axvline(80, color="k", lw=0.8, ls=":")
        ax.set_xlabel("WER (%) on the synthetic test split (dotted: the 80% 'hears the speech' limit)")
        ax.invert_yaxis()
        ax.set_title("WER per model x language x arm (grey plain, blue rescoring, orange formula fusion, red official fusion)", fontsize=9)
        run.save_figure(fig, "wer", "WER per Whisper model, language and arm on the same test utterances (plain beam 5; rescore/<lm>: n-best "
                        "rescoring with the ID 5-gram, the OOD one or the LLM; fusion/id: per-step fusion, accumulate_lm=False; official/id: "
                        "per-step fusion, accumulate_lm=True as the official code); synthetic espeak-ng speech")
    if surfaces:
        n = len(surfaces)
        cols = min(3, n)
        nrows = (n + cols - 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), squeeze=False)
        for ax in axes.flat[n:]:
            ax.axis("off")
        for ax, (name, (trials, chosen)) in zip(axes.flat, surfaces.items()):
            a = [t[0] for t in trials]
            b = [t[1] for t in trials]
            w = [100 * t[2] for t in trials]
            sc = ax.scatter(a, b, c=w, cmap="viridis_r", s=18)
            ax.plot(chosen[0], chosen[1], "r*", ms=12)
            ax.set_xlabel("alpha (LM weight)")
            ax.set_ylabel("beta (word bonus)")
            ax.set_title(name, fontsize=9)
            fig.colorbar(sc, ax=ax, label="dev WER (%)")
        fig.tight_layout()
        run.save_figure(fig, "optuna_surface", "Optuna trials over alpha/beta per model, language, LM and arm: dev WER of the 5-best re-ranked by that arm's search score (red star: chosen, ties to the smallest alpha + beta)")
