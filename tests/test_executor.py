"""The executors (issue 22): a study's units each in a process of their own, locally and as Ray
tasks; a failed, killed or timed-out unit is recorded and the others go on; rerunning the same
command runs only the missing units; both executors leave the same result.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from reprolab import executor
from reprolab import study as study_mod
from reprolab.study import Scale, Verdict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy_units(monkeypatch):
    """The plugin study, registered here and importable by child processes."""
    monkeypatch.setenv("REPROLAB_PLUGINS", "tests.toy_units")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}:{__import__('os').environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("REPROLAB_THREADS", "1")
    monkeypatch.setenv("REPROLAB_PROGRESS", "0")
    for var in ("TOY_UNITS_FAIL", "TOY_UNITS_FAIL_FILE", "TOY_UNITS_KILL", "TOY_UNITS_SLEEP"):
        monkeypatch.delenv(var, raising=False)
    study_mod.discover()
    import tests.toy_units as mod

    study_mod.register(mod.ToyUnits)
    yield mod.ToyUnits
    study_mod._STUDIES.pop("toy_units", None)


def _pids(res_or_metrics):
    m = getattr(res_or_metrics, "metrics", res_or_metrics)
    return {k: v for k, v in m.items() if k.startswith("pid_")}


def test_units_run_in_processes_of_their_own_and_match_an_in_process_run(toy_units, tmp_path):
    done = executor.run_in_process("toy_units", Scale.QUICK, 0, False, tmp_path / "a", "cmd")
    assert done.result is not None and done.result.status == "ok" and done.units_run == ["seed=0", "seed=1", "seed=2"]
    pids = set(_pids(done.result).values())
    assert len(pids) == 3 and not pids & {__import__("os").getpid()}  # three processes, none of them this one
    assert done.result.metrics["threads"] == "1"  # thread counts fixed in each child's environment
    t = done.result.timings  # the study's time is its units' (each in its own process) plus combining
    assert set(t["units_s"]) == {"seed=0", "seed=1", "seed=2"}
    assert done.result.wall_seconds == pytest.approx(sum(t["units_s"].values()) + t["combine_s"], abs=2e-3)
    assert [f.file for f in done.result.figures] == ["figures/line_0.png", "figures/line_1.png", "figures/line_2.png"]
    assert all((tmp_path / "a" / "toy_units" / "quick" / f.file).exists() for f in done.result.figures)

    here, _ = study_mod.run_study("toy_units", Scale.QUICK, out=tmp_path / "b")
    strip = lambda m: {k: v for k, v in m.items() if not k.startswith("pid_") and k != "threads"}  # noqa: E731
    assert strip(here.metrics) == strip(done.result.metrics)
    assert [c.verdict for c in here.claims] == [c.verdict for c in done.result.claims] == [Verdict.REPRODUCED]

    again = executor.run_in_process("toy_units", Scale.QUICK, 0, False, tmp_path / "a", "cmd")
    assert again.reused and again.units_run == []


def test_a_failed_unit_is_recorded_the_others_go_on_and_a_rerun_runs_only_it(toy_units, tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_UNITS_FAIL", "seed=1")
    done = executor.run_in_process("toy_units", Scale.QUICK, 0, False, tmp_path, "cmd")
    assert [f.unit for f in done.failed_units] == ["seed=1"] and done.returncode == 1
    assert "planted failure in seed=1" in done.failed_units[0].error and "RuntimeError" in done.failed_units[0].traceback
    saved = json.loads((tmp_path / "toy_units" / "quick" / "result.json").read_text())
    assert saved["status"] == "incomplete" and "seed=1" in saved["reason"] and saved["metrics"]["units_done"] == ["seed=0", "seed=2"]
    assert all(c["verdict"] == "not run" and "seed=1" in c["ours"] for c in saved["claims"])
    assert study_mod.reusable_result("toy_units", Scale.QUICK, 0, tmp_path) is None  # an incomplete result is never reused
    first = study_mod.load_unit(tmp_path, "toy_units", Scale.QUICK, "seed=0", done.result.key).metrics

    monkeypatch.delenv("TOY_UNITS_FAIL")
    again = executor.run_in_process("toy_units", Scale.QUICK, 0, False, tmp_path, "cmd")
    assert again.units_run == ["seed=1"] and again.result.status == "ok"
    assert _pids(again.result)["pid_0"] == first["pid_0"]  # seed=0 was not rerun
    assert again.result.claims[0].verdict == Verdict.REPRODUCED


def test_killed_and_timed_out_units_are_failures_with_their_cause(toy_units, tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_UNITS_KILL", "seed=0")
    monkeypatch.setenv("TOY_UNITS_SLEEP", "seed=2")
    done = executor.run_in_process("toy_units", Scale.QUICK, 0, False, tmp_path, "cmd", unit_timeout_s=20)
    why = {f.unit: f.error for f in done.failed_units}
    assert why == {"seed=0": "killed by signal 9", "seed=2": "timed out after 20 s"}
    assert study_mod.load_unit(tmp_path, "toy_units", Scale.QUICK, "seed=1", done.result.key) is not None


def test_force_discards_finished_units(toy_units, tmp_path, monkeypatch):
    study_mod.run_study("toy_units", Scale.QUICK, out=tmp_path)  # in this process: units saved on disk
    units = tmp_path / "toy_units" / "quick" / "units"
    assert sorted(p.name for p in units.iterdir()) == ["seed=0", "seed=1", "seed=2"]
    started = []
    monkeypatch.setattr(executor, "_run_local", lambda args, threads, timeout: started.append(args[3:6]) or 0)
    done = executor.run_in_process("toy_units", Scale.QUICK, 0, True, tmp_path, "cmd")
    assert done.units_run == ["seed=0", "seed=1", "seed=2"] and not units.exists()  # from scratch
    assert [a for a in started if a[0] == "run-unit"] == [["run-unit", "toy_units", f"seed={i}"] for i in range(3)]


def test_ray_without_the_extra_is_a_one_line_error(monkeypatch):
    from reprolab.errors import MissingExtra

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtra, match="distributed"):
        executor.RayPool()


def test_ray_executor_gives_the_local_result_and_reruns_only_missing_units(toy_units, tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="pip install 'reprolab[distributed]' (make setup installs it)")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    marker = tmp_path / "fail"
    marker.write_text("seed=1")
    monkeypatch.setenv("TOY_UNITS_FAIL_FILE", str(marker))
    pool = executor.RayPool(cpus_per_task=1, num_cpus=2)
    try:
        done = executor.run_in_process("toy_units", Scale.SMOKE, 0, False, tmp_path / "ray", "cmd", executor="ray", pool=pool,
                                        unit_timeout_s=120)
        assert [f.unit for f in done.failed_units] == ["seed=1"] and "planted failure" in done.failed_units[0].error
        marker.unlink()
        again = executor.run_in_process("toy_units", Scale.SMOKE, 0, False, tmp_path / "ray", "cmd", executor="ray", pool=pool,
                                        unit_timeout_s=120)
        assert again.units_run == ["seed=1"] and again.result.status == "ok"
    finally:
        pool.close()
    local, _ = study_mod.run_study("toy_units", Scale.SMOKE, out=tmp_path / "local")
    strip = lambda m: {k: v for k, v in m.items() if not k.startswith("pid_") and k != "threads"}  # noqa: E731
    assert strip(again.result.metrics) == strip(local.metrics) and again.result.metrics["threads"] == "1"
    assert [f.file for f in again.result.figures] == [f.file for f in local.figures]
    assert all((tmp_path / "ray" / "toy_units" / "smoke" / f.file).exists() for f in again.result.figures)
    # the units' files came back from the tasks' scratch folders, not from a shared disk
    assert (tmp_path / "ray" / "toy_units" / "smoke" / "units" / "seed=0" / "unit.json").exists()


def test_runner_bench_compares_the_three_ways_per_study(monkeypatch, toy_units):
    """The benchmark's bookkeeping on a fake CLI: walls read from each way's result.json, ratios per study."""
    from reprolab.benches import runner as executor_bench

    walls = {"loop": 2.0, "procs": 1.0, "alone": 1.05, "ray-local": 1.0, "ray": 3.5}
    monkeypatch.setattr(executor_bench, "studies", lambda: {"a": None, "b": None})

    def fake_cli(*args, env=None, check=True, log=None):
        out = Path(args[args.index("--out") + 1])
        names = ["a", "b"] if "--all" in args else [args[1]]
        scale = args[args.index("--scale") + 1]
        for n in names:
            p = out / n / scale / "result.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps({"timings": {"wall_s": walls[out.name]}}))
        w = walls[out.name]
        return (w if w == w else 1.0) * len(names)  # a failed run still took wall time

    monkeypatch.setattr(executor_bench, "_cli", fake_cli)
    res = executor_bench.RunnerBench().run(quick=True)
    rows = {r.name.split(" (")[0]: r for r in res.rows}
    assert rows["process per study"].ratio == pytest.approx(0.5) and rows["each study alone"].seconds == pytest.approx(2.1)
    assert res.extra["per_study_ratios"]["a"] == {"demo_vs_alone": round(1.0 / 1.05, 3), "loop_vs_alone": round(2.0 / 1.05, 3)}
    assert res.extra["within_10pct_of_alone"] == "2 of 2 studies"
    if "ray" in sys.modules or __import__("importlib").util.find_spec("ray"):
        assert res.extra["ray"]["overhead_per_unit_s"] == pytest.approx((3.5 - 1.0) / 5)
    # only the two arms item 1 needs; a study that failed in one arm is named and left out of the ratios
    monkeypatch.setenv("REPROLAB_BENCH_RUNNER_ARMS", "procs,alone")
    walls["procs"] = float("nan")
    res = executor_bench.RunnerBench().run(quick=True)
    assert [r.name.split(" (")[0] for r in res.rows] == ["process per study", "each study alone"]
    assert res.extra["failed"] == {"process per study": ["a", "b"]} and res.extra["within_10pct_of_alone"] == "0 of 0 studies"
    assert res.extra["per_study_wall_s"]["process per study"] == {"a": None, "b": None}  # JSON has no NaN
    json.dumps(res.to_json(), allow_nan=False)
    # an arm named twice runs twice, in the order written; its walls are the means over its runs
    walls.update({"procs": 1.0, "procs-2": 1.2})
    monkeypatch.setenv("REPROLAB_BENCH_RUNNER_ARMS", "procs,alone,procs")
    res = executor_bench.RunnerBench().run(quick=True)
    assert res.extra["order"] == ["procs", "alone", "procs-2"]
    assert res.extra["per_study_wall_s"]["process per study"] == {"a": pytest.approx(1.1), "b": pytest.approx(1.1)}
    assert res.extra["per_run_wall_s"]["procs-2"] == {"a": 1.2, "b": 1.2}
    assert res.extra["per_study_ratios"]["b"] == {"demo_vs_alone": round(1.1 / 1.05, 3),
                                                  "demo_runs_vs_alone": [round(1.0 / 1.05, 3), round(1.2 / 1.05, 3)]}
    assert res.extra["within_10pct_of_alone"] == "2 of 2 studies"
    monkeypatch.setenv("REPROLAB_BENCH_RUNNER_ARMS", "procs,nope")
    with pytest.raises(ValueError, match="nope"):
        executor_bench.RunnerBench().run(quick=True)
