"""Tests of reprolab.sandbox: each status, hostile code (loops, fork bombs, huge allocations,
output floods), and every escape of issue 15 as root and as an unprivileged user."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from reprolab.errors import ConfigError
from tests import sandbox_escapes  # also a script, run as root and as nobody: see its docstring
from tests.sandbox_escapes import MODES
from reprolab.sandbox import (LAYERS, Sandbox, SandboxLimits, SandboxResult, SandboxStatus, WeakerIsolation, _uid_pids,
                              missing_layers, run_python)


IS_ROOT = os.geteuid() == 0


def _alive(pid: int) -> bool:
    """Running (not a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line.split()[1] for line in f if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return state not in ("Z", "X")


def test_ok_captures_stdout():
    r = run_python("import sys\nprint('hello')\nprint(6 * 7)\nsys.stderr.write('note\\n')")
    assert r.status is SandboxStatus.OK and r.ok
    assert r.returncode == 0
    assert r.stdout == "hello\n42\n"
    assert r.stderr == "note\n"
    assert not r.truncated and r.message == ""
    assert r.summary() == "hello\n42"


def test_error_has_traceback_and_summary():
    r = run_python("def f(x):\n    return 1 / x\nprint('before')\nf(0)")
    assert r.status is SandboxStatus.ERROR and not r.ok
    assert r.returncode == 1
    assert r.stdout == "before\n"
    assert "Traceback" in r.stderr and r.stderr.rstrip().endswith("ZeroDivisionError: division by zero")
    assert 'File "main.py", line 4' in r.stderr  # our bootstrap frame is not shown
    assert "ZeroDivisionError" in r.message
    s = r.summary(max_lines=2)
    assert s.startswith("error: exit code 1") and s.endswith("ZeroDivisionError: division by zero")


def test_syntax_error_and_exit_code():
    r = run_python("print(1 +)")
    assert r.status is SandboxStatus.ERROR and "SyntaxError" in r.stderr
    r = run_python("import sys\nsys.exit(3)")
    assert r.status is SandboxStatus.ERROR and r.returncode == 3


def test_stdin_env_and_files():
    r = run_python("import os, helper\nprint(input()[::-1], os.environ['MY_VAR'], helper.VALUE)",
                   stdin="abc\n", env={"MY_VAR": "v"}, files={"helper.py": "VALUE = 5\n"})
    assert r.ok, r.stderr
    assert r.stdout == "cba v 5\n"


def test_environment_is_minimal():
    os.environ["REPROLAB_SANDBOX_SECRET"] = "x"
    try:
        r = run_python("import os\nprint(sorted(os.environ))")
    finally:
        del os.environ["REPROLAB_SANDBOX_SECRET"]
    assert r.ok
    assert "REPROLAB_SANDBOX_SECRET" not in r.stdout and "HTTP_PROXY" not in r.stdout


def test_timeout_infinite_loop_returns_in_time():
    t0 = time.monotonic()
    r = run_python("while True:\n    pass", timeout_s=1.0)
    elapsed = time.monotonic() - t0
    assert r.status is SandboxStatus.TIMEOUT
    assert elapsed < 1.0 + 2.0
    assert "1 s" in r.summary()


def test_timeout_keeps_partial_output():
    r = run_python("import time\nprint('started', flush=True)\ntime.sleep(60)", timeout_s=1.0)
    assert r.status is SandboxStatus.TIMEOUT and r.stdout == "started\n"


def test_timeout_with_closed_std_streams():
    r = run_python("import os\nos.close(1)\nos.close(2)\nwhile True:\n    pass", timeout_s=1.0)
    assert r.status is SandboxStatus.TIMEOUT and r.seconds < 1.0 + 2.0


def test_memory_huge_allocation():
    r = run_python("x = bytearray(2 * 1024**3)\nprint('allocated')", memory_mb=256)
    assert r.status is SandboxStatus.MEMORY
    assert "allocated" not in r.stdout
    assert "MemoryError" in r.stderr


def test_memory_gradual_growth():
    r = run_python("chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 2**20))", memory_mb=256, timeout_s=10)
    assert r.status is SandboxStatus.MEMORY


def test_segfault_is_killed():
    r = run_python("import ctypes\nctypes.string_at(0)")
    assert r.status is SandboxStatus.KILLED and r.returncode == -11
    assert "SIGSEGV" in r.message


def test_output_flood_is_capped():
    t0 = time.monotonic()
    r = run_python("while True:\n    print('x' * 1000)", max_output_bytes=100_000, timeout_s=10)
    assert r.status is SandboxStatus.OUTPUT_LIMIT
    assert r.truncated
    assert len(r.stdout) == 100_000
    assert time.monotonic() - t0 < 5  # killed at the cap, not at the wall limit


def test_stderr_flood_is_capped():
    r = run_python("import sys\nwhile True:\n    sys.stderr.write('e' * 1000)", max_output_bytes=50_000)
    assert r.status is SandboxStatus.OUTPUT_LIMIT and len(r.stderr) == 50_000


def _box_processes(workdir: str) -> list[int]:
    """Host pids of live processes whose command line names the run's temp dir (every
    process forked from the bootstrap carries it in its argv), whatever pid namespace."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and _alive(int(name)):
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if workdir.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def test_fork_bomb_bounded_is_contained():
    code = textwrap.dedent("""
        import os, time
        print(os.getcwd(), flush=True)
        for i in range(200):
            try:
                pid = os.fork()
            except OSError as e:
                print('fork failed', e.errno, flush=True)
                break
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            print(pid, flush=True)
    """)
    t0 = time.monotonic()
    r = run_python(code, timeout_s=5, max_processes=16)
    assert time.monotonic() - t0 < 5 + 2
    workdir, *lines = r.stdout.splitlines()
    pids = [int(line) for line in lines if line.isdigit()]
    assert pids
    assert "fork failed" in r.stdout and len(pids) <= 16  # RLIMIT_NPROC enforced
    if IS_ROOT:
        assert r.uid is not None and _uid_pids(r.uid) == []
    time.sleep(0.05)
    assert _box_processes(workdir) == []


def test_fork_bomb_recursive_is_contained():
    code = textwrap.dedent("""
        import os, time
        print(os.getcwd(), flush=True)
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    """)
    t0 = time.monotonic()
    r = run_python(code, timeout_s=1.5, max_processes=16)
    assert time.monotonic() - t0 < 1.5 + 2
    assert r.status is SandboxStatus.TIMEOUT
    time.sleep(0.05)
    assert _box_processes(r.stdout.splitlines()[0]) == []
    if IS_ROOT:
        assert r.uid is not None and _uid_pids(r.uid) == []


@pytest.mark.parametrize("mode", ["all", "no-namespaces"])
def test_setsid_child_does_not_survive(mode):
    code = textwrap.dedent("""
        import os, time
        print(os.getcwd(), flush=True)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
            os._exit(0)
        time.sleep(0.2)
    """)
    r = Sandbox(SandboxLimits(timeout_s=5), **MODES[mode]).run(code)
    assert r.ok, r.stderr
    time.sleep(0.05)
    assert _box_processes(r.stdout.strip()) == []


# ------------------------------------------------------------------ escapes, root and nobody
# tests/sandbox_escapes.py tries each escape of issue 15 and checks it from outside; it runs
# as a script in a subprocess: as the current user, and, when the suite runs as root, also
# as `nobody` through setpriv, from a copy nobody can read (see _nobody_copy). Each mode of
# sandbox_escapes.MODES runs: every layer, and every layer but the namespaces (Landlock,
# seccomp and the supervisor alone, as on a machine without user namespaces).

SETPRIV = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--inh-caps=-all"]
ESCAPES = [cls.name for cls in sandbox_escapes.ATTEMPTS]
_HERE = os.path.dirname(os.path.abspath(__file__))


def _run_escapes(argv: list[str], cwd: str) -> dict:
    p = subprocess.run(argv + list(MODES), cwd=cwd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"the escape harness died (rc {p.returncode}): {p.stderr[-2000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def _nobody_python() -> str:
    """An interpreter `nobody` can run: the venv's usually lives under /root (0700), so try
    it first, then the system's."""
    for cand in (sys.executable, getattr(sys, "_base_executable", None), "/usr/bin/python3",
                 "/usr/local/bin/python3", shutil.which("python3")):
        check = "import ctypes, json, os, sys; assert os.access(os.path.realpath(sys.executable), os.R_OK)"
        if cand and subprocess.run(SETPRIV + [cand, "-c", check], capture_output=True).returncode == 0:
            return cand
    pytest.fail("no Python interpreter is readable by `nobody` (the unprivileged escape tests need one, "
                "e.g. Debian's python3-minimal)")


def _nobody_copy() -> str:
    """reprolab/{__init__,errors,sandbox}.py, pyseccomp.py and sandbox_escapes.py in a
    directory `nobody` can read: the same code, without our (root-only) tree."""
    import pyseccomp
    import reprolab.errors
    import reprolab.sandbox

    d = tempfile.mkdtemp(prefix="reprolab-nobody-")
    os.makedirs(os.path.join(d, "reprolab"))
    open(os.path.join(d, "reprolab", "__init__.py"), "w").close()
    for mod, dest in ((reprolab.errors, "reprolab/errors.py"), (reprolab.sandbox, "reprolab/sandbox.py"),
                      (pyseccomp, "pyseccomp.py"), (sandbox_escapes, "sandbox_escapes.py")):
        shutil.copy(mod.__file__, os.path.join(d, dest))
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o755)
    os.chmod(d, 0o755)
    return d


@pytest.fixture(scope="module")
def escape_results() -> dict[str, dict]:
    """user -> mode -> escape -> row (see sandbox_escapes)."""
    out = {"current": _run_escapes([sys.executable, os.path.join(_HERE, "sandbox_escapes.py")], _HERE)}
    if IS_ROOT:
        d = _nobody_copy()
        try:
            out["nobody"] = _run_escapes(SETPRIV + [_nobody_python(), os.path.join(d, "sandbox_escapes.py")], d)
            assert out["nobody"]["uid"] == 65534
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return out


@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("user", ["current", "nobody"])
def test_escape_is_stopped(escape_results, user, mode, escape):
    if user == "nobody" and not IS_ROOT:
        pytest.skip("the suite runs unprivileged: the 'current' user case is the unprivileged one")
    row = escape_results[user]["results"][mode][escape]
    assert not row["escaped"], f"{escape} escaped the sandbox as {user} ({mode}): {row}"
    if row["control_expected"]:  # the same code outside the sandbox does escape: the check can fail
        assert row["control"], f"the control of {escape} did not escape, so the test proves nothing: {row}"
    if mode == "all":
        assert {"landlock", "seccomp", "namespaces", "supervisor", "tree-memory"} <= set(row["isolation"]), row
    else:
        assert "namespaces" not in row["isolation"] and {"landlock", "seccomp"} <= set(row["isolation"]), row


def test_escapes_ran_as_root_and_as_nobody(escape_results):
    if IS_ROOT:
        assert escape_results["current"]["uid"] == 0 and escape_results["nobody"]["uid"] == 65534
    else:
        assert escape_results["current"]["uid"] != 0


# ------------------------------------------------------------------------ layers reported
def test_isolation_reported():
    r = run_python("import socket\nprint('imported')")  # importing socket itself is fine
    assert r.ok and r.stdout == "imported\n"
    assert {"landlock", "seccomp", "namespaces", "netns", "rlimits", "supervisor", "tree-memory"} <= set(r.isolation)
    assert r.network_isolation == "netns"
    assert ("fresh-uid" in r.isolation) == IS_ROOT and (r.uid is not None) == IS_ROOT
    r = Sandbox(SandboxLimits(network_namespace=False)).run("print(1)")
    assert r.ok and r.network_isolation == "seccomp" and "netns" not in r.isolation


def test_no_netns_seccomp_refuses_inet_sockets():
    r = Sandbox(SandboxLimits(network_namespace=False)).run(
        "import socket\ntry:\n    socket.socket()\n    print('created')\nexcept OSError as e:\n    print(e.errno)")
    assert r.ok and r.stdout.strip() == "97"  # EAFNOSUPPORT


def test_layers_left_out_are_not_reported():
    r = Sandbox(allow_weaker=LAYERS, without=LAYERS).run("import socket\nsocket.socket()\nprint('ok')")
    assert r.ok and r.stdout == "ok\n"  # nothing of ours stops it: the layers above are what does
    assert not {"landlock", "seccomp", "namespaces"} & set(r.isolation)
    assert {"rlimits", "supervisor", "tree-memory"} <= set(r.isolation)


def test_missing_layer_refused_unless_allowed(monkeypatch):
    import reprolab.sandbox as sb

    monkeypatch.setattr(sb, "missing_layers", lambda: {"namespaces": "user namespaces are disabled (test)"})
    with pytest.raises(WeakerIsolation) as info:
        Sandbox()
    assert info.value.missing == ("namespaces",)
    assert "user namespaces are disabled (test)" in str(info.value) and "allow_weaker=('namespaces',)" in str(info.value)
    with pytest.raises(WeakerIsolation):
        run_python("print(1)")
    r = run_python("print(1)", allow_weaker=("namespaces",))
    assert r.ok and "namespaces" not in r.isolation and "landlock" in r.isolation


def test_allow_weaker_and_without_validated():
    with pytest.raises(ConfigError, match="allow_weaker"):
        Sandbox(allow_weaker=("landlok",))
    with pytest.raises(ConfigError, match="without"):
        Sandbox(without=("seccomp",))  # must also be in allow_weaker
    assert Sandbox(allow_weaker="seccomp").allow_weaker == {"seccomp"}


def test_this_machine_has_every_layer():
    """The machines this project runs on (Linux 6.18, Landlock ABI 7, bwrap, libseccomp) have
    them all; if not, the README says what each platform gets and this test names what is missing."""
    assert missing_layers() == {}


def test_writes_and_reads_inside_the_box_work():
    code = textwrap.dedent("""
        import os, subprocess, tempfile
        open('a.txt', 'w').write('x')
        with tempfile.NamedTemporaryFile(dir='/tmp') as f:   # the private /tmp
            f.write(b'y')
        os.makedirs('d/e')
        print(subprocess.run(['sh', '-c', 'echo hi > d/e/f; cat d/e/f'], capture_output=True, text=True).stdout.strip())
        import fractions, json, sqlite3
        print(open('/etc/passwd').read().count(':') > 0, os.path.exists('/root/.bashrc'))
    """)
    r = run_python(code)
    assert r.ok, r.stderr
    assert r.stdout.splitlines() == ["hi", "True False"]


def test_tree_memory_limit_kills_all_children():
    code = textwrap.dedent("""
        import os, time
        print(os.getcwd(), flush=True)
        for i in range(4):
            if os.fork() == 0:
                block = bytearray(b'\\x01') * (60 * 2**20)
                time.sleep(30)
        time.sleep(30)
    """)
    r = run_python(code, memory_mb=128, timeout_s=10)
    assert r.status is SandboxStatus.MEMORY and "together" in r.message, (r.status, r.message)
    assert r.seconds < 5
    assert _box_processes(r.stdout.splitlines()[0]) == []


def test_many_small_forked_children_are_not_killed():
    """PSS, not RSS: eight forked children sharing the parent's pages stay under 256 MB."""
    code = textwrap.dedent("""
        import os, time
        import fractions, decimal, json  # some shared pages
        kids = []
        for i in range(8):
            pid = os.fork()
            if pid == 0:
                time.sleep(0.5)
                os._exit(0)
            kids.append(pid)
        for pid in kids:
            os.waitpid(pid, 0)
        print('done')
    """)
    r = run_python(code, memory_mb=256, timeout_s=10)
    assert r.ok and r.stdout == "done\n", (r.status, r.message)


def test_writes_inside_temp_dir_work_and_dir_is_removed():
    code = "import os, tempfile\nopen('out.txt', 'w').write('hi')\nos.mkdir('sub')\n" \
           "tempfile.NamedTemporaryFile(delete=False).write(b'x')\nprint(os.getcwd())\nprint(open('out.txt').read())"
    r = run_python(code)
    assert r.ok, r.stderr
    cwd, content = r.stdout.split()
    assert content == "hi"
    assert os.path.basename(cwd).startswith("reprolab-sandbox-")
    assert not os.path.exists(cwd)


def test_temp_dir_removed_after_timeout():
    r = run_python("import os\nprint(os.getcwd(), flush=True)\nopen('big', 'w').write('x' * 1000)\nwhile True: pass", timeout_s=1)
    assert r.status is SandboxStatus.TIMEOUT
    assert not os.path.exists(r.stdout.strip())


def test_file_size_limit():
    r = run_python("open('f', 'wb').write(b'x' * (3 * 2**20))", max_file_mb=1)
    assert r.status is SandboxStatus.ERROR and "File too large" in r.stderr


@pytest.mark.skipif(importlib.util.find_spec("sympy") is None or importlib.util.find_spec("numpy") is None,
                    reason="sympy/numpy not installed")
def test_sympy_numpy_import():
    r = run_python("import sympy, numpy as np\nx = sympy.symbols('x')\n"
                   "print(sympy.solve(x**2 - 4, x), int(np.arange(5).sum()))", timeout_s=30)
    assert r.ok, r.stderr
    assert r.stdout == "[-2, 2] 10\n"


def test_run_many_preserves_order():
    box = Sandbox(SandboxLimits(timeout_s=5))
    codes = [f"import time\ntime.sleep({0.3 if i % 2 == 0 else 0.0})\nprint({i})" for i in range(5)] + ["1/0"]
    results = box.run_many(codes, workers=3)
    assert [r.stdout.strip() for r in results[:5]] == [str(i) for i in range(5)]
    assert results[5].status is SandboxStatus.ERROR
    assert all(isinstance(r, SandboxResult) for r in results)
    if IS_ROOT:
        assert len({r.uid for r in results}) == len(results)  # one fresh uid per run


@pytest.mark.parametrize("kwargs", [dict(timeout_s=-1), dict(timeout_s=float("nan")), dict(memory_mb=0),
                                    dict(max_processes=0), dict(max_output_bytes=0), dict(memory_mb=1.5)])
def test_bad_limits_raise_config_error(kwargs):
    with pytest.raises(ConfigError) as info:
        SandboxLimits(**kwargs)
    field = next(iter(kwargs))
    assert field in str(info.value) and "fix:" in str(info.value)


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="timeout_s"):
        run_python("print(1)", timeout_s=0)
    with pytest.raises(ConfigError, match="code"):
        run_python(b"print(1)")
    with pytest.raises(ConfigError, match="files"):
        run_python("print(1)", files={"../escape.py": "x"})
    with pytest.raises(ConfigError, match="files"):
        run_python("print(1)", files={"/abs.py": "x"})
    with pytest.raises(ConfigError, match="env"):
        run_python("print(1)", env={"A": 1})
    with pytest.raises(ConfigError, match="workers"):
        Sandbox().run_many(["print(1)"], workers=0)


def test_summary_is_short():
    r = run_python("for i in range(1000):\n    print(i)")
    s = r.summary(max_lines=3)
    assert s == "...\n997\n998\n999"
    assert len(r.summary(max_chars=50)) <= 50


def test_an_interpreter_under_tmp_stays_visible_in_the_box(tmp_path):
    """A checkout (and its virtual environment) under /tmp, as CI clones make: the box's private
    /tmp must not hide the interpreter (it did: `bwrap: execvp ...: No such file or directory`)."""
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    r = Sandbox(SandboxLimits(timeout_s=20), python=str(venv / "bin" / "python")).run("print(6 * 7)")
    assert r.status == SandboxStatus.OK and r.stdout == "42\n", r.stderr
