"""Tests of reprolab.sandbox: each status, and hostile code (loops, fork bombs, huge
allocations, output floods, network, writes outside the temp dir)."""

from __future__ import annotations

import importlib.util
import os
import socket
import textwrap
import time

import pytest

from reprolab.errors import ConfigError
from reprolab.sandbox import Sandbox, SandboxLimits, SandboxResult, SandboxStatus, _uid_pids, run_python

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


def test_fork_bomb_bounded_is_contained():
    code = textwrap.dedent("""
        import os, time
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
    pids = [int(line) for line in r.stdout.splitlines() if line.isdigit()]
    assert pids
    if IS_ROOT:
        assert r.uid is not None
        assert "fork failed" in r.stdout and len(pids) < 16  # RLIMIT_NPROC enforced
        assert _uid_pids(r.uid) == []
    time.sleep(0.05)
    assert [p for p in pids if _alive(p)] == []


def test_fork_bomb_recursive_is_contained():
    code = textwrap.dedent("""
        import os, time
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
    if IS_ROOT:
        assert r.uid is not None and _uid_pids(r.uid) == []


def test_setsid_child_does_not_survive():
    code = textwrap.dedent("""
        import os, time
        pid = os.fork()
        if pid == 0:
            os.setsid()
            time.sleep(60)
            os._exit(0)
        print(pid, flush=True)
    """)
    r = run_python(code, timeout_s=5)
    assert r.ok
    pid = int(r.stdout)
    if not IS_ROOT:
        pytest.skip("kill-by-uid needs root; a setsid() child can outlive a non-root run (documented)")
    time.sleep(0.05)
    assert not _alive(pid)


def _listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.3)
    return srv


def _assert_no_connection(srv):
    with pytest.raises(socket.timeout):
        conn, _ = srv.accept()
        conn.close()


def test_network_connect_fails_and_listener_sees_nothing():
    srv = _listener()
    try:
        port = srv.getsockname()[1]
        r = run_python(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')")
        assert r.status is SandboxStatus.ERROR
        assert "connected" not in r.stdout
        assert "network access is disabled" in r.stderr
        _assert_no_connection(srv)
    finally:
        srv.close()


def test_network_namespace_blocks_connect_below_the_audit_hook():
    """libc connect() through ctypes skips the Python audit hook: only the netns stops it."""
    srv = _listener()
    try:
        port = srv.getsockname()[1]
        code = textwrap.dedent(f"""
            import ctypes, socket, struct
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
            addr = struct.pack('<H', socket.AF_INET) + struct.pack('>H', {port}) + socket.inet_aton('127.0.0.1') + bytes(8)
            rc = libc.connect(fd, ctypes.c_char_p(addr), len(addr))
            print('rc', rc, 'errno', ctypes.get_errno())
        """)
        r = run_python(code)
        assert r.ok, r.stderr
        if r.network_isolation != "netns":
            pytest.skip("no network namespace on this machine: only the audit hook guards the network")
        assert r.stdout.startswith("rc -1 "), r.stdout
        _assert_no_connection(srv)
    finally:
        srv.close()


def test_network_isolation_reported():
    r = run_python("import socket\nprint('imported')")  # importing socket itself is fine
    assert r.ok and r.stdout == "imported\n"
    assert r.network_isolation in ("netns", "audit-hook")
    if IS_ROOT:
        assert r.network_isolation == "netns"
    r = Sandbox(SandboxLimits(network_namespace=False)).run("print(1)")
    assert r.ok and r.network_isolation == "audit-hook"


def test_audit_hook_alone_blocks_connect():
    srv = _listener()
    try:
        port = srv.getsockname()[1]
        r = Sandbox(SandboxLimits(network_namespace=False)).run(
            f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))\nprint('connected')")
        assert r.status is SandboxStatus.ERROR and "network access is disabled" in r.stderr
        _assert_no_connection(srv)
    finally:
        srv.close()


def test_write_outside_temp_dir_fails(tmp_path):
    target_dir = tmp_path / "project"
    target_dir.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(target_dir, 0o755)
    existing = target_dir / "existing.txt"
    existing.write_text("original\n")
    os.chmod(existing, 0o644)
    new = target_dir / "new.txt"
    code = textwrap.dedent(f"""
        import os, subprocess
        results = []
        for attempt in (lambda: open({str(new)!r}, 'w').write('x'),
                        lambda: open({str(existing)!r}, 'a').write('x'),
                        lambda: os.remove({str(existing)!r}),
                        lambda: os.open({str(new)!r}, os.O_CREAT | os.O_WRONLY)):
            try:
                attempt()
                results.append('written')
            except OSError as e:
                results.append(type(e).__name__)
        # a shell is not under the audit hook: only the uid switch (root case) stops it
        sh = subprocess.run(['sh', '-c', 'echo x >> {existing}; echo x > {new}'], capture_output=True)
        print(results, sh.returncode)
    """)
    r = run_python(code)
    assert r.ok, r.stderr
    assert "written" not in r.stdout and "PermissionError" in r.stdout
    if IS_ROOT:
        assert not r.stdout.strip().endswith(" 0"), r.stdout  # the shell's writes failed too
    assert existing.read_text() == "original\n"
    assert not new.exists()


@pytest.mark.skipif(not IS_ROOT, reason="the uid switch only happens when the parent is root")
def test_controls_show_the_layers_matter(tmp_path):
    """Without the uid switch a shell can write where root can; without the netns a libc
    connect reaches the listener: so the two tests above can fail."""
    os.chmod(tmp_path, 0o755)
    target = tmp_path / "new.txt"
    r = Sandbox(SandboxLimits(drop_privileges=False)).run(
        f"import subprocess\nprint(subprocess.run(['sh', '-c', 'echo x > {target}']).returncode)")
    assert r.ok and r.stdout == "0\n" and target.exists()
    srv = _listener()
    try:
        port = srv.getsockname()[1]
        code = textwrap.dedent(f"""
            import ctypes, socket, struct
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
            addr = struct.pack('<H', socket.AF_INET) + struct.pack('>H', {port}) + socket.inet_aton('127.0.0.1') + bytes(8)
            print(libc.connect(fd, ctypes.c_char_p(addr), len(addr)))
        """)
        r = Sandbox(SandboxLimits(network_namespace=False)).run(code)
        assert r.ok and r.stdout == "0\n" and r.network_isolation == "audit-hook"
        conn, _ = srv.accept()
        conn.close()
    finally:
        srv.close()


def test_write_in_world_writable_dir_blocked_by_audit_hook(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(shared, 0o1777)
    r = run_python(f"open({str(shared / 'x.txt')!r}, 'w').write('x')")
    assert r.status is SandboxStatus.ERROR and "writing outside the working directory" in r.stderr
    assert not (shared / "x.txt").exists()


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
