"""Study ``whisper_lm``: does a 5-gram LM fused into Whisper's beam search lower WER? (arXiv 2503.23542)

Design v4 (issue 21; all offline, CPU):

- Text: Debian's LibreOffice help in English, Spanish and Catalan (in distribution, ID); dev and test sentences
  (5-12 words) held out by a hash of the sentence, then removed from the LM text by normalised de-duplication
  (a sentence equal to or containing a held-out one after lower-casing and punctuation removal is dropped;
  ``experiment.hold_out``, which also reports the held-out 5-gram coverage left). Out-of-distribution (OOD) LM
  text: English ``fortunes``, Spanish ``fortunes-es``, Catalan ``gimp-help-ca``.
- LMs: our modified Kneser-Ney 5-gram on the normalised LM text, written as ARPA and queried through KenLM.
- Speech: **synthetic**, espeak-ng reading the held-out sentences with 4 voices (default, m3, f2, m7 variants
  at 110-130 words per minute; utterance i gets voice i mod 4) and seeded sox perturbations - not recordings.
- Whisper: tiny.en (English only) and base (multilingual), CTranslate2 weights read into transformers
  (``ct2_to_hf``) and decoded by its KV-cached beam search (width 5, ``hf_decode``); claim (b) compares tiny.en
  with base on English (the only offline size pair; Whisper small's upload is truncated). Confound: tiny.en is
  English-only, base multilingual.
- Arms on every test utterance: plain beam 5 (its 5-best kept); per-step fusion with the ID LM by the official
  decoder (``accumulate_lm=True``: the LM term of every prefix added at every step, the official ``update()``;
  the paper's numbers come from it) and, for es and ca, by the paper's formula (``accumulate_lm=False``); n-best
  rescoring of the plain 5-best with the ID, OOD and (full) LLM scores.
- Tuning, fixed before the first v4 full run: per (model, language, LM, arm), Optuna TPE, ``n_trials`` trials
  over alpha, beta in [0, 5] x [0, 5] (the official lm_optimizer.py space), trial 0 = (0, 0), minimising dev WER
  of the plain 5-best re-ranked by the score that arm's search gives a hypothesis (``hf_decode.rescore_as_search``:
  the formula's score for rescoring and the formula arm, the accumulated score for the official arm). Ties in
  dev WER go to the smallest alpha + beta. A departure: the paper tunes the fused decoder itself; here the cost
  would be n_trials fused decodes of the dev set per arm.
- Basque (item 5): plain Whisper base on ``basque_probe`` espeak-ng ``eu`` utterances; a WER above 0.8 (the
  precondition of every claim) means no claim can be judged on it.

Rules: the unit of sampling is the test utterance; each rule compares two arms' per-utterance word errors,
paired, scaled by the mean reference length so that the mean difference is the corpus-WER difference
(``reprolab.stats.compare_paired``; BCa bootstrap, t below 20 utterances), or, for the size claim, the difference
of two RERs by a paired bootstrap over utterances (``compare_statistic``). Per-language RERs are supporting checks,
shown, never lifting a claim. Decode time is a metric (``seconds_per_utterance``), not a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import stats
from ...errors import AssetMissing, MissingExtra, StudySkipped
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register


VOICES = (("", 120), ("m3", 110), ("f2", 130), ("m7", 125))  # espeak-ng variant ("" = default), words per minute


@dataclass(frozen=True)
class WhisperLMStudyConfig:
    languages: tuple[str, ...] = ("en", "es", "ca")
    # (language, model) pairs decoded: claim (b) on English, tiny.en against base (the only offline size pair)
    models: tuple[tuple[str, str], ...] = (("en", "whisper-tiny.en"), ("en", "whisper-base"), ("es", "whisper-base"), ("ca", "whisper-base"))
    fusion_models: tuple[str, ...] = ("whisper-tiny.en", "whisper-base")  # models decoded with per-step fusion
    official_arm: bool = True  # per-step fusion with accumulate_lm=True (the official update(); the paper's numbers)
    formula_arm: tuple[tuple[str, str], ...] = (("es", "whisper-base"), ("ca", "whisper-base"))  # accumulate_lm=False arm
    n_dev: int = 6  # dev utterances per language (tuning)
    n_test: int = 10  # test utterances per language (every arm decodes all of them)
    n_test_by_language: tuple[tuple[str, int], ...] = ()  # overrides of n_test, e.g. (("ca", 50),)
    n_trials: int = 20  # Optuna trials per (model, language, LM, arm); the paper: 100
    alpha_range: tuple[float, float] = (0.0, 5.0)  # search space: the official lm_optimizer.py defaults
    beta_range: tuple[float, float] = (0.0, 5.0)
    lm_order: int = 5  # the paper's 5-gram
    lm_max_sentences: int = 0  # cap on LM training sentences (0 = all)
    ood: bool = True  # build and evaluate the out-of-distribution LM (claim c)
    beam_size: int = 5
    max_new_tokens: int = 64  # a fixed cap (the longest test sentence, 12 words, needs about 25 tokens)
    batch: int = 8  # utterances per batched beam search
    llm: str = ""  # the large-LM variant (reprolab.llm asset name), n-best rescoring only; "" = off
    llm_languages: tuple[str, ...] = ("es", "ca")
    perturb: float = 0.3  # sox perturbation strength (0 = clean espeak; 1 made Whisper base hallucinate)
    voices: tuple[tuple[str, int], ...] = VOICES  # test utterance i is spoken by voice i mod len(voices)
    basque_probe: int = 0  # Basque utterances decoded by plain Whisper base (item 5); 0 = off


# ----------------------------------------------------------------------------- the rules (v4, issue 21)
#
# Unit of sampling: the test utterance. Each arm's per-utterance word errors (metrics["utterances"]) are
# divided by the mean reference length of the utterances compared, so that the mean per-utterance
# difference IS the difference in corpus WER (total edits / total words); reprolab.stats.compare_paired gives
# its paired bootstrap interval (BCa; t below 20 utterances). Spanish and Catalan utterances are pooled for
# the claims on low-resource languages; English carries the size claim. Fixed before the first v4 full run.

LANGUAGES = ("es", "ca")  # pooled for in_domain, fusion_vs_rescoring and llm
OOD_LANGUAGES = ("en", "es", "ca")  # pooled for ood (Whisper base)
MAX_PLAIN_WER = 0.8  # precondition: Whisper hears the synthetic speech (at least a fifth of the words right)
FUSION_MARGIN = 0.02  # non-inferiority margin of fusion vs rescoring, in absolute WER (2 points)
BASE, TINY = "whisper-base", "whisper-tiny.en"
OFFICIAL, FORMULA = "official/id", "fusion/id"


def _arms(m: Metrics, model: str, arms: tuple[str, ...], languages: tuple[str, ...] = LANGUAGES) -> dict[str, Any] | None:
    """Per-utterance word errors of ``arms`` on the test utterances of ``languages``, pooled, scaled by the mean
    reference length; None if an arm is missing everywhere."""
    by_lang = m.get("utterances", {}).get(model, {})
    out: dict[str, Any] = {a: [] for a in arms}
    out.update(words=[], language=[])
    for lang in languages:
        u = by_lang.get(lang)
        if not u or any(a not in u["errors"] for a in arms):
            continue
        n = min(len(u["errors"][a]) for a in arms)
        for a in arms:
            out[a].extend(u["errors"][a][:n])
        out["words"].extend(u["words"][:n])
        out["language"].extend([lang] * n)
    if not out["words"]:
        return None
    mean_words = sum(out["words"]) / len(out["words"])
    out["scaled"] = {a: [e / mean_words for e in out[a]] for a in arms}
    out["wer"] = {a: sum(out[a]) / sum(out["words"]) for a in arms}
    return out


def _heard(m: Metrics, model: str, arms: tuple[str, ...], languages: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, float]]:
    """The languages whose plain WER (on the utterances every arm decoded) is within MAX_PLAIN_WER - those the claim
    pools - and the plain WER of every language that has the arms (v4: the precondition is applied per language,
    so a language Whisper does not hear is shown, not pooled)."""
    wers = {}
    for lang in languages:
        d = _arms(m, model, arms, (lang,))
        if d is not None:
            wers[lang] = d["wer"]["plain"]
    return tuple(lang for lang in languages if lang in wers and wers[lang] <= MAX_PLAIN_WER), wers


def _pooled(m: Metrics, model: str, arms: tuple[str, ...], languages: tuple[str, ...]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Arms pooled over the heard languages (all languages when none is heard: the precondition then fails), and
    the preconditions/notes: the heard languages and the plain WER of each."""
    kept, wers = _heard(m, model, arms, languages)
    d = _arms(m, model, arms, kept or languages)
    pre = (f"Whisper hears the speech in at least one language (plain WER <= {MAX_PLAIN_WER}; "
           + ", ".join(f"{lang} {w:.2f}" for lang, w in wers.items()) + ")", bool(kept))
    return d, {"pre": pre, "kept": kept, "dropped": [lang for lang in wers if lang not in kept]}


def _by_language(m: Metrics, model: str, arm: str, ref: str, languages: tuple[str, ...], margin: float = 0.0) -> str:
    """Each language's own corpus-WER difference ref - arm with its interval (also the languages not pooled)."""
    parts = []
    for lang in languages:
        d = _arms(m, model, (ref, arm), (lang,))
        if d is None or len(d["words"]) < 2:
            continue
        c = stats.compare_paired(d["scaled"][arm], d["scaled"][ref], unit=f"utterances ({lang})", direction="less", margin=margin)
        parts.append(f"{lang} {c.effect:+.3f} [{c.low:+.3f}, {c.high:+.3f}] ({c.outcome.value})")
    return "; per language: " + ", ".join(parts) if parts else ""


def _wer_of(d: dict[str, Any], arm: str, lang: str) -> float:
    idx = [i for i, x in enumerate(d["language"]) if x == lang]
    w = sum(d["words"][i] for i in idx)
    return sum(d[arm][i] for i in idx) / w if w else float("nan")


def _rer(wer_lm: float, wer_plain: float) -> float:
    return (1.0 - wer_lm / wer_plain) * 100.0 if wer_plain > 0 else 0.0


def _langs(d: dict[str, Any]) -> list[str]:
    return [lang for lang in OOD_LANGUAGES if lang in d["language"]]


def _lm_used(m: Metrics, model: str, tags: tuple[str, ...], languages: tuple[str, ...] = LANGUAGES) -> bool:
    """The method ran: tuning kept a non-zero LM weight (alpha) for one of these LM/arm tags in some language."""
    tuned = m.get("tuned", {}).get(model, {})
    return any(tuned.get(lang, {}).get(t, {}).get("alpha", 0.0) > 0 for lang in languages for t in tags)


def _hears(d: dict[str, Any], arm: str = "plain", who: str = "Whisper") -> tuple[str, bool]:
    return f"{who} hears the speech (plain WER <= {MAX_PLAIN_WER} on these utterances)", d["wer"][arm] <= MAX_PLAIN_WER


def _per_language(d: dict[str, Any], arm: str, ref: str = "plain") -> str:
    return ", ".join(f"{lang} {_wer_of(d, ref, lang):.3f} -> {_wer_of(d, arm, lang):.3f} (RER {_rer(_wer_of(d, arm, lang), _wer_of(d, ref, lang)):+.1f}%)"
                     for lang in _langs(d))


def _in_domain(m: Metrics, arm: str, tag: str, what: str) -> Judgement:
    if _arms(m, BASE, ("plain", arm)) is None:
        return Judgement.not_run(f"no {what} decodes with the ID LM")
    d, info = _pooled(m, BASE, ("plain", arm), LANGUAGES)
    pooled = "+".join(info["kept"]) or "+".join(LANGUAGES)
    c = stats.compare_paired(d["scaled"][arm], d["scaled"]["plain"], unit=f"utterances ({pooled})", direction="less", margin=0.0,
                             label=f"corpus WER, plain Whisper base - {what} with the ID 5-gram")
    ours = (f"WER {d['wer']['plain']:.3f} -> {d['wer'][arm]:.3f} (RER {_rer(d['wer'][arm], d['wer']['plain']):+.1f}%) "
            f"over {len(d['words'])} utterances ({pooled}); {_per_language(d, arm)}"
            + (f"; not pooled (plain WER > {MAX_PLAIN_WER}): {', '.join(info['dropped'])}" if info["dropped"] else "")
            + _by_language(m, BASE, arm, "plain", LANGUAGES))
    supporting = {}
    if "es" in _langs(d):
        supporting["es: RER > 0 (paper +18..25%)"] = _wer_of(d, arm, "es") < _wer_of(d, "plain", "es")
    if "ca" in _langs(d):
        supporting["ca: RER >= 0 (paper 0..14%)"] = _wer_of(d, arm, "ca") <= _wer_of(d, "plain", "ca")
    return Judgement.from_headline(ours, c, supporting=supporting,
                                   preconditions=dict([info["pre"], (f"tuning kept the ID LM in the decoder (alpha > 0, {tag})", _lm_used(m, BASE, (tag,)))]))


def _judge_in_domain(m: Metrics) -> Judgement:
    return _in_domain(m, OFFICIAL, "id/official", "per-step fusion, official decoder (accumulate_lm=True)")


def _judge_in_domain_formula(m: Metrics) -> Judgement:
    return _in_domain(m, FORMULA, "id/formula", "per-step fusion, the paper's formula (accumulate_lm=False)")


def _rer_statistic(x: np.ndarray) -> float:
    """RER (%) of the LM arm over plain from per-utterance rows (plain errors, LM errors, words)."""
    plain = float(x[:, 0].sum())
    return (1.0 - float(x[:, 1].sum()) / plain) * 100.0 if plain > 0 else 0.0


def _judge_size(m: Metrics) -> Judgement:
    tiny = _arms(m, TINY, ("plain", OFFICIAL), ("en",))
    base = _arms(m, BASE, ("plain", OFFICIAL), ("en",))
    if tiny is None or base is None:
        why = m.get("skipped_models", {})
        return Judgement.not_run(f"English fusion decodes missing for tiny.en or base ({why})" if why else "English fusion decodes missing for tiny.en or base")
    if tiny["words"] != base["words"]:
        return Judgement.not_run("tiny.en and base were not decoded on the same utterances")
    rows = lambda d: np.array([d["plain"], d[OFFICIAL], d["words"]], dtype=float).T  # noqa: E731
    c = stats.compare_statistic(rows(tiny), rows(base), _rer_statistic, unit="utterances (en)", direction="greater", margin=0.0,
                                label="RER (%) of ID-LM fusion (official decoder), tiny.en - base")
    ours = (f"RER tiny.en {_rer(tiny['wer'][OFFICIAL], tiny['wer']['plain']):+.1f}% (WER {tiny['wer']['plain']:.3f} -> {tiny['wer'][OFFICIAL]:.3f}) "
            f"vs base {_rer(base['wer'][OFFICIAL], base['wer']['plain']):+.1f}% (WER {base['wer']['plain']:.3f} -> {base['wer'][OFFICIAL]:.3f}) "
            f"over {len(tiny['words'])} English utterances")
    pre = dict([_hears(tiny, who="Whisper tiny.en"), _hears(base, who="Whisper base"),
                ("tuning kept the ID LM in the decoder (alpha > 0, tiny.en and base)",
                 _lm_used(m, TINY, ("id/official",), ("en",)) and _lm_used(m, BASE, ("id/official",), ("en",)))])
    return Judgement.from_headline(ours, c, preconditions=pre)


def _judge_ood(m: Metrics) -> Judgement:
    if _arms(m, BASE, ("plain", "rescore/id", "rescore/ood"), OOD_LANGUAGES) is None:
        return Judgement.not_run("no OOD LM at this scale")
    d, info = _pooled(m, BASE, ("plain", "rescore/id", "rescore/ood"), OOD_LANGUAGES)
    c = stats.compare_paired(d["scaled"]["rescore/id"], d["scaled"]["rescore/ood"], unit=f"utterances ({'+'.join(_langs(d))})", direction="less",
                             margin=0.0, label="corpus WER, n-best rescoring with the OOD LM - with the ID LM (base)")
    ours = (f"WER plain {d['wer']['plain']:.3f}, ID LM {d['wer']['rescore/id']:.3f} (RER {_rer(d['wer']['rescore/id'], d['wer']['plain']):+.1f}%), "
            f"OOD LM {d['wer']['rescore/ood']:.3f} (RER {_rer(d['wer']['rescore/ood'], d['wer']['plain']):+.1f}%) over {len(d['words'])} utterances"
            + (f"; not pooled (plain WER > {MAX_PLAIN_WER}): {', '.join(info['dropped'])}" if info["dropped"] else ""))
    supporting = {f"{lang}: RER(OOD) < RER(ID)": _wer_of(d, "rescore/ood", lang) > _wer_of(d, "rescore/id", lang) for lang in _langs(d)}
    pre = dict([info["pre"], ("tuning kept an LM in the decoder (alpha > 0 for the ID or OOD LM)",
                            _lm_used(m, BASE, ("id/formula", "ood/formula"), OOD_LANGUAGES))])
    return Judgement.from_headline(ours, c, supporting=supporting, preconditions=pre)


def _judge_fusion_vs_rescore(m: Metrics) -> Judgement:
    if _arms(m, BASE, ("plain", "rescore/id", FORMULA)) is None:
        return Judgement.not_run("no fusion decodes")
    d, info = _pooled(m, BASE, ("plain", "rescore/id", FORMULA), LANGUAGES)
    c = stats.compare_paired(d["scaled"][FORMULA], d["scaled"]["rescore/id"], unit=f"utterances ({'+'.join(info['kept'] or LANGUAGES)})", direction="less",
                             margin=-FUSION_MARGIN, label="corpus WER, n-best rescoring - per-step fusion (ID LM, base, the same weights)")
    ours = (f"WER plain {d['wer']['plain']:.3f} / rescoring {d['wer']['rescore/id']:.3f} / fusion {d['wer'][FORMULA]:.3f} over {len(d['words'])} utterances"
            + (f"; not pooled (plain WER > {MAX_PLAIN_WER}): {', '.join(info['dropped'])}" if info["dropped"] else ""))
    t = m.get("seconds_per_utterance", {}).get(BASE, {})
    if t.get("plain"):
        ours += f"; s/utt (batched, shown, not judged) plain {t['plain']:.2f}, fusion {t.get('fusion', 0):.2f}, official {t.get('official', 0):.2f}"
    pre = dict([info["pre"], ("tuning kept the ID LM in the decoder (alpha > 0)", _lm_used(m, BASE, ("id/formula",)))])
    return Judgement.from_headline(ours, c, preconditions=pre)


def _judge_llm(m: Metrics) -> Judgement:
    if _arms(m, BASE, ("plain", "rescore/id", "rescore/llm")) is None:
        return Judgement.not_run("no LLM at this scale (full only)")
    d, info = _pooled(m, BASE, ("plain", "rescore/id", "rescore/llm"), LANGUAGES)
    c = stats.compare_paired(d["scaled"]["rescore/llm"], d["scaled"]["plain"], unit=f"utterances ({'+'.join(info['kept'] or LANGUAGES)})", direction="less", margin=0.0,
                             label="corpus WER, plain Whisper base - n-best rescoring with the LLM")
    ours = (f"WER plain {d['wer']['plain']:.3f}, LLM {d['wer']['rescore/llm']:.3f} (RER {_rer(d['wer']['rescore/llm'], d['wer']['plain']):+.1f}%), "
            f"5-gram {d['wer']['rescore/id']:.3f} (RER {_rer(d['wer']['rescore/id'], d['wer']['plain']):+.1f}%) over {len(d['words'])} utterances"
            + (f"; not pooled (plain WER > {MAX_PLAIN_WER}): {', '.join(info['dropped'])}" if info["dropped"] else ""))
    supporting = {"LLM gain smaller than the 5-gram's (point estimates)": d["wer"]["rescore/id"] < d["wer"]["rescore/llm"]}
    pre = dict([info["pre"], ("tuning kept the LLM in the decoder (alpha > 0)", _lm_used(m, BASE, ("llm/formula",)))])
    return Judgement.from_headline(ours, c, supporting=supporting, preconditions=pre)


_V4 = ("issue 21: the decoder is transformers' KV-cached beam search on the CTranslate2 weights read back (ct2_to_hf; "
       "equal to CTranslate2 to float16 rounding); claim smaller_for_larger on English (tiny.en vs base, LibreOffice help "
       "en-US in distribution, fortunes out of distribution), judged on the RER difference by a paired bootstrap over "
       "utterances; every arm decodes every test utterance (full: 150 English, 150 Spanish, 50 Catalan: 150 everywhere "
       "measured at ~36 min), spoken by 4 espeak-ng voices/rates; the LLM rescoring arm on Spanish only at full; "
       "the official decoder (accumulate_lm=True) is an arm and carries in_domain (the paper's numbers come from it), the "
       "formula (accumulate_lm=False) carries in_domain_formula and fusion_vs_rescoring; each fusion arm tuned the same "
       "way: Optuna TPE over alpha, beta in [0, 5] (trial 0 = 0, 0) on the dev 5-best re-ranked by the score that arm's "
       "search gives a hypothesis, ties to the smallest alpha + beta; held-out sentences removed from the LM text by "
       "normalised de-duplication (also sentences containing one), 5-gram coverage reported; ood pooled over en+es+ca; "
       "Basque probed with plain Whisper base (item 5); the precondition 'Whisper hears the speech' (plain WER <= 0.8) is applied "
       "per language: a language Whisper does not hear is shown with its own interval, not pooled (v3 pooled es+ca whatever "
       "Catalan's WER). Rules fixed before the first v4 full run (after a quick run showed Catalan at plain WER 0.97).")


@register
class WhisperLMStudy(Study):
    name = "whisper_lm"
    paper = Paper("Whisper-LM: Improving ASR Models with Language Models for Low-Resource Languages", arxiv="2503.23542",
                  code="https://github.com/hitz-zentroa/whisper-lm")
    version = 4
    changelog = {1: "first version: espeak-ng + sox synthetic speech from Debian LibreOffice help (es, ca), MKN 5-gram LMs, Whisper base (small at full)",
                 2: "tuning ties (equal dev WER) go to the smallest alpha + beta instead of Optuna's first such trial; rules unchanged",
                 3: "issue 14: every rule restated as one headline comparison on reprolab.stats over the test utterances (es+ca pooled, "
                    "paired per-utterance word errors scaled so their mean difference is the corpus-WER difference; t interval below 20 "
                    "utterances, BCa bootstrap above), with a stated margin; per-language RERs are supporting checks only; preconditions "
                    "(Whisper hears the speech: plain WER <= 0.8; tuning kept the LM: alpha > 0) make a claim 'not testable'; the check "
                    "'fusion costs more time' (true by construction) is dropped from the claims (time still shown); metrics keep every "
                    "arm's per-utterance word errors for `reprolab rejudge`; more units: quick 6 test / 2 fused utterances per language "
                    "(was 4 / 1), full 30 / 15 (was 20 / 6); Whisper small dropped from the full config (its upload is truncated: "
                    "the size claim is 'not run'); Optuna checkpoints named by RunDir.key_with, the LM cache by reprolab.study.run_key",
                 4: _V4}
    claims = [
        Claim("in_domain", "An in-distribution 5-gram LM fused into Whisper base lowers WER (Spanish and Catalan), official decoder",
              paper="RER es +18..25%, ca 0..14%, eu +37..51% (Common Voice etc.)",
              rule="headline: corpus-WER difference plain - per-step fusion with the ID 5-gram, official decoder (accumulate_lm=True; "
                   "Whisper base), paired over the test utterances (unit: utterances, es+ca pooled over the languages Whisper hears: plain WER <= 0.8 "
                   "per language; each language's own interval shown), 95% interval > 0 (margin 0); supporting: es RER > 0, ca RER >= 0; "
                   "preconditions: at least one language heard, tuned alpha > 0",
              judge=_judge_in_domain),
        Claim("in_domain_formula", "The same with the paper's formula (the LM term of the current text counted once)",
              paper="the paper's Sec. 3.2 formula; its numbers come from the official decoder",
              rule="as in_domain, on per-step fusion with accumulate_lm=False (its own tuned weights)",
              judge=_judge_in_domain_formula),
        Claim("smaller_for_larger", "The LM helps the smaller Whisper more: larger RER for tiny.en than for base (English)",
              paper="the largest gains for the smallest models",
              rule="headline: RER(tiny.en) - RER(base) of ID-LM per-step fusion (official decoder), each RER the corpus statistic "
                   "(1 - errors_LM / errors_plain) x 100 over the same English test utterances, paired bootstrap over utterances "
                   "(percentile), 95% interval > 0 (margin 0); preconditions: both models' plain WER <= 0.8, both tuned alpha > 0; "
                   "confound: tiny.en is English-only, base multilingual",
              judge=_judge_size),
        Claim("ood", "An out-of-distribution LM helps less than an in-distribution one",
              paper="OOD: eu up to +34%, some es OOD sets get worse",
              rule="headline: corpus-WER difference OOD-LM - ID-LM n-best rescoring (Whisper base), paired over the test utterances "
                   "(unit: utterances, en+es+ca pooled over the languages Whisper hears: plain WER <= 0.8 per language), 95% interval > 0 "
                   "(margin 0); supporting: per language RER(OOD) < RER(ID); preconditions: one language heard, a tuned alpha > 0",
              judge=_judge_ood),
        Claim("fusion_vs_rescoring", "Per-step fusion is at least as accurate as n-best rescoring with the same weights",
              paper="the paper fuses per step (no rescoring comparison); the spec sheet asks for both",
              rule=f"headline: corpus-WER difference rescoring - fusion (accumulate_lm=False, ID LM, base, the weights tuned for it), "
                   f"paired over the test utterances (unit: utterances, es+ca pooled over the languages heard: plain WER <= 0.8 per language), "
                   f"non-inferiority: 95% interval > -{FUSION_MARGIN} (fusion at most {FUSION_MARGIN * 100:.0f} WER points worse); "
                   f"preconditions: one language heard, tuned alpha > 0; "
                   f"time per utterance is a metric (seconds_per_utterance), not a rule",
              judge=_judge_fusion_vs_rescore),
        Claim("llm", "A large LM in place of the n-gram gives smaller (but positive) gains",
              paper="LLM variant: smaller but more consistent gains",
              rule="headline: corpus-WER difference plain - n-best rescoring with the LLM (Gemma 3 270M base; Whisper base), paired over "
                   "the test utterances (unit: utterances of the languages the LLM ran on - full: es - and Whisper hears), 95% "
                   "interval > 0 (margin 0); supporting: its WER above the 5-gram's (a smaller gain); preconditions: one language "
                   "heard, tuned alpha > 0 (full scale only)",
              judge=_judge_llm),
    ]
    scales = {
        Scale.SMOKE: WhisperLMStudyConfig(languages=("en",), models=(("en", "whisper-tiny.en"),), formula_arm=(("en", "whisper-tiny.en"),),
                                          n_dev=1, n_test=2, n_trials=2, lm_order=3, lm_max_sentences=2000, ood=False,
                                          max_new_tokens=24, batch=2, voices=VOICES[:2]),
        Scale.QUICK: WhisperLMStudyConfig(basque_probe=4),
        # 150 test utterances per language did not fit 30 minutes (quick run, 2 threads: 11.9 s per test sentence over
        # the four model x language pairs, Catalan the dearest at 5.2 s because Whisper base hallucinates on it):
        # English and Spanish get 150, Catalan (which Whisper base does not hear: plain WER 0.97 in quick) 50
        Scale.FULL: WhisperLMStudyConfig(n_dev=16, n_test=150, n_test_by_language=(("ca", 50),), n_trials=60, llm="gemma-3-270m",
                                         llm_languages=("es",), basque_probe=16),
    }

    def run(self, config: WhisperLMStudyConfig, run: RunDir) -> Metrics:
        try:
            from . import experiment
        except ImportError as e:
            raise StudySkipped(f"faster-whisper/kenlm/optuna missing ({e}); pip install faster-whisper kenlm optuna") from None
        try:
            return experiment.run_experiment(config, run)
        except (AssetMissing, MissingExtra) as e:
            raise StudySkipped(e.one_line()) from None
