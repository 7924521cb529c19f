"""Run model-written Python in a separate, limited process.

GenPRM (arXiv 2504.00891) checks each reasoning step with a short Python snippet the model
writes (math / sympy / fractions, printing results) and feeds the execution output back to
the model; DeepSeek-GRM runs HumanEval candidate solutions against their tests; later,
OpenCodeReasoning does the same at a larger scale. The official GenPRM code executes that
code without a sandbox; ours never runs it in our own process. Everything goes through
:func:`run_python` or :class:`Sandbox`, which return a typed :class:`SandboxResult` and never
raise for the user code's failures (those are statuses); only bad arguments raise
(:class:`reprolab.errors.ConfigError`).

Usage::

    from reprolab.sandbox import run_python, Sandbox, SandboxLimits

    r = run_python("from fractions import Fraction\\nprint(Fraction(1, 3) + Fraction(1, 6))")
    r.status, r.stdout          # (SandboxStatus.OK, '1/2\\n')
    r.summary()                 # short text for a prompt (stderr tail on an error)

    box = Sandbox(SandboxLimits(timeout_s=5, memory_mb=256))
    results = box.run_many([code_a, code_b], workers=2)   # same order as the inputs

Statuses (:class:`SandboxStatus`):
    ok            exit code 0
    error         non-zero exit (uncaught exception: its traceback is in ``stderr``)
    timeout       the wall-time limit (the parent kills the process group), or the CPU limit
                  (SIGXCPU)
    memory        an allocation failed under the address-space limit (``MemoryError``,
                  ``std::bad_alloc``, "Cannot allocate memory" at the end of stderr)
    output_limit  stdout or stderr went past ``max_output_bytes``; the process is killed and
                  the captured text is cut at the limit (``truncated=True``)
    killed        ended by a signal the sandbox did not send (SIGSEGV, SIGABRT, or SIGKILL
                  from the kernel's OOM killer / the CPU hard limit)

How one run works
-----------------
1. The parent makes a fresh ``tempfile.mkdtemp()`` directory, writes the code to
   ``main.py`` there (plus any ``files=``), and starts
   ``python -I -B -c BOOTSTRAP params`` in it with ``start_new_session=True`` (its own
   process group), a minimal environment (PATH, HOME=TMPDIR=the temp dir, LANG=C.UTF-8,
   one BLAS/OpenMP thread, no proxies and nothing else of ours), stdin from a temporary
   file, stdout/stderr on pipes. ``-I`` (isolated: no user site, PYTHON* variables ignored,
   no script directory on ``sys.path``) still keeps the virtual environment's
   site-packages, so sympy / numpy import when installed; ``-S`` would drop them, so it is
   not used. ``-B``: no ``.pyc`` written (``PYTHONDONTWRITEBYTECODE`` is ignored under -I).
   No ``preexec_fn`` is used (it is unsafe with threads, and ``run_many`` uses threads):
   everything happens in the bootstrap, before the user code is read.
2. The bootstrap, in the child, in this order:
   a. **network**: ``unshare(CLONE_NEWNET)`` through ctypes (``os.unshare`` is Python
      3.12+), or as a non-root user ``unshare(CLONE_NEWUSER | CLONE_NEWNET)``: a new
      network namespace with no interface up, so any connect fails, to loopback too, and
      for programs the code might exec as well. Reported as
      ``network_isolation="netns"``; when the kernel refuses, ``"audit-hook"`` (below).
   b. **limits** (``resource.setrlimit``, soft = hard so the code cannot raise them):
      RLIMIT_AS = ``memory_mb`` (per process), RLIMIT_CPU = ceil(timeout)+1 s (SIGXCPU;
      hard limit +1 s later), RLIMIT_FSIZE = ``max_file_mb`` (SIGXFSZ ignored, so an
      oversized write is an ``OSError``), RLIMIT_CORE = 0, RLIMIT_NOFILE <= 1024,
      RLIMIT_NPROC = ``max_processes``.
   c. **privileges**: when the parent is root (as in our containers), RLIMIT_NPROC is not
      enforced for uid 0 and file permissions do not stop root, so the child switches to a
      fresh, unused uid/gid (random in a high range, checked against the user-namespace
      map; ``nobody`` as a fallback), which owns only the temp dir. A unique uid per run
      (rather than ``nobody`` for all) makes RLIMIT_NPROC count this run's processes only,
      and lets the parent kill every process of the run by uid, including any that left
      the process group with ``setsid()``. The uid keeps exactly one capability,
      CAP_DAC_READ_SEARCH (read any file, traverse any directory; also as an ambient
      capability for programs it execs): without it the interpreter cannot import its own
      standard library when that lives under a 0700 home such as ``/root/.pyenv``.
      Writing needs CAP_DAC_OVERRIDE, which is dropped. ``PR_SET_NO_NEW_PRIVS`` blocks
      setuid binaries (sudo, su) from giving privileges back.
   d. **audit hook** (``sys.addaudithook``, a second layer that also covers the non-root
      case): refuses ``socket.connect/bind/sendto/sendmsg`` on non-AF_UNIX sockets and
      name look-ups (``getaddrinfo``, ``gethostbyname``...), refuses opening a file for
      writing, creating, removing, renaming, chmod/chown/truncating/linking anything
      outside the temp dir (``/dev/null`` and the std streams excepted), and, when no
      network namespace could be made, refuses starting other programs (``subprocess``,
      ``os.system``, ``os.exec*``, ``os.posix_spawn``), since those would not carry the
      hook. Refusals raise ``PermissionError("sandbox: ...")``.
   e. reports what it achieved on a private pipe (read by the parent into
      ``network_isolation`` / ``uid``), then runs ``main.py`` as ``__main__`` with the temp
      dir first on ``sys.path``; tracebacks name ``main.py`` and skip the bootstrap frame.
3. The parent reads stdout/stderr as they come (``selectors``), keeping at most
   ``max_output_bytes`` of each (so ``while True: print('x' * 1000)`` cannot fill our
   memory), enforces the wall time, and, whenever the main process ends or a limit trips,
   kills the process group and (root case) every process of the run's uid with SIGKILL,
   repeating until none is left, so no child of a fork bomb survives. The temp dir is
   removed in a ``finally`` (after the kill), whatever happened.

Threat model: what is and is not guaranteed
--------------------------------------------
This is a guard against *accidents and careless model-written code*: infinite loops, huge
allocations, runaway output, fork loops, code that tries to download something, stray file
writes, deleting files in the working directory. It is **not a security boundary against a
determined attacker**: the child shares our kernel, filesystem view and (when not a fresh
uid) our user; the audit hook is in-process Python and can be bypassed with ctypes; the
code can *read* every file (CAP_DAC_READ_SEARCH, or simply as our user when not root),
including the project tree; a world-writable directory (``/tmp``, ``/dev/shm``) is
writable by the fresh uid for programs started without the hook; CPU is only limited in
time, not in share (a multi-threaded snippet can use every core until the wall limit);
RLIMIT_AS limits each process, not the sum; without root and without user namespaces there
is no network namespace, the uid is ours (no per-run process count, no kill-by-uid, so a
child that calls ``setsid()`` can outlive the run), and only the audit hook stops network
and writes. Never point it at code meant to attack the host; run that in a VM or a gVisor
/ nsjail / firejail container instead.

Without root, the network namespace comes with a user namespace: inside it the code sees
``os.getuid() == 65534`` (files it writes are still ours), and it loses any capability our
process had in the outer namespace (a Python readable only through such a capability cannot
start there; not a normal setup).

Cost: about 50 ms per run for a trivial snippet (interpreter start-up, bootstrap, the kill
and clean-up), about 0.6 s when it imports sympy; noisy, measured on 2 shared cores.

Measured here (root in a container, Linux 6.x, Python 3.11): netns and the uid switch are
active; a ``socket.create_connection`` to a listener the test opens on 127.0.0.1 fails and
the listener sees nothing; an unbounded fork loop is held at ``max_processes`` and nothing
survives the run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import json
import math
import os
import random
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from typing import Iterable, Mapping

from reprolab.errors import ConfigError

__all__ = ["SandboxStatus", "SandboxLimits", "SandboxResult", "Sandbox", "run_python"]

# Fresh uids for the root case are drawn from [_UID_BASE, _UID_BASE + _UID_SPAN): far above
# any uid a distribution allocates (systemd reserves up to 0x7FFFFFFF for containers, and
# nothing below 2**31 in this range is handed out by useradd).
_UID_BASE = 0x5A000000
_UID_SPAN = 1 << 24
_NOBODY = 65534
_READ_CHUNK = 65536
# After the main process has exited, how long to wait for the pipes to close (they can be
# held by a grandchild that escaped the kill, in the non-root case).
_DRAIN_GRACE_S = 0.5
_MEMORY_MARKERS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")


class SandboxStatus(str, enum.Enum):
    """How a sandboxed run ended (see the module docstring for each)."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT_LIMIT = "output_limit"
    KILLED = "killed"

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """The limits of one run. Defaults suit GenPRM's verification snippets and HumanEval."""

    timeout_s: float = 10.0  # wall time, enforced by the parent; RLIMIT_CPU = ceil(timeout)+1
    memory_mb: int = 512  # RLIMIT_AS per process (address space, not resident memory)
    max_processes: int = 32  # RLIMIT_NPROC (processes + threads of the run; exact when root)
    max_output_bytes: int = 1_000_000  # per stream (stdout, stderr); more -> output_limit
    max_file_mb: int = 64  # RLIMIT_FSIZE: largest file the code may write
    network_namespace: bool = True  # try unshare(CLONE_NEWNET); False: audit hook only
    drop_privileges: bool = True  # when root: run as a fresh uid (see module docstring)

    def __post_init__(self):
        if not isinstance(self.timeout_s, (int, float)) or isinstance(self.timeout_s, bool) \
                or not math.isfinite(self.timeout_s) or self.timeout_s <= 0:
            raise ConfigError("timeout_s", self.timeout_s, "a finite number of seconds > 0")
        for name, low in (("memory_mb", 32), ("max_processes", 1), ("max_output_bytes", 1), ("max_file_mb", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(name, value, f"an int >= {low}")


@dataclasses.dataclass(frozen=True)
class SandboxResult:
    """What a run produced. ``stdout``/``stderr`` are decoded as UTF-8 (bad bytes replaced)."""

    status: SandboxStatus
    stdout: str
    stderr: str
    returncode: int | None  # negative: killed by that signal (Popen's convention)
    seconds: float  # wall time from start to the end of the main process
    truncated: bool  # stdout or stderr was cut at max_output_bytes
    message: str = ""  # one line on why the run ended ("" when ok)
    network_isolation: str = "audit-hook"  # "netns" when a network namespace was made
    uid: int | None = None  # the fresh uid the code ran as (root case), else None

    @property
    def ok(self) -> bool:
        return self.status is SandboxStatus.OK

    def summary(self, max_lines: int = 20, max_chars: int = 2000) -> str:
        """A short text for a prompt: the outcome and the tail of the relevant stream.

        ok: the last ``max_lines`` lines of stdout. Otherwise the ``message`` line, then the
        tail of stderr (the traceback's last lines name the error), or of stdout when stderr
        is empty. At most ``max_chars`` characters, cut from the front.
        """
        if self.ok:
            body, head = self.stdout, ""
        else:
            body = self.stderr if self.stderr.strip() else self.stdout
            head = self.message or self.status.value
        lines = body.rstrip("\n").splitlines()
        tail = "\n".join(lines[-max_lines:])
        if len(lines) > max_lines:
            tail = "...\n" + tail
        text = f"{head}\n{tail}".strip("\n") if head else tail
        return text if len(text) <= max_chars else "..." + text[-(max_chars - 3):]


# The code the child runs first (with `python -I -B -c`). It must not import reprolab.
# argv[1] is a JSON object of parameters written by Sandbox._params.
_BOOTSTRAP = r'''
import json, os, resource, signal, sys
P = json.loads(sys.argv[1])
ROOT = os.path.realpath(P["root"])
info = {"netns": False, "uid": None, "notes": []}
_ctypes = _libc = None

def libc():
    global _ctypes, _libc
    if _libc is None:
        import ctypes
        _ctypes, _libc = ctypes, ctypes.CDLL(None, use_errno=True)
    return _libc

# (a) network namespace
if P["netns"]:
    try:
        if libc().unshare(0x40000000) == 0:  # CLONE_NEWNET
            info["netns"] = True
        elif P["uid"] is None and libc().unshare(0x10000000 | 0x40000000) == 0:  # + CLONE_NEWUSER
            info["netns"] = True
        else:
            info["notes"].append("unshare: errno %d" % _ctypes.get_errno())
    except Exception as e:
        info["notes"].append("unshare: %r" % (e,))

# (b) resource limits, soft = hard
def lim(res, soft, hard=None):
    hard = soft if hard is None else hard
    cur_soft, cur_hard = resource.getrlimit(res)
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    resource.setrlimit(res, (soft, hard))

lim(resource.RLIMIT_AS, P["as_bytes"])
lim(resource.RLIMIT_CPU, P["cpu_s"], P["cpu_s"] + 1)
lim(resource.RLIMIT_FSIZE, P["fsize"])
lim(resource.RLIMIT_CORE, 0)
lim(resource.RLIMIT_NOFILE, 1024)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
nproc = P["nproc"]
if P["uid"] is None:  # our own uid: the limit counts all our processes, so add those
    me, n = os.getuid(), 0
    for d in os.listdir("/proc"):
        try:
            n += d.isdigit() and os.stat("/proc/" + d).st_uid == me
        except OSError:
            pass
    nproc += n
lim(resource.RLIMIT_NPROC, nproc)

# (c) a fresh uid, keeping only CAP_DAC_READ_SEARCH
if P["uid"] is not None:
    uid = P["uid"]
    try:
        c = libc()
        c.prctl(8, 1, 0, 0, 0)  # PR_SET_KEEPCAPS
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        class Hdr(_ctypes.Structure):
            _fields_ = [("version", _ctypes.c_uint32), ("pid", _ctypes.c_int)]
        class Data(_ctypes.Structure):
            _fields_ = [("effective", _ctypes.c_uint32), ("permitted", _ctypes.c_uint32), ("inheritable", _ctypes.c_uint32)]
        data = (Data * 2)()
        data[0].effective = data[0].permitted = data[0].inheritable = 1 << 2  # CAP_DAC_READ_SEARCH
        if c.capset(_ctypes.byref(Hdr(0x20080522, 0)), data) != 0:
            info["notes"].append("capset: errno %d" % _ctypes.get_errno())
        elif c.prctl(47, 2, 2, 0, 0) != 0:  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH
            info["notes"].append("ambient cap: errno %d" % _ctypes.get_errno())
        c.prctl(8, 0, 0, 0, 0)
        info["uid"] = uid
    except Exception as e:
        info["notes"].append("setuid: %r" % (e,))
        if os.getuid() == 0:
            sys.stderr.write("sandbox: could not drop root privileges (%r)\n" % (e,))
            os._exit(70)
try:
    libc().prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
except Exception:
    pass

# (d) audit hook
def _audit_factory(root, netns):
    import os as _os, socket as _socket
    fspath, realpath, join, getcwd, sep = _os.fsdecode, _os.path.realpath, _os.path.join, _os.getcwd, _os.sep
    ok_paths = ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty")
    write_flags = _os.O_WRONLY | _os.O_RDWR | _os.O_CREAT | _os.O_TRUNC | _os.O_APPEND
    path_events = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
                   "os.link": (0, 1), "os.symlink": (1,), "os.chmod": (0,), "os.chown": (0,),
                   "os.truncate": (0,), "os.utime": (0,), "os.mkfifo": (0,), "os.mknod": (0,),
                   "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.move": (1,)}
    net_events = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"}
    lookup_events = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
                     "socket.gethostbyaddr", "socket.getnameinfo"}
    exec_events = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork_exec"}
    busy = [False]

    def inside(path):
        if isinstance(path, int) or path is None:
            return True
        try:
            p = realpath(join(getcwd(), fspath(path)))
        except Exception:
            return False
        return p == root or p.startswith(root + sep) or p in ok_paths

    def hook(event, args):
        if busy[0]:
            return
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(ch in mode for ch in "wax+")) or \
                (isinstance(flags, int) and flags & write_flags)
            if writing:
                busy[0] = True
                try:
                    bad = not inside(path)
                finally:
                    busy[0] = False
                if bad:
                    raise PermissionError("sandbox: writing outside the working directory is not allowed: %r" % (path,))
        elif event in path_events:
            busy[0] = True
            try:
                bad = [args[i] for i in path_events[event] if i < len(args) and not inside(args[i])]
            finally:
                busy[0] = False
            if bad:
                raise PermissionError("sandbox: %s outside the working directory is not allowed: %r" % (event, bad[0]))
        elif event in net_events:
            sock = args[0]
            if getattr(sock, "family", None) != _socket.AF_UNIX:
                raise PermissionError("sandbox: network access is disabled (%s %r)" % (event, args[1] if len(args) > 1 else None))
        elif event in lookup_events:
            raise PermissionError("sandbox: network access is disabled (%s)" % event)
        elif not netns and event in exec_events:
            raise PermissionError("sandbox: starting other programs is disabled without a network namespace (%s)" % event)
    return hook

sys.addaudithook(_audit_factory(ROOT, info["netns"]))
sys.dont_write_bytecode = True

# (e) report, then run main.py as __main__
try:
    os.write(P["info_fd"], json.dumps(info).encode())
finally:
    os.close(P["info_fd"])
del P, info, lim, _audit_factory

import traceback, types
with open(os.path.join(ROOT, "main.py"), encoding="utf-8") as f:
    _src = f.read()
_boot = sys.modules["__main__"]
_main = types.ModuleType("__main__")
_main.__file__ = "main.py"
_main.__builtins__ = __builtins__
sys.modules["__main__"] = _main
sys.argv = ["main.py"]
sys.path.insert(0, ROOT)
try:
    exec(compile(_src, "main.py", "exec"), _main.__dict__)
except SystemExit:
    raise
except BaseException as e:
    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
    te = traceback.TracebackException(type(e), e, tb)
    # hide the audit hook's own frame: the prompt should end on the user's line
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not (f.filename == "<string>" and f.name == "hook")])
    sys.stderr.write("".join(te.format()))
    sys.stderr.flush()
    raise SystemExit(1)
'''


def _mapped(value: int, map_path: str) -> bool:
    """Whether ``value`` lies in the current user namespace's uid (or gid) map."""
    try:
        with open(map_path) as f:
            for line in f:
                inner, _outer, count = (int(x) for x in line.split())
                if inner <= value < inner + count:
                    return True
    except (OSError, ValueError):
        return False
    return False


def _fresh_uid() -> int:
    """A random, unused uid (= gid) for one run; ``nobody`` when the namespace maps no high ids."""
    rng = random.SystemRandom()
    for _ in range(8):
        uid = _UID_BASE + rng.randrange(_UID_SPAN)
        if _mapped(uid, "/proc/self/uid_map") and _mapped(uid, "/proc/self/gid_map") and not _uid_pids(uid):
            return uid
    return _NOBODY


def _uid_pids(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real or effective uid is ``uid``."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                text = f.read()
        except OSError:
            continue
        uids = state = None
        for line in text.splitlines():
            if line.startswith("State:"):
                state = line.split()[1]
            elif line.startswith("Uid:"):
                uids = [int(x) for x in line.split()[1:3]]
                break
        if uids and uid in uids and state not in ("Z", "X"):
            pids.append(int(name))
    return pids


def _kill_all(proc: subprocess.Popen, uid: int | None) -> None:
    """SIGKILL the run's process group and (with a fresh uid) every process of that uid.

    The group is only signalled while its leader is not reaped (Popen.returncode is None):
    the leader's pid, hence the group id, cannot be reused by another process before that.
    """
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if uid is None or uid == _NOBODY:  # never kill every `nobody` process of the machine
        return
    for _ in range(200):  # a process killed mid-fork can leave a child; repeat until none
        pids = _uid_pids(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.002)


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the main process has ended, without reaping it (so its pid stays reserved)."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _rmtree(path: str) -> None:
    def onerror(func, p, _exc):  # a directory the code chmod-ed to 000 (non-root case)
        try:
            os.chmod(p if func is not os.rmdir else os.path.dirname(p), stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)


def _check_str_map(field: str, value, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, (str, bytes) if field == "files" else str)
                                                 for k, v in value.items()):
        raise ConfigError(field, value, what)
    return dict(value)


class Sandbox:
    """Runs Python source under fixed :class:`SandboxLimits`; see the module docstring."""

    def __init__(self, limits: SandboxLimits | None = None, *, python: str | None = None):
        if limits is not None and not isinstance(limits, SandboxLimits):
            raise ConfigError("limits", limits, "a SandboxLimits instance (or None for the defaults)")
        self.limits = limits or SandboxLimits()
        self.python = python or sys.executable
        if not self.python or not os.path.exists(self.python):
            raise ConfigError("python", self.python, "the path of a Python interpreter (default sys.executable)")

    def __repr__(self) -> str:
        return f"Sandbox({self.limits!r})"

    # -- one run --------------------------------------------------------------------------
    def run(self, code: str, *, stdin: str = "", files: Mapping[str, str | bytes] | None = None,
            env: Mapping[str, str] | None = None) -> SandboxResult:
        """Run ``code`` (Python source) as ``main.py`` in a fresh temp dir; never raises for
        the code's own failures. ``files``: extra files (relative path -> text or bytes) put
        next to it; ``env``: extra environment variables; ``stdin``: text fed to stdin."""
        if not isinstance(code, str):
            raise ConfigError("code", type(code).__name__, "a str of Python source")
        if not isinstance(stdin, str):
            raise ConfigError("stdin", type(stdin).__name__, "a str")
        files = _check_str_map("files", files, "a dict of relative path -> str or bytes")
        env = _check_str_map("env", env, "a dict of str -> str")
        for name in files:
            parts = name.replace("\\", "/").split("/")
            if not name or os.path.isabs(name) or ".." in parts or name == "main.py" or "\0" in name:
                raise ConfigError("files", name, "a relative path without '..', other than 'main.py'")

        lim = self.limits
        uid = _fresh_uid() if lim.drop_privileges and os.geteuid() == 0 else None
        tmp = tempfile.mkdtemp(prefix="reprolab-sandbox-")
        proc = None
        try:
            self._write_files(tmp, code, files, uid)
            child_env = self._env(tmp, env)
            info_r, info_w = os.pipe()
            params = {"root": tmp, "uid": uid, "netns": lim.network_namespace, "info_fd": info_w,
                      "as_bytes": lim.memory_mb * 2**20, "cpu_s": int(math.ceil(lim.timeout_s)) + 1,
                      "fsize": lim.max_file_mb * 2**20, "nproc": lim.max_processes}
            with tempfile.TemporaryFile() as stdin_file:
                stdin_file.write(stdin.encode("utf-8"))
                stdin_file.seek(0)
                start = time.monotonic()
                try:
                    proc = subprocess.Popen(
                        [self.python, "-I", "-B", "-c", _BOOTSTRAP, json.dumps(params)],
                        cwd=tmp, env=child_env, stdin=stdin_file, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, pass_fds=(info_w,), start_new_session=True)
                finally:
                    os.close(info_w)
                try:
                    out, err, info, reason, truncated, seconds = self._pump(proc, info_r, start, uid)
                finally:
                    os.close(info_r)
            return self._classify(proc.returncode, out, err, info, reason, truncated, seconds, uid)
        finally:
            if proc is not None:
                _kill_all(proc, uid)
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            _rmtree(tmp)

    def run_many(self, codes: Iterable[str], *, workers: int = 1, stdin: str = "") -> list[SandboxResult]:
        """Run each code in its own sandbox; results in the order of ``codes``.

        ``workers`` runs that many at once (a thread pool, each thread waiting on its own
        subprocess). With the fresh-uid scheme each run has its own process count.
        """
        codes = list(codes)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ConfigError("workers", workers, "an int >= 1")
        if workers == 1 or len(codes) <= 1:
            return [self.run(c, stdin=stdin) for c in codes]
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(codes))) as pool:
            return list(pool.map(lambda c: self.run(c, stdin=stdin), codes))

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _write_files(tmp: str, code: str, files: dict, uid: int | None) -> None:
        with open(os.path.join(tmp, "main.py"), "w", encoding="utf-8") as f:
            f.write(code)
        for name, content in files.items():
            path = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
        if uid is not None:
            for dirpath, dirnames, filenames in os.walk(tmp):
                os.chown(dirpath, uid, uid)
                for name in filenames:
                    os.chown(os.path.join(dirpath, name), uid, uid)
        os.chmod(tmp, 0o700)

    @staticmethod
    def _env(tmp: str, extra: dict[str, str]) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": tmp, "TMPDIR": tmp, "USER": "sandbox", "LOGNAME": "sandbox",
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg",
        }
        env.update(extra)
        return env

    def _pump(self, proc: subprocess.Popen, info_r: int, start: float, uid: int | None):
        """Read stdout/stderr/info until EOF, enforcing the wall time and the output cap."""
        lim = self.limits
        deadline = start + lim.timeout_s
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        bufs = {out_fd: bytearray(), err_fd: bytearray(), info_r: bytearray()}
        sel = selectors.DefaultSelector()
        for fd in bufs:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        reason, truncated, ended, seconds = None, False, None, None
        try:
            while sel.get_map():
                now = time.monotonic()
                if ended is None and _exited(proc):
                    ended = now
                    seconds = now - start
                    _kill_all(proc, uid)  # children may hold the pipes open
                if ended is None and reason is None and now >= deadline:
                    reason = SandboxStatus.TIMEOUT
                    _kill_all(proc, uid)
                if ended is not None and now - ended > _DRAIN_GRACE_S:
                    break
                wait = 0.05 if ended is None else max(0.0, _DRAIN_GRACE_S - (now - ended))
                if ended is None and reason is None:
                    wait = min(wait, max(0.0, deadline - now))
                for key, _ in sel.select(timeout=wait):
                    fd = key.fd
                    try:
                        chunk = os.read(fd, _READ_CHUNK)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(fd)
                        continue
                    buf = bufs[fd]
                    cap = lim.max_output_bytes if fd != info_r else 65536
                    room = cap - len(buf)
                    if room > 0:
                        buf += chunk[:room]
                    if len(chunk) > room and fd != info_r:
                        truncated = True
                        if reason is None:
                            reason = SandboxStatus.OUTPUT_LIMIT
                            _kill_all(proc, uid)
        finally:
            sel.close()
        # The pipes can close before the process ends (it may close fds 1 and 2 itself).
        while reason is None and not _exited(proc):
            if time.monotonic() >= deadline:
                reason = SandboxStatus.TIMEOUT
                break
            time.sleep(0.01)
        if seconds is None:
            seconds = time.monotonic() - start
        _kill_all(proc, uid)  # before reaping the leader, so its group id stays reserved
        proc.wait(timeout=5)
        try:
            info = json.loads(bytes(bufs[info_r]).decode() or "{}")
        except ValueError:
            info = {}
        text = lambda b: bytes(b).decode("utf-8", errors="replace")
        return text(bufs[out_fd]), text(bufs[err_fd]), info, reason, truncated, seconds

    def _classify(self, rc, out, err, info, reason, truncated, seconds, uid) -> SandboxResult:
        lim = self.limits
        tail = err.rstrip().splitlines()[-3:] if err.strip() else []
        memory_hit = any(marker in line for line in tail for marker in _MEMORY_MARKERS)
        if reason is SandboxStatus.TIMEOUT:
            status, message = reason, f"timeout: the wall-time limit of {lim.timeout_s:g} s was reached"
        elif reason is SandboxStatus.OUTPUT_LIMIT:
            status, message = reason, f"output_limit: more than {lim.max_output_bytes} bytes of output; the process was killed"
        elif rc == 0:
            status, message = SandboxStatus.OK, ""
        elif rc is not None and rc < 0:
            sig = -rc
            try:
                signame = signal.Signals(sig).name
            except ValueError:
                signame = f"signal {sig}"
            if sig == signal.SIGXCPU:
                status, message = SandboxStatus.TIMEOUT, f"timeout: the CPU-time limit of {int(math.ceil(lim.timeout_s)) + 1} s was reached"
            elif memory_hit:
                status, message = SandboxStatus.MEMORY, f"memory: an allocation failed under the {lim.memory_mb} MB limit ({signame})"
            else:
                status, message = SandboxStatus.KILLED, f"killed by {signame}"
        elif memory_hit:
            status, message = SandboxStatus.MEMORY, f"memory: an allocation failed under the {lim.memory_mb} MB limit"
        else:
            last = tail[-1].strip() if tail else ""
            status, message = SandboxStatus.ERROR, f"error: exit code {rc}" + (f": {last}" if last else "")
        return SandboxResult(
            status=status, stdout=out, stderr=err, returncode=rc, seconds=round(seconds, 4),
            truncated=truncated, message=message,
            network_isolation="netns" if info.get("netns") else "audit-hook",
            uid=info.get("uid", None) if info else None,
        )


def run_python(code: str, *, stdin: str = "", timeout_s: float = 10.0, memory_mb: int = 512,
               max_processes: int = 32, max_output_bytes: int = 1_000_000, max_file_mb: int = 64,
               files: Mapping[str, str | bytes] | None = None, env: Mapping[str, str] | None = None) -> SandboxResult:
    """Run ``code`` once in a :class:`Sandbox` with these limits (see :class:`SandboxLimits`)."""
    limits = SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb, max_processes=max_processes,
                           max_output_bytes=max_output_bytes, max_file_mb=max_file_mb)
    return Sandbox(limits).run(code, stdin=stdin, files=files, env=env)
