"""The study contract: claims with rules fixed in code, results on disk, and the registry.

A *study* reproduces a paper's headline claims at laptop scale. It declares

- ``claims``: each a :class:`Claim` carrying the paper's figure, the rule in words, and
  the rule in code (``judge``), all written before the first ``full`` run;
- ``scales``: one frozen config per :class:`Scale` (``smoke`` proves the code path in
  seconds, ``quick`` is what ``make demo`` runs, ``full`` is the reproduction of record);
- ``run(config, run_dir) -> metrics``: does the work and returns the measured numbers.

The lab, not the study, turns metrics into verdicts (``Claim.judge``) and writes
``runs/<name>/<scale>/result.json`` atomically with config, seed, versions, timings and
machine. A study never writes a verdict by hand.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import importlib.util
import json
import os
import pkgutil
import shutil
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from . import runtime, stats
from .errors import BadScale, DuplicateRegistration, StudyFailed, StudySkipped, UnknownName

RESULT_FILE = "result.json"
# The results of record: each study's `full` result.json and figures, committed to the repository.
RECORDS = Path(__file__).resolve().parents[1] / "results"
RECORD_MAX_BYTES = 2_000_000


class Scale(str, enum.Enum):
    SMOKE = "smoke"  # seconds; for tests; proves the code path, not the claim
    QUICK = "quick"  # about a minute; what `make demo` runs; a real but small-sample verdict
    FULL = "full"  # up to ~30 minutes on 2 cores; the reproduction of record

    @classmethod
    def parse(cls, value: str | Scale) -> Scale:
        try:
            return cls(value)
        except ValueError:
            raise BadScale(str(value)) from None

    def __str__(self) -> str:
        return self.value


class Verdict(str, enum.Enum):
    """A claim's verdict comes from its headline comparison (see :class:`Judgement`); a study's
    from its claims' (see :func:`overall_verdict`)."""

    REPRODUCED = "reproduced"  # the headline interval lies wholly on the paper's side of the margin
    PARTLY = "partly"  # a study whose claims differ (or a held headline with a failed supporting check)
    INCONCLUSIVE = "inconclusive"  # the headline interval straddles the margin: inside the noise
    NOT_REPRODUCED = "not reproduced"  # the headline interval lies wholly on the other side
    NOT_TESTABLE = "not testable"  # a precondition failed: the method did not run as described, ...
    NOT_RUN = "not run"  # skipped (an asset missing, a scale that does not run this claim)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Paper:
    title: str
    arxiv: str
    code: str | None = None  # the official repository, if any

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


_OUTCOME_VERDICT = {
    stats.Outcome.HOLDS: Verdict.REPRODUCED,
    stats.Outcome.CONTRADICTED: Verdict.NOT_REPRODUCED,
    stats.Outcome.UNRESOLVED: Verdict.INCONCLUSIVE,
}


@dataclass(frozen=True)
class Judgement:
    """What a claim's rule concluded: the verdict, our figure in words, the headline comparison,
    the supporting checks and the preconditions.

    Build it with :meth:`from_headline` (the normal case), :meth:`not_testable` or
    :meth:`not_run`; the verdict is derived, never written by hand:

    - a failed precondition (the method did not run as the paper describes, the model does not
      use what is measured) makes the claim ``not testable``;
    - else the headline decides: holds -> ``reproduced``, contradicted -> ``not reproduced``,
      unresolved -> ``inconclusive``, whatever the supporting checks say;
    - a held headline with a failed supporting check is ``partly``.
    """

    verdict: Verdict
    ours: str
    checks: dict[str, bool] = field(default_factory=dict)  # supporting checks (shown; they never lift a claim)
    headline: stats.Comparison | None = None
    preconditions: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_headline(
        cls,
        ours: str,
        headline: stats.Comparison,
        supporting: Mapping[str, bool] | None = None,
        preconditions: Mapping[str, bool] | None = None,
    ) -> Judgement:
        supporting = {k: bool(v) for k, v in (supporting or {}).items()}
        pre = {k: bool(v) for k, v in (preconditions or {}).items()}
        failed = [k for k, v in pre.items() if not v]
        if failed:
            return cls(Verdict.NOT_TESTABLE, f"{ours} (precondition failed: {'; '.join(failed)})", supporting, headline, pre)
        verdict = _OUTCOME_VERDICT[headline.outcome]
        if verdict == Verdict.REPRODUCED and not all(supporting.values()):
            verdict = Verdict.PARTLY
        return cls(verdict, ours, supporting, headline, pre)

    @classmethod
    def not_testable(cls, ours: str, preconditions: Mapping[str, bool]) -> Judgement:
        """A precondition failed before any headline could be measured."""
        pre = {k: bool(v) for k, v in preconditions.items()}
        failed = [k for k, v in pre.items() if not v] or list(pre)
        return cls(Verdict.NOT_TESTABLE, f"{ours} (precondition failed: {'; '.join(failed)})", {}, None, pre)

    @classmethod
    def not_run(cls, why: str) -> Judgement:
        """The claim is not measured at this scale or on this machine (say why)."""
        return cls(Verdict.NOT_RUN, why)


Metrics = dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """One headline claim of a paper, with its rule fixed in code.

    key: short id (``"spikes"``); statement: the claim in one sentence; paper: the paper's
    figure; rule: the rule in words; judge: the rule in code, from metrics to a Judgement.
    """

    key: str
    statement: str
    paper: str
    rule: str
    judge: Callable[[Metrics], Judgement]


@dataclass
class ClaimOutcome:
    key: str
    statement: str
    paper: str
    rule: str
    verdict: Verdict
    ours: str
    checks: dict[str, bool] = field(default_factory=dict)  # supporting checks
    headline: dict[str, Any] | None = None  # stats.Comparison.to_json()
    preconditions: dict[str, bool] = field(default_factory=dict)

    @property
    def comparison(self) -> stats.Comparison | None:
        return stats.Comparison.from_json(self.headline) if self.headline else None


@dataclass
class FigureRecord:
    file: str  # relative to the run folder
    caption: str


@dataclass
class Result:
    """Everything a run leaves behind; ``result.json`` is this, serialised."""

    study: str
    title: str
    arxiv: str
    version: int
    scale: str
    seed: int
    status: str  # "ok" or "skipped"
    reason: str | None
    config: dict[str, Any]
    metrics: Metrics
    claims: list[ClaimOutcome]
    figures: list[FigureRecord]
    timings: dict[str, Any]
    versions: dict[str, str]
    machine: dict[str, Any]
    command: str
    key: str = ""  # RunDir.key: hash of (study, config, version, seed); a saved result is reused only on the same key
    commit: str = ""  # the git commit of the code that produced it ("" outside a git checkout)
    judged_by: int = 0  # the study version whose rules gave the verdicts, when `reprolab rejudge` changed it (0: ``version``)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Result:
        data = dict(data)
        data["claims"] = [ClaimOutcome(**{**c, "verdict": Verdict(c["verdict"])}) for c in data["claims"]]
        data["figures"] = [FigureRecord(**f) for f in data["figures"]]
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> Result:
        return cls.from_json(json.loads(Path(path).read_text()))

    @property
    def wall_seconds(self) -> float:
        return float(self.timings.get("wall_s", 0.0))


class RunDir:
    """The folder of one run: ``<out>/<study>/<scale>/``.

    Figures go to a staging folder and replace the previous ones only when the run has
    finished; checkpoints live in ``checkpoints/`` and survive interruptions so a second
    run resumes.
    """

    def __init__(self, root: Path, scale: Scale, seed: int, config: Any = None, study: str = "", version: int = 1,
                 checkpoint_root: Path | None = None):
        self.path = Path(root)
        self.scale = scale
        self.seed = seed
        self.staging = self.path / ".partial"
        self.figures: list[FigureRecord] = []
        self.key = run_key(study, config, version, seed)
        self._checkpoint_root = Path(checkpoint_root) if checkpoint_root is not None else self.path  # a unit shares its study's

    def key_with(self, *extra: Any) -> str:
        """The run's key extended by inputs the config does not name (a corpus hash, a model
        file's sha256): the name for checkpoints and caches that must not outlive a change of
        any of them."""
        return run_key(self.key, *extra) if extra else self.key

    @property
    def checkpoints(self) -> Path:
        p = self._checkpoint_root / "checkpoints"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def save_figure(self, fig: Any, name: str, caption: str) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png`` (staged until the run ends)."""
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        path = runtime.atomic_write_bytes(self.staging / f"{name}.png", buf.getvalue())
        self.figures.append(FigureRecord(f"figures/{name}.png", caption))
        return path

    def _publish_figures(self) -> None:
        final = self.path / "figures"
        if final.exists():
            shutil.rmtree(final)
        if self.staging.exists():
            self.staging.rename(final)


def run_key(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts (dataclasses are turned into dicts first)."""
    import hashlib

    def plain(x: Any) -> Any:
        return dataclasses.asdict(x) if dataclasses.is_dataclass(x) and not isinstance(x, type) else x

    text = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Study:
    """Base class of every reproduction; subclass it and decorate with :func:`register`."""

    name: ClassVar[str]
    paper: ClassVar[Paper]
    claims: ClassVar[list[Claim]]
    scales: ClassVar[dict[Scale, Any]]  # one frozen config dataclass per scale
    version: ClassVar[int] = 1
    changelog: ClassVar[dict[int, str]] = {1: "first version"}

    def run(self, config: Any, run: RunDir) -> Metrics:
        """Do the work and return the metrics. A study that declares :meth:`units` need not
        override this: the default runs every unit here, in order, then :meth:`combine`."""
        names = self.units(config)
        if not names:
            raise NotImplementedError(f"study {self.name!r} defines neither run() nor units()")
        return self.combine(config, {u: self.run_unit(config, u, run) for u in names}, run)

    # Independent units of work (issue 22). A study whose work splits into parts that share nothing
    # while they run (seeds, arms, claims) names them; the executors then run each unit in a process
    # of its own, or as a Ray task, rerun only the units that failed, and call combine() once all
    # are in. Every unit sees the same RunDir key, so checkpoints named by it are shared.

    def units(self, config: Any) -> list[str]:
        """Names of the independent units at this config (``[]``: the study is one unit)."""
        return []

    def run_unit(self, config: Any, unit: str, run: RunDir) -> Metrics:  # pragma: no cover - abstract
        raise NotImplementedError(f"study {self.name!r} declares units but no run_unit()")

    def combine(self, config: Any, parts: dict[str, Metrics], run: RunDir) -> Metrics:
        """The study's metrics from its units' (in :meth:`units` order). Default: the union of the
        parts' keys; a key two units both return must hold the same value."""
        out: Metrics = {}
        for unit, part in parts.items():
            for k, v in part.items():
                if k in out and out[k] != v:
                    raise ValueError(f"units of {self.name!r} disagree on metric {k!r} (unit {unit!r}); override combine()")
                out[k] = v
        return out

    @classmethod
    def config_for(cls, scale: Scale) -> Any:
        return cls.scales[scale]

    @classmethod
    def describe_scales(cls) -> dict[str, dict[str, Any]]:
        return {s.value: dataclasses.asdict(c) if dataclasses.is_dataclass(c) else dict(c) for s, c in cls.scales.items()}

    @classmethod
    def judge(cls, metrics: Metrics) -> list[ClaimOutcome]:
        """Each claim's rule applied to the metrics (also what `reprolab rejudge` calls on a saved result)."""
        out = []
        for c in cls.claims:
            j = c.judge(metrics)
            out.append(
                ClaimOutcome(
                    c.key, c.statement, c.paper, c.rule, Verdict(j.verdict), j.ours, dict(j.checks),
                    j.headline.to_json() if j.headline is not None else None, dict(j.preconditions),
                )
            )
        return out


@dataclass
class BenchRow:
    name: str
    seconds: float  # median seconds per call
    spread: float  # interquartile range of seconds per call
    ratio: float  # seconds / baseline seconds
    note: str = ""


def bench_rows(times: Mapping[str, list[float]], baseline: str, label: str, notes: Mapping[str, str] | None = None) -> list[BenchRow]:
    """One row per variant of ``times`` (as ``runtime.interleaved_timings`` returns them), in order:
    median and interquartile range of seconds per call, ratio to ``baseline``'s median; each row is
    named ``"<variant> (<label>)"`` and carries ``notes[variant]`` if given."""
    base = runtime.median_iqr(times[baseline])[0]
    rows = []
    for name, ts in times.items():
        med, iqr = runtime.median_iqr(ts)
        rows.append(BenchRow(f"{name} ({label})", med, iqr, med / base, (notes or {}).get(name, "")))
    return rows


@dataclass
class BenchResult:
    bench: str
    baseline: str
    rows: list[BenchRow]
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Benchmark:
    """A speed (or size) comparison against what a user would otherwise use, in one process."""

    name: ClassVar[str]
    description: ClassVar[str]

    def run(self, quick: bool) -> BenchResult:  # pragma: no cover - abstract
        raise NotImplementedError


# ----------------------------------------------------------------------------- registry

_STUDIES: dict[str, type[Study]] = {}
_BENCHES: dict[str, type[Benchmark]] = {}
_discovered = False


def register(cls: type[Study]) -> type[Study]:
    """Class decorator: make a Study runnable by name. Refuses a second study of the same name."""
    _check_study_class(cls)
    if cls.name in _STUDIES and _STUDIES[cls.name] is not cls:
        raise DuplicateRegistration("study", cls.name)
    _STUDIES[cls.name] = cls
    return cls


def register_bench(cls: type[Benchmark]) -> type[Benchmark]:
    if cls.name in _BENCHES and _BENCHES[cls.name] is not cls:
        raise DuplicateRegistration("benchmark", cls.name)
    _BENCHES[cls.name] = cls
    return cls


def _check_study_class(cls: type[Study]) -> None:
    missing = [a for a in ("name", "paper", "claims", "scales") if not hasattr(cls, a)]
    if missing:
        raise TypeError(f"study {cls.__name__} lacks {', '.join(missing)}")
    absent = [s.value for s in Scale if s not in cls.scales]
    if absent:
        raise TypeError(f"study {cls.name!r} defines no config for scale(s) {absent}")
    keys = [c.key for c in cls.claims]
    if len(set(keys)) != len(keys) or not keys:
        raise TypeError(f"study {cls.name!r} needs at least one claim and unique claim keys, got {keys}")


def discover() -> None:
    """Import ``reprolab.papers.<paper>.study`` and ``.bench`` for every paper folder."""
    global _discovered
    if _discovered:
        return
    import reprolab.papers as papers

    for info in sorted(pkgutil.iter_modules(papers.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        for sub in ("study", "bench"):
            modname = f"reprolab.papers.{info.name}.{sub}"
            if importlib.util.find_spec(modname) is not None:
                importlib.import_module(modname)
    import reprolab.benches as room_benches  # the shared rooms' benchmarks, found like the papers

    for info in sorted(pkgutil.iter_modules(room_benches.__path__), key=lambda i: i.name):
        importlib.import_module(f"reprolab.benches.{info.name}")
    _import_plugins()
    _discovered = True


def _import_plugins() -> None:
    """Studies outside the package (a user's own, a test's): modules named in REPROLAB_PLUGINS
    (comma-separated), imported in every process, so the executors' children find them too."""
    for mod in filter(None, (m.strip() for m in os.environ.get("REPROLAB_PLUGINS", "").split(","))):
        importlib.import_module(mod)


def studies() -> dict[str, type[Study]]:
    discover()
    return dict(sorted(_STUDIES.items()))


def benches() -> dict[str, type[Benchmark]]:
    discover()
    return dict(sorted(_BENCHES.items()))


def get_study(name: str) -> type[Study]:
    """The study registered as ``name``. Imports only that paper's module when it exists, so a
    process that runs one study loads none of the others' libraries; else every paper's."""
    if name not in _STUDIES and name.isidentifier() and importlib.util.find_spec(f"reprolab.papers.{name}") is not None:
        if importlib.util.find_spec(f"reprolab.papers.{name}.study") is not None:
            importlib.import_module(f"reprolab.papers.{name}.study")
    if name not in _STUDIES:
        _import_plugins()
    if name in _STUDIES:
        return _STUDIES[name]
    all_ = studies()
    if name not in all_:
        raise UnknownName("study", name, list(all_))
    return all_[name]


def get_bench(name: str) -> type[Benchmark]:
    all_ = benches()
    if name not in all_:
        raise UnknownName("benchmark", name, list(all_))
    return all_[name]


# ----------------------------------------------------------------------------- running


def result_path(out: str | Path, name: str, scale: Scale | str) -> Path:
    return Path(out) / name / Scale.parse(scale).value / RESULT_FILE


def load_result(out: str | Path, name: str, scale: Scale | str) -> Result | None:
    p = result_path(out, name, scale)
    if not p.exists():
        return None
    return Result.load(p)


def reusable_result(name: str, scale: Scale | str, seed: int = 0, out: str | Path = "runs") -> Result | None:
    """The saved result of this study, scale and seed if it can stand for a new run: finished
    (not skipped) and made with the same key (study, config, version, seed); else None."""
    cls = get_study(name)
    scale = Scale.parse(scale)
    previous = load_result(out, name, scale)
    key = run_key(name, cls.config_for(scale), cls.version, seed)
    if previous is not None and previous.status == "ok" and previous.key == key:
        return previous
    return None


UNITS_DIR = "units"
UNIT_FILE = "unit.json"
FAILED_FILE = "failed.json"


def unit_folder(out: str | Path, name: str, scale: Scale | str, unit: str) -> Path:
    """``<out>/<study>/<scale>/units/<unit>/``: a unit's metrics, figures and (if it failed) traceback."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in unit)
    return Path(out) / name / Scale.parse(scale).value / UNITS_DIR / safe


@dataclass
class UnitResult:
    """What one unit of a study left on disk (``unit.json``)."""

    study: str
    unit: str
    key: str  # the study run's key: a unit is reused only by a run with the same key
    metrics: Metrics
    figures: list[FigureRecord]
    wall_s: float

    @classmethod
    def load(cls, path: Path) -> UnitResult:
        d = json.loads(path.read_text())
        return cls(d["study"], d["unit"], d["key"], d["metrics"], [FigureRecord(**f) for f in d["figures"]], d["wall_s"])


def load_unit(out: str | Path, name: str, scale: Scale | str, unit: str, key: str) -> UnitResult | None:
    """A finished unit of this run (same key) with all its figures on disk, else None."""
    folder = unit_folder(out, name, scale, unit)
    try:
        res = UnitResult.load(folder / UNIT_FILE)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if res.key != key or res.unit != unit or any(not (folder / f.file).exists() for f in res.figures):
        return None
    return res


def unit_failure(out: str | Path, name: str, scale: Scale | str, unit: str) -> dict[str, Any] | None:
    """The failure a unit's process recorded (``failed.json``: error and traceback), if any."""
    p = unit_folder(out, name, scale, unit) / FAILED_FILE
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _prepare_run(run: RunDir, seed: int) -> int:
    """What every run (a study or one unit) does before its code: drop a staging folder an
    interrupted run left behind, seed every generator, fix the thread counts (returned)."""
    if run.staging.exists():
        shutil.rmtree(run.staging)
    runtime.seed_everything(seed)
    return runtime.set_threads()


def not_run_claims(cls: type[Study], reason: str) -> list[ClaimOutcome]:
    """Every claim of ``cls`` as ``not run``, with the reason (a skipped or incomplete study)."""
    return [ClaimOutcome(c.key, c.statement, c.paper, c.rule, Verdict.NOT_RUN, f"not run: {reason}") for c in cls.claims]


def config_dict(config: Any) -> dict[str, Any]:
    """A study's scale configuration as saved in result.json."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def run_unit(name: str, unit: str, scale: Scale | str = Scale.QUICK, seed: int = 0, out: str | Path = "runs") -> UnitResult:
    """Run one unit of a study here and save it (``units/<unit>/unit.json`` and its figures,
    atomically). On an exception its traceback goes to ``failed.json`` and the exception is
    raised again; StudySkipped is raised without a trace (the study is then skipped as a whole)."""
    cls = get_study(name)
    scale = Scale.parse(scale)
    config = cls.config_for(scale)
    study = cls()
    names = study.units(config)
    if unit not in names:
        raise UnknownName(f"unit of {name}", unit, names)
    folder = unit_folder(out, name, scale, unit)
    runtime.ensure_writable_dir(folder)
    (folder / FAILED_FILE).unlink(missing_ok=True)
    run = RunDir(folder, scale, seed, config=config, study=name, version=cls.version,
                 checkpoint_root=Path(out) / name / scale.value)
    _prepare_run(run, seed)
    t0 = time.perf_counter()
    try:
        metrics = runtime.plain_tree(study.run_unit(config, unit, run), f"metrics of unit {unit!r}")
    except StudySkipped:
        raise
    except BaseException as e:
        runtime.atomic_write_json(folder / FAILED_FILE, {"study": name, "unit": unit, "key": run.key,
                                                         "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        raise
    res = UnitResult(name, unit, run.key, metrics, run.figures, round(time.perf_counter() - t0, 3))
    run._publish_figures()
    runtime.atomic_write_json(folder / UNIT_FILE, dataclasses.asdict(res))
    return res


def _units_metrics(study: Study, config: Any, run: RunDir, name: str, scale: Scale, seed: int, out: str | Path,
                   unit_walls: dict[str, float]) -> Metrics:
    """Every unit's metrics (saved ones reused by key, the rest run here), their figures staged
    into ``run``, then the study's :meth:`Study.combine`. ``unit_walls`` receives each unit's
    own wall seconds (from its unit.json: the run that made it, wherever it ran)."""
    parts: dict[str, Metrics] = {}
    for u in runtime.track(study.units(config), f"{name}: units"):
        res = load_unit(out, name, scale, u, run.key) or run_unit(name, u, scale, seed, out)
        folder = unit_folder(out, name, scale, u)
        for f in res.figures:
            target = run.staging / Path(f.file).name
            if target.exists():
                raise ValueError(f"two units of {name!r} saved figure {Path(f.file).name!r}; give each unit's figures their own names")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / f.file, target)
            run.figures.append(f)
        parts[u] = res.metrics
        unit_walls[u] = res.wall_s
    return study.combine(config, parts, run)


def run_study(
    name: str,
    scale: Scale | str = Scale.QUICK,
    seed: int = 0,
    force: bool = False,
    out: str | Path = "runs",
    command: str = "",
    reuse: bool | None = None,
) -> tuple[Result, bool]:
    """Run one study (or reuse its finished result). Returns ``(result, reused)``.

    A finished (not skipped) result is reused when its key (study, config, version, seed; see
    :func:`reusable_result`) is unchanged and ``force`` is false; ``force`` also discards the study's
    checkpoints and finished units; ``reuse=False`` runs even when a result could be reused, but keeps
    them (what the executors' combining process does). A study with :meth:`Study.units` runs the units
    not yet finished here, in order, then combines. The new ``result.json`` is written atomically
    after the study returns; an interrupted run leaves the previous result (or none) in place.
    """
    cls = get_study(name)
    scale = Scale.parse(scale)
    folder = runtime.ensure_writable_dir(Path(out) / name / scale.value)
    config = cls.config_for(scale)
    run = RunDir(folder, scale, seed, config=config, study=name, version=cls.version)
    reuse = not force if reuse is None else reuse and not force  # reuse=False: run (finished units still count)
    previous = reusable_result(name, scale, seed, out) if reuse else None
    if previous is not None:
        return previous, True

    if force:  # --force means from scratch, not from checkpoints or finished units
        for sub in ("checkpoints", UNITS_DIR):
            if (folder / sub).exists():
                shutil.rmtree(folder / sub)
    threads = _prepare_run(run, seed)
    started = time.time()
    t0 = time.perf_counter()
    status, reason = "ok", None
    metrics: Metrics = {}
    unit_walls: dict[str, float] = {}
    try:
        study = cls()
        if study.units(config):
            metrics = _units_metrics(study, config, run, name, scale, seed, out, unit_walls)
        else:
            metrics = study.run(config, run)
    except StudySkipped as e:
        status, reason = "skipped", e.message
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        traceback.print_exc()
        raise StudyFailed(name, f"{type(e).__name__}: {e}") from e
    wall = time.perf_counter() - t0

    if status == "ok":
        # numpy / torch numbers become plain JSON numbers, and NaN/inf of any type are refused
        # here, before the new figures replace the previous run's.
        metrics = runtime.plain_tree(metrics, "metrics")
        claims = cls.judge(metrics)
    else:
        claims = not_run_claims(cls, reason or "skipped")
    result = Result(
        study=name,
        title=cls.paper.title,
        arxiv=cls.paper.arxiv,
        version=cls.version,
        scale=scale.value,
        seed=seed,
        status=status,
        reason=reason,
        config=config_dict(config),
        metrics=metrics,
        claims=claims,
        figures=run.figures,
        timings={
            # with units: the units' own wall seconds (each in its process, possibly on other machines or in
            # an earlier, interrupted run) plus this combining step; "units_s" itemises them
            "wall_s": round(wall + sum(unit_walls.values()), 3),
            **({"units_s": unit_walls, "combine_s": round(wall, 3)} if unit_walls else {}),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "threads": threads,
        },
        versions=runtime.library_versions(imported=True),
        machine=runtime.machine_info(),
        command=command or f"reprolab run {name} --scale {scale.value} --seed {seed}",
        key=run.key,
        commit=runtime.git_commit(),
    )
    payload = runtime.plain_tree(result.to_json(), "result")  # refuse before publishing anything
    run._publish_figures()
    runtime.atomic_write_json(folder / RESULT_FILE, payload)
    return result, False


def record_path(name: str, records: str | Path = RECORDS) -> Path:
    return Path(records) / name / RESULT_FILE


def load_record(name: str, records: str | Path = RECORDS) -> Result | None:
    """The committed full result of a study (``results/<name>/result.json``), or None."""
    p = record_path(name, records)
    return Result.load(p) if p.exists() else None


def save_record(name: str, out: str | Path = "runs", records: str | Path = RECORDS) -> Path:
    """Copy the finished ``full`` run of a study (result.json and figures) into the records
    folder, replacing the previous record's result.json and figures (other files there, such as
    calibration data, are kept). Refuses a skipped run, a run whose figures are
    missing, and a record over RECORD_MAX_BYTES."""
    from .errors import ReprolabError

    src = Path(out) / name / Scale.FULL.value
    res = load_result(out, name, Scale.FULL)
    if res is None:
        raise ReprolabError(f"no full result of {name!r} in {src}", fix=f"run `reprolab run {name} --scale full` first")
    if res.status != "ok":
        raise ReprolabError(f"the full run of {name!r} was skipped ({res.reason})", fix="fix the reason (usually `make assets`) and rerun it")
    files = [src / RESULT_FILE] + [src / f.file for f in res.figures]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ReprolabError(f"the full run of {name!r} lacks {missing}", fix=f"rerun `reprolab run {name} --scale full --force`")
    size = sum(f.stat().st_size for f in files)
    if size > RECORD_MAX_BYTES:
        raise ReprolabError(f"the record of {name!r} would be {size / 1e6:.1f} MB (limit {RECORD_MAX_BYTES / 1e6:.0f} MB)",
                            fix="save smaller figures (fewer points, lower dpi) and rerun")
    dst = Path(records) / name
    staging = Path(records) / f".{name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    # what the record holds beside the run (calibration data, notes) stays; the run's files, copied last, win
    kept = [f for f in dst.rglob("*") if f.is_file() and f.relative_to(dst).parts[0] != "figures"] if dst.exists() else []
    for f, root in [(f, dst) for f in kept] + [(f, src) for f in files]:
        rel = f.relative_to(root)
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, staging / rel)
    if dst.exists():
        shutil.rmtree(dst)
    staging.rename(dst)
    return dst / RESULT_FILE


def rejudge(result: Result) -> Result:
    """The same result with every claim judged again by the study's current rules, from the
    saved metrics alone (nothing is rerun). A skipped result is returned as it is."""
    if result.status != "ok":
        return result
    cls = get_study(result.study)
    return dataclasses.replace(result, claims=cls.judge(result.metrics), judged_by=0 if cls.version == result.version else cls.version)


def run_bench(name: str, quick: bool = True, out: str | Path = "runs") -> BenchResult:
    cls = get_bench(name)
    folder = runtime.ensure_writable_dir(Path(out) / "bench" / name)
    runtime.set_threads()
    res = cls().run(quick)
    res.versions = runtime.library_versions(imported=True)
    res.machine = runtime.machine_info()
    runtime.atomic_write_json(folder / RESULT_FILE, res.to_json())
    return res


def overall_verdict(claims: list[ClaimOutcome]) -> Verdict:
    """A study's verdict: ``reproduced`` only when every claim is; ``partly`` when some claim is
    reproduced (or partly) and not all are; with no claim reproduced, ``not reproduced`` when one is
    contradicted, else the verdict the claims that ran share (``inconclusive`` for a mix of
    inconclusive and not testable). ``not run`` when no claim ran.

    (Issue 17's note: "partly" used to mean only "the claims differ", so a study with no claim
    holding, e.g. not reproduced + inconclusive, read as partly.)"""
    ran = {c.verdict for c in claims if c.verdict != Verdict.NOT_RUN}
    if not ran:
        return Verdict.NOT_RUN
    if ran == {Verdict.REPRODUCED} and len(ran) == len({c.verdict for c in claims}):
        return Verdict.REPRODUCED
    if ran & {Verdict.REPRODUCED, Verdict.PARTLY}:
        return Verdict.PARTLY
    if Verdict.NOT_REPRODUCED in ran:
        return Verdict.NOT_REPRODUCED
    return ran.pop() if len(ran) == 1 else Verdict.INCONCLUSIVE
