"""Run model-written Python in a separate process confined by the kernel.

GenPRM (arXiv 2504.00891) checks each reasoning step with a short Python snippet the model
writes (math / sympy / fractions, printing results) and feeds the execution output back to
the model; DeepSeek-GRM runs HumanEval candidate solutions against their tests; later,
OpenCodeReasoning, the agent and AI-scientist papers do the same at a larger scale. The
official GenPRM code executes that code without a sandbox; ours never runs it in our own
process. Everything goes through :func:`run_python` or :class:`Sandbox`, which return a typed
:class:`SandboxResult` and never raise for the user code's failures (those are statuses);
bad arguments raise :class:`reprolab.errors.ConfigError`, and a machine that lacks a layer
raises :class:`WeakerIsolation` unless the caller accepts that with ``allow_weaker=``.

Usage::

    from reprolab.sandbox import run_python, Sandbox, SandboxLimits

    r = run_python("from fractions import Fraction\\nprint(Fraction(1, 3) + Fraction(1, 6))")
    r.status, r.stdout          # (SandboxStatus.OK, '1/2\\n')
    r.summary()                 # short text for a prompt (stderr tail on an error)
    r.isolation                 # the layers that were active, e.g. ('landlock', 'seccomp', 'namespaces', ...)

    box = Sandbox(SandboxLimits(timeout_s=5, memory_mb=256))
    results = box.run_many([code_a, code_b], workers=2)   # same order as the inputs
    Sandbox(allow_weaker=("namespaces",))                  # a machine without user namespaces

Statuses (:class:`SandboxStatus`):
    ok            exit code 0
    error         non-zero exit (uncaught exception: its traceback is in ``stderr``)
    timeout       the wall-time limit (the parent kills the whole box), or the CPU limit (SIGXCPU)
    memory        an allocation failed under the per-process address-space limit
                  (``MemoryError`` ...), or the box's processes *together* went over
                  ``memory_mb`` (the parent kills them all)
    output_limit  stdout or stderr went past ``max_output_bytes``; the box is killed and the
                  captured text is cut at the limit (``truncated=True``)
    killed        ended by a signal the sandbox did not send (SIGSEGV, SIGABRT, the kernel's
                  OOM killer, the CPU hard limit)

The layers, and which one stops what
------------------------------------
Every layer is applied by the kernel; none depends on the code's cooperation. The names in
brackets are those in ``result.isolation`` and ``allow_weaker=``.

``namespaces`` -- bubblewrap (Debian's ``bwrap``; as a normal user through an unprivileged user
  namespace): a private mount namespace whose root holds, read-only, only ``/usr`` (and the
  ``/bin``, ``/lib*`` links), ``/etc``, and the interpreter's prefix and virtual environment,
  plus the run's temp dir (read-write); a fresh ``/proc`` and minimal ``/dev``; ``/tmp`` and
  ``/dev/shm`` as private tmpfs capped at ``max_file_mb``. So ``/home``, ``/root``, ``/run``,
  the project tree, other users' files and every pathname unix socket of the host are simply
  absent. A pid namespace (its init is bwrap; when it ends, the kernel kills every process in
  it: no double-forked, setsid'ed or detached survivor; no other process of the host can even
  be named), a network namespace (no interface up: no connection anywhere, loopback included),
  IPC and UTS namespaces, ``--die-with-parent``, ``--new-session`` (no TIOCSTI into our tty),
  ``--disable-userns`` (no nested user namespace).
``landlock`` -- Landlock (ABI >= 6), applied by the bootstrap just before the code runs and
  inherited by everything it starts: *writes* only under the run's temp dir (and the private
  ``/tmp``, ``/dev/shm``), ``/dev/null``-like devices; *reads* only ``/usr``, the ``/lib*``
  and ``/bin`` trees, the interpreter's prefix, the virtual environment and the few ``/etc``
  files the C library and Python read (``ld.so.cache``, ``localtime``, ``passwd``, ``ssl``...;
  never ``shadow``); no TCP ``bind``/``connect`` at all (ABI 4); signals only to processes
  inside the box and no connection to abstract unix sockets outside it (ABI 6 scopes). It
  also stops ptrace and ``/proc/<pid>/{environ,mem,fd}`` of any process outside the box. This
  is the layer that holds when there are no namespaces: ``dir_fd`` writes, ctypes ``open``,
  a ``sh -c 'echo >> ~/.bashrc'``, writes to ``/tmp`` and ``/dev/shm``, reading ``/root`` or
  another user's 0600 file (even with CAP_DAC_READ_SEARCH, which the root case keeps when it
  has no mount namespace), and ``kill(getppid(), SIGKILL)`` all fail with EACCES / EPERM.
``seccomp`` -- a filter compiled once with libseccomp (the ``pyseccomp`` binding) and loaded by
  the bootstrap right after Landlock: ``socket()`` only for AF_INET/AF_INET6 and only inside a
  network namespace (so no AF_UNIX socket -- no ``connect`` to a pathname socket outside --,
  no AF_VSOCK, AF_NETLINK, AF_PACKET...; ``socketpair(AF_UNIX)`` stays, for
  multiprocessing/asyncio); no ``ptrace``, ``process_vm_readv/writev``, ``kill(-1, ...)``;
  no ``io_uring`` (it opens sockets without ``socket()``), ``bpf``, ``perf_event_open``,
  ``userfaultfd``, keyrings, ``mount``/``unshare``/``setns``/namespace-creating ``clone``
  (``clone3`` answers ENOSYS so the C library falls back to ``clone``), module loading,
  ``kexec``, ``reboot``. Any other architecture's syscall ABI kills the process.
always on (no flag) -- resource limits, soft = hard (RLIMIT_AS = ``memory_mb`` per process,
  RLIMIT_CPU = ceil(timeout)+1 s, RLIMIT_FSIZE = ``max_file_mb``, RLIMIT_CORE = 0, RLIMIT_NOFILE
  <= 1024, RLIMIT_NPROC = ``max_processes``); ``PR_SET_NO_NEW_PRIVS`` (setuid binaries give no
  privileges back); a minimal environment (none of our variables, no proxies); a
  ``supervisor``: the bootstrap forks, the parent half becomes a child subreaper
  (``PR_SET_CHILD_SUBREAPER``) outside the Landlock domain (so the code cannot signal it), and
  when the code's main process ends it SIGKILLs every remaining descendant (orphans reparent
  to it, however they detached) before it reports; a ``tree-memory`` limit: the parent sums
  the resident memory of all the box's processes every 50 ms (confirming with PSS from
  ``smaps_rollup`` before acting, so shared copy-on-write pages of forked children are not
  counted twice) and kills the box when the sum passes ``memory_mb``: RLIMIT_AS alone bounds
  one process, not six forked children holding 100 MB each; ``fresh-uid`` (when we are root):
  the code runs as a random unused uid that owns only the temp dir, which makes
  RLIMIT_NPROC exact and lets the parent kill every process of that uid.
  This machine's cgroup v2 tree has no memory controller to delegate, so no cgroup is used;
  the sampler is the fallback the design allows (it reacts within about 50 ms, after the
  first 100 ms of a run, and the per-process RLIMIT_AS bounds each process meanwhile).

Where the machine lacks ``landlock`` (kernel < 6.12, or Landlock not in the LSM list),
``seccomp`` (pyseccomp / libseccomp missing) or ``namespaces`` (no ``bwrap``, or user
namespaces disabled for normal users, as on Ubuntu 24.04's AppArmor default), creating a
:class:`Sandbox` raises :class:`WeakerIsolation` naming what is missing and why, unless
``allow_weaker=`` names it; the run then uses every layer that exists, and
``result.isolation`` lists them. Without ``namespaces`` Landlock keeps the filesystem, the
signals and TCP, seccomp keeps every other socket family (so no network even without a
network namespace), and the supervisor keeps survivors from outliving the run; what is lost
is hiding (the code can ``stat`` paths and list ``/proc``) and the private ``/tmp``.

How one run works
-----------------
1. The parent makes a fresh ``tempfile.mkdtemp()`` directory (0700; chowned to the fresh uid
   when root), writes the code to ``main.py`` there (plus any ``files=``), and starts
   ``bwrap ... python -I -S -B -c BOOTSTRAP params`` in it with ``start_new_session=True``, a
   minimal environment (PATH, HOME=TMPDIR=the temp dir, LANG=C.UTF-8, one BLAS/OpenMP
   thread), stdin from a temporary file, stdout/stderr on pipes and a private info pipe.
   ``-S`` skips ``site`` (and the ``.pth`` files, among them an editable install's finder:
   about 20 ms a call); the bootstrap appends the interpreter's site-packages itself, so
   sympy and numpy import, and restores ``exit()``/``quit()``/``help()``.
2. The bootstrap sets the limits, switches to the fresh uid (root case), sets
   NO_NEW_PRIVS and the subreaper flag, and forks. The child applies Landlock then seccomp,
   reports which layers it applied on the info pipe, closes that pipe, and runs ``main.py``
   as ``__main__`` with the temp dir first on ``sys.path`` (tracebacks name ``main.py``).
   The supervisor waits for it, kills what is left, and reports its wait status.
3. The parent reads stdout/stderr as they come, keeping at most ``max_output_bytes`` of
   each, enforces the wall time and the tree's memory, and on any limit SIGKILLs the box
   (bwrap and its pid namespace; without namespaces the descendants of the supervisor until
   none is left, then the supervisor; as root every process of the fresh uid too). The temp
   dir is removed in a ``finally``, whatever happened.

Cost: the benchmark ``reprolab bench sandbox`` measures the per-call start-up overhead with
every layer against a plain ``python -I -c`` subprocess (see the README for the ratio).

What is still not guaranteed: CPU *share* (a multi-threaded snippet can use every core until
the wall limit), disk usage inside the temp dir beyond ``max_file_mb`` per file, metadata
(``stat``) of paths outside the box when there are no namespaces, and kernel bugs. Untrusted
code meant to attack the host still belongs in a VM.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import enum
import errno
import functools
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

from reprolab.errors import ConfigError, ReprolabError

__all__ = ["SandboxStatus", "SandboxLimits", "SandboxResult", "Sandbox", "run_python", "WeakerIsolation",
           "LAYERS", "missing_layers"]

# The layers a Sandbox requires unless allow_weaker= names them (see the module docstring).
LAYERS = ("landlock", "seccomp", "namespaces")

# Fresh uids for the root case are drawn from [_UID_BASE, _UID_BASE + _UID_SPAN): far above
# any uid a distribution allocates.
_UID_BASE = 0x5A000000
_UID_SPAN = 1 << 24
_NOBODY = 65534
_READ_CHUNK = 65536
# After the main process has exited, how long to wait for the pipes to close.
_DRAIN_GRACE_S = 0.5
# The tree-memory sampler: first look after this long, then every poll tick.
_SAMPLE_AFTER_S = 0.1
_POLL_S = 0.05
_MEMORY_MARKERS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
_LANDLOCK_MIN_ABI = 6  # signal and abstract-unix-socket scoping
# /etc entries the C library, Python and common packages read; Landlock allows only these.
_ETC_READ = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group",
             "nsswitch.conf", "host.conf", "hosts", "resolv.conf", "gai.conf", "services", "protocols",
             "mime.types", "ssl", "ca-certificates", "fonts", "os-release", "python3", "matplotlibrc")
_SYSTEM_READ = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


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


class WeakerIsolation(ReprolabError, RuntimeError):
    """This machine lacks a sandbox layer and the caller did not accept running without it."""

    def __init__(self, missing: Mapping[str, str]):
        names = tuple(missing)
        super().__init__(
            "the sandbox cannot apply " + "; ".join(f"{k}: {v}" for k, v in missing.items()),
            fix=f"install what is missing (see the README's sandbox section), or pass allow_weaker={names!r} "
                "to Sandbox/run_python to run model-written code with less isolation",
        )
        self.missing = names


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """The limits of one run. Defaults suit GenPRM's verification snippets and HumanEval."""

    timeout_s: float = 10.0  # wall time, enforced by the parent; RLIMIT_CPU = ceil(timeout)+1
    memory_mb: int = 512  # RLIMIT_AS per process, and the resident memory of all processes together
    max_processes: int = 32  # RLIMIT_NPROC (processes + threads of the run; exact when root)
    max_output_bytes: int = 1_000_000  # per stream (stdout, stderr); more -> output_limit
    max_file_mb: int = 64  # RLIMIT_FSIZE, and the size of the private /tmp and /dev/shm
    network_namespace: bool = True  # False: no network namespace; seccomp then refuses AF_INET/6 sockets
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
    network_isolation: str = "seccomp"  # "netns": a network namespace; "seccomp": no INET sockets at all
    uid: int | None = None  # the fresh uid the code ran as (root case), else None
    isolation: tuple[str, ...] = ()  # the layers that were active (module docstring)

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


# The code the child runs first (with `python -I -S -B -c`). It must not import reprolab.
# argv[1] is a JSON object of parameters written by Sandbox.run. Lines on the info pipe:
# {"child": {...layers applied...}} from the code's process just before main.py runs,
# {"setup_error": "..."} if a required layer failed, {"wait": status} from the supervisor.
_BOOTSTRAP = r'''
import ctypes, json, os, resource, signal, sys
P = json.loads(sys.argv[1])
sys.path.extend(P["site_paths"])  # started with -S: site-packages without running .pth files
import site  # only for exit(), quit(), help(), copyright(), which model-written code uses
site.setquit(); site.sethelper(); site.setcopyright()
INFO = P["info_fd"]
libc = ctypes.CDLL(None, use_errno=True)

def report(**kw):
    os.write(INFO, (json.dumps(kw) + "\n").encode())

def fail(what):
    report(setup_error="%s: %s" % (what, os.strerror(ctypes.get_errno())))
    os._exit(70)

def lim(res, soft, hard=None):  # soft = hard, never above the current hard limit
    hard = soft if hard is None else hard
    cur = resource.getrlimit(res)[1]
    if cur != resource.RLIM_INFINITY:
        hard = min(hard, cur)
        soft = min(soft, hard)
    resource.setrlimit(res, (soft, hard))

lim(resource.RLIMIT_AS, P["as_bytes"])
lim(resource.RLIMIT_CPU, P["cpu_s"], P["cpu_s"] + 1)
lim(resource.RLIMIT_FSIZE, P["fsize"])
lim(resource.RLIMIT_CORE, 0)
lim(resource.RLIMIT_NOFILE, 1024)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
nproc = P["nproc"] + 1  # + the supervisor
if P["uid"] is None:  # our own uid: RLIMIT_NPROC counts all its processes (in this pid namespace), so add those
    me = os.getuid()
    for d in os.listdir("/proc"):
        try:
            nproc += d.isdigit() and os.stat("/proc/" + d).st_uid == me
        except OSError:
            pass
lim(resource.RLIMIT_NPROC, nproc)

if P["uid"] is not None:  # root: become the fresh uid (keeping CAP_DAC_READ_SEARCH only without a mount namespace)
    uid = P["uid"]
    keep = P["keep_dac_read"]
    if keep and libc.prctl(8, 1, 0, 0, 0) != 0:  # PR_SET_KEEPCAPS
        fail("prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if keep:
        class Hdr(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
        data = (Data * 2)()
        data[0].effective = data[0].permitted = data[0].inheritable = 1 << 2  # CAP_DAC_READ_SEARCH
        if libc.capset(ctypes.byref(Hdr(0x20080522, 0)), data) != 0:
            fail("capset")
        if libc.prctl(47, 2, 2, 0, 0) != 0:  # PR_CAP_AMBIENT_RAISE CAP_DAC_READ_SEARCH (for programs it runs)
            fail("prctl(PR_CAP_AMBIENT_RAISE)")
    if os.getuid() == 0 or os.geteuid() == 0:
        fail("setuid")

os.chdir(P["root"])
if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
    fail("prctl(PR_SET_NO_NEW_PRIVS)")
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER: orphans of the box come back to us
    fail("prctl(PR_SET_CHILD_SUBREAPER)")
SUPERVISOR = os.getpid()
pid = os.fork()
if pid:
    # -- the supervisor: outside the Landlock domain, so the code can neither signal nor ptrace it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    status = os.waitpid(pid, 0)[1]

    def descendants():
        kids = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                kids.setdefault(int(data[data.rindex(b")") + 2:].split()[1]), []).append(int(d))
        out, todo = [], [SUPERVISOR]
        while todo:
            for c in kids.get(todo.pop(), ()):
                out.append(c)
                todo.append(c)
        return out

    for _ in range(10000):  # kill what is left; a process killed mid-fork can leave a child: repeat
        left = descendants()
        if not left:
            break
        for d in left:
            try:
                os.kill(d, 9)
            except OSError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
    report(wait=status)
    os._exit(0)

# -- the code's process
libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG SIGKILL: dies with the supervisor
if os.getppid() != SUPERVISOR:
    os._exit(70)
applied = []
abi = P["landlock_abi"]
if abi > 0:
    import struct
    syscall = libc.syscall
    fs = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
    fs |= (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)  # REFER, TRUNCATE, IOCTL_DEV
    file_only = 1 | 2 | 4 | (1 << 14) | (1 << 15)  # rights that apply to a file (not a directory)
    net = 3 if abi >= 4 else 0  # BIND_TCP | CONNECT_TCP, with no rule: neither is allowed
    scoped = 3 if abi >= 6 else 0  # ABSTRACT_UNIX_SOCKET | SIGNAL
    attr = struct.pack("QQQ", fs, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    ruleset = syscall(444, attr, len(attr), 0)  # landlock_create_ruleset
    if ruleset < 0:
        fail("landlock_create_ruleset")
    for path, access in P["landlock_rules"]:
        try:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # a path this machine does not have
        import stat as _stat
        if not _stat.S_ISDIR(os.fstat(pfd).st_mode):
            access &= file_only
        rule = struct.pack("=Qi", access & fs, pfd)  # struct landlock_path_beneath_attr (packed)
        if syscall(445, ruleset, 1, rule, 0) != 0:  # landlock_add_rule, LANDLOCK_RULE_PATH_BENEATH
            fail("landlock_add_rule(%s)" % path)
        os.close(pfd)
    if syscall(446, ruleset, 0) != 0:  # landlock_restrict_self
        fail("landlock_restrict_self")
    os.close(ruleset)
    applied.append("landlock")
if P["seccomp"]:
    import base64
    prog = base64.b64decode(P["seccomp"])
    buf = ctypes.create_string_buffer(prog, len(prog))
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fprog = Fprog(len(prog) // 8, ctypes.addressof(buf))
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        fail("prctl(PR_SET_SECCOMP)")
    applied.append("seccomp")
report(child={"applied": applied, "uid": os.getuid()})
os.close(INFO)
del P, lim, report, fail, applied, libc

import traceback, types
with open("main.py", encoding="utf-8") as f:
    _src = f.read()
_main = types.ModuleType("__main__")
_main.__file__ = "main.py"
_main.__builtins__ = __builtins__
sys.modules["__main__"] = _main
sys.argv = ["main.py"]
sys.path.insert(0, os.getcwd())
sys.dont_write_bytecode = True
try:
    exec(compile(_src, "main.py", "exec"), _main.__dict__)
except SystemExit:
    raise
except BaseException as e:
    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
    sys.stderr.write("".join(traceback.format_exception(type(e), e, tb)))
    sys.stderr.flush()
    raise SystemExit(1)
'''


# ------------------------------------------------------------------------- the platform
_LL_READ = 1 | 4 | 8  # EXECUTE | READ_FILE | READ_DIR
_LL_ALL = (1 << 16) - 1  # every filesystem right (masked by the ABI in the child)
_LL_DEV = 2 | 4 | (1 << 14) | (1 << 15)  # WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV


def _landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none). ``landlock_create_ruleset(NULL, 0, VERSION)``."""
    if sys.platform != "linux":
        return 0
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(444, None, 0, 1)
    return max(int(abi), 0)


def _seccomp_filter(netns: bool) -> bytes:
    """The seccomp program (raw BPF) the box loads; compiled by libseccomp through pyseccomp."""
    return _compile_seccomp(bool(netns))


@functools.lru_cache(maxsize=None)
def _compile_seccomp(netns: bool) -> bytes:
    import pyseccomp as sc  # imported here: only the parent compiles; the box only loads bytes

    f = sc.SyscallFilter(sc.ALLOW)

    def deny(call: str, err: int = errno.EPERM, *args) -> None:
        try:
            f.add_rule(sc.ERRNO(err), call, *args)
        except (OSError, ValueError, RuntimeError):  # a syscall this architecture lacks
            pass

    low32 = 0xFFFFFFFF  # compare the int argument's low 32 bits: the kernel ignores the rest
    inet = {2, 10}  # AF_INET, AF_INET6
    for family in range(64):  # AF_MAX is 46 on Linux 6.x; the kernel refuses higher families itself
        if not (netns and family in inet):
            deny("socket", errno.EAFNOSUPPORT, sc.Arg(0, sc.MASKED_EQ, low32, family))
        if family != 1:  # socketpair: AF_UNIX only (an anonymous connected pair, no path)
            deny("socketpair", errno.EAFNOSUPPORT, sc.Arg(0, sc.MASKED_EQ, low32, family))
    deny("kill", errno.EPERM, sc.Arg(0, sc.MASKED_EQ, low32, low32))  # kill(-1, sig): every process we may signal
    for call in ("ptrace", "process_vm_readv", "process_vm_writev", "io_uring_setup", "io_uring_enter",
                 "io_uring_register", "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key",
                 "request_key", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen",
                 "fsmount", "move_mount", "open_tree", "init_module", "finit_module", "delete_module",
                 "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl",
                 "open_by_handle_at", "settimeofday", "clock_settime", "adjtimex", "syslog", "vhangup"):
        deny(call)
    deny("clone3", errno.ENOSYS)  # its flags are behind a pointer; glibc falls back to clone()
    for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080):
        # CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
        deny("clone", errno.EPERM, sc.Arg(0, sc.MASKED_EQ, flag, flag))
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def _bwrap_path() -> str | None:
    return shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin:" + os.environ.get("PATH", ""))


@functools.lru_cache(maxsize=None)
def _probe(euid: int) -> dict[str, str | None]:
    """Each layer of LAYERS -> None when this machine has it, else why not (one line)."""
    out: dict[str, str | None] = {}
    abi = _landlock_abi()
    out["landlock"] = None if abi >= _LANDLOCK_MIN_ABI else (
        "the kernel has no Landlock (Linux >= 6.12 with landlock in the LSM list is needed)" if abi == 0 else
        f"Landlock ABI {abi} < {_LANDLOCK_MIN_ABI}: no signal / abstract-socket scoping (Linux >= 6.12 is needed)")
    try:
        _compile_seccomp(True)
        _compile_seccomp(False)
        out["seccomp"] = None
    except ImportError:
        out["seccomp"] = "the pyseccomp package is missing (pip install pyseccomp, see constraints.txt)"
    except OSError as e:
        out["seccomp"] = f"libseccomp could not be loaded or used ({e}; Debian: apt-get install libseccomp2)"
    bwrap = _bwrap_path()
    if bwrap is None:
        out["namespaces"] = "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
    else:
        args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--ro-bind", "/", "/", "true"]
        if euid != 0:
            args[1:1] = ["--unshare-user", "--disable-userns"]
        try:
            p = subprocess.run(args, capture_output=True, timeout=10, env={"PATH": "/usr/bin:/bin"})
            out["namespaces"] = None if p.returncode == 0 else (
                "bwrap cannot create namespaces here (" + p.stderr.decode(errors="replace").strip()[:200]
                + "); user namespaces may be disabled for normal users")
        except (OSError, subprocess.TimeoutExpired) as e:
            out["namespaces"] = f"bwrap failed to start ({e})"
    return out


def missing_layers() -> dict[str, str]:
    """The layers of LAYERS this machine lacks (for the current user), each with the reason."""
    return {k: v for k, v in _probe(os.geteuid()).items() if v is not None}


@functools.lru_cache(maxsize=None)
def _python_layout(python: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(roots, site_paths) of an interpreter. ``roots``: the directories it needs to read,
    its prefixes (the install and the virtual environment) and the sys.path entries inside
    them or under /usr. ``site_paths``: the sys.path entries that ``site`` adds (site-packages),
    which the bootstrap, started with ``-S``, appends itself: without running ``.pth`` files,
    which saves about 20 ms a call (an editable install's import finder) and keeps out an
    editable checkout's source tree (.pth entries elsewhere): the code does not need reprolab."""
    probe = ("import json, sys; print(json.dumps({'prefixes': [sys.prefix, sys.base_prefix, sys.exec_prefix, "
             "sys.base_exec_prefix], 'path': sys.path, 'exe': sys.executable}))")
    bare = "import json, sys; print(json.dumps(sys.path))"
    # Only this very interpreter path may skip the probe: two virtual environments share one
    # real interpreter binary (their bin/python are links to it) but not their prefixes.
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        info = {"prefixes": [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix],
                "path": [p for p in sys.path if p], "exe": sys.executable}
    else:
        p = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise ConfigError("python", python, "a working Python interpreter (it failed to report its prefix)")
        info = json.loads(p.stdout)
    p = subprocess.run([python, "-I", "-S", "-c", bare], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise ConfigError("python", python, "a working Python interpreter (it failed to report its sys.path)")
    without_site = set(json.loads(p.stdout))
    prefixes = {os.path.realpath(x) for x in info["prefixes"] if x}
    inside = lambda real: any(real == q or real.startswith(q + os.sep) for q in prefixes | {"/usr"})
    roots = set(prefixes) | {os.path.dirname(os.path.realpath(info["exe"]))}
    site_paths = []
    for entry in info["path"]:
        real = os.path.realpath(entry) if entry else ""
        if real and inside(real) and os.path.isdir(real):
            roots.add(real)
            if entry not in without_site and entry not in site_paths:
                site_paths.append(entry)
    roots = {r for r in roots if os.path.exists(r) and r != "/"}
    # keep only the outermost of nested roots
    outer = tuple(sorted(r for r in roots if not any(r != o and r.startswith(o + os.sep) for o in roots)))
    return outer, tuple(site_paths)


# ---------------------------------------------------------------------- process helpers
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


def _fresh_uid(check: bool = True) -> int:
    """A random, unused uid (= gid) for one run; ``nobody`` when the namespace maps no high ids.
    ``check=False`` skips looking for live processes of it (a scan of /proc): with a pid
    namespace per run, no process of an earlier run can be left."""
    rng = random.SystemRandom()
    for _ in range(8):
        uid = _UID_BASE + rng.randrange(_UID_SPAN)
        if _mapped(uid, "/proc/self/uid_map") and _mapped(uid, "/proc/self/gid_map") and not (check and _uid_pids(uid)):
            return uid
    return _NOBODY


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, resident pages) of every live process, from /proc/<pid>/stat."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if fields[0] in (b"Z", b"X"):
            continue
        table[int(name)] = (int(fields[1]), int(fields[21]))
    return table


def _descendants(root: int, table: Mapping[int, tuple[int, int]]) -> list[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), ()):
            out.append(c)
            todo.append(c)
    return out


def _pss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


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


def _signal(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_box(proc: subprocess.Popen, uid: int | None, namespaces: bool) -> None:
    """SIGKILL everything of the run.

    With namespaces, ``proc`` is bwrap: killing it and the pid namespace's init (its child)
    makes the kernel kill every process in the namespace. Without, ``proc`` is the
    supervisor (a subreaper): its descendants are killed first, repeatedly, until none is
    left (a child forked meanwhile reparents to the supervisor, still alive), then it. As
    root, every process of the fresh uid too. ``proc`` itself is only signalled while it is
    not reaped, so its pid cannot have been reused.
    """
    if namespaces:
        # the fresh uid's processes all live in the pid namespace, which dies with bwrap's init
        if proc.returncode is None and not _exited(proc):
            for pid in _descendants(proc.pid, _proc_table()):
                _signal(pid)
            _signal(proc.pid)
        return
    if proc.returncode is None:
        for _ in range(1000):
            left = _descendants(proc.pid, _proc_table())
            if not left:
                break
            for pid in left:
                _signal(pid)
        _signal(proc.pid)
    if uid is None or uid == _NOBODY:  # never kill every `nobody` process of the machine
        return
    for _ in range(200):
        pids = _uid_pids(uid)
        if not pids:
            return
        for pid in pids:
            _signal(pid)
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
    def onerror(func, p, _exc):  # a directory the code chmod-ed to 000
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


def _check_allow_weaker(value, field: str = "allow_weaker") -> frozenset[str]:
    names = (value,) if isinstance(value, str) else value
    try:
        names = frozenset(names)
    except TypeError:
        names = None
    if names is None or not names <= set(LAYERS):
        raise ConfigError(field, value, f"a tuple of layer names from {LAYERS}")
    return names


# ----------------------------------------------------------------------------- the box
class Sandbox:
    """Runs Python source under fixed :class:`SandboxLimits`; see the module docstring.

    Raises :class:`WeakerIsolation` when this machine lacks a layer of :data:`LAYERS` that
    ``allow_weaker`` does not name. ``without`` leaves layers out on purpose (tests and the
    benchmark measure each layer alone); they must be in ``allow_weaker`` too.
    """

    def __init__(self, limits: SandboxLimits | None = None, *, python: str | None = None,
                 allow_weaker: Iterable[str] = (), without: Iterable[str] = ()):
        if limits is not None and not isinstance(limits, SandboxLimits):
            raise ConfigError("limits", limits, "a SandboxLimits instance (or None for the defaults)")
        self.limits = limits or SandboxLimits()
        self.python = os.path.normpath(os.path.abspath(python or sys.executable))  # no '..' (bwrap binds real paths)
        if not (python or sys.executable) or not os.path.exists(self.python):
            raise ConfigError("python", self.python, "the path of a Python interpreter (default sys.executable)")
        self.allow_weaker = _check_allow_weaker(allow_weaker)
        without = _check_allow_weaker(without, "without")
        if not without <= self.allow_weaker:
            raise ConfigError("without", tuple(sorted(without)), f"layers also named in allow_weaker (now {tuple(sorted(self.allow_weaker))})")
        missing = dict(missing_layers())
        missing.update({k: "left out by the caller (without=)" for k in without if k not in missing})
        refused = {k: v for k, v in missing.items() if k not in self.allow_weaker}
        if refused:
            raise WeakerIsolation(refused)
        self._root = os.geteuid() == 0
        self._namespaces = "namespaces" not in missing
        self._landlock_abi = 0 if "landlock" in without else _landlock_abi()
        self._seccomp = None if "seccomp" in missing else base64.b64encode(
            _seccomp_filter(self._namespaces and self.limits.network_namespace)).decode()
        self._roots, self._site_paths = _python_layout(self.python)
        self._bwrap_fs = self._bwrap_fs_args() if self._namespaces else []

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
        uid = _fresh_uid(check=not self._namespaces) if lim.drop_privileges and self._root else None
        tmp = os.path.realpath(tempfile.mkdtemp(prefix="reprolab-sandbox-"))
        proc = None
        try:
            self._write_files(tmp, code, files, uid)
            info_r, info_w = os.pipe()
            params = {"info_fd": info_w, "root": tmp, "uid": uid, "keep_dac_read": not self._namespaces,
                      "as_bytes": lim.memory_mb * 2**20, "cpu_s": int(math.ceil(lim.timeout_s)) + 1,
                      "fsize": lim.max_file_mb * 2**20, "nproc": lim.max_processes,
                      "landlock_abi": self._landlock_abi, "landlock_rules": self._landlock_rules(tmp),
                      "seccomp": self._seccomp, "site_paths": self._site_paths}
            argv = [self.python, "-I", "-S", "-B", "-c", _BOOTSTRAP, json.dumps(params)]
            if self._namespaces:
                argv = self._bwrap_args(tmp, info_w) + argv
            with tempfile.TemporaryFile() as stdin_file:
                stdin_file.write(stdin.encode("utf-8"))
                stdin_file.seek(0)
                start = time.monotonic()
                try:
                    proc = subprocess.Popen(argv, cwd=tmp, env=self._env(tmp, env), stdin=stdin_file,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(info_w,),
                                            start_new_session=True)
                finally:
                    os.close(info_w)
                try:
                    out, err, info, reason, truncated, seconds, peak = self._pump(proc, info_r, start, uid)
                finally:
                    os.close(info_r)
            return self._classify(proc.returncode, out, err, info, reason, truncated, seconds, peak, uid)
        finally:
            if proc is not None:
                _kill_box(proc, uid, self._namespaces)
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
        subprocess). Each run has its own namespaces (and, as root, its own uid).
        """
        codes = list(codes)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ConfigError("workers", workers, "an int >= 1")
        if workers == 1 or len(codes) <= 1:
            return [self.run(c, stdin=stdin) for c in codes]
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(codes))) as pool:
            return list(pool.map(lambda c: self.run(c, stdin=stdin), codes))

    # -- what the box sees ----------------------------------------------------------------
    def _bwrap_fs_args(self) -> list[str]:
        """The mount namespace's read-only part: system trees, /etc, the interpreter's roots."""
        args: list[str] = []
        binds = ["/usr", "/etc"]
        for top in _SYSTEM_READ[1:]:  # /bin, /lib...: links into /usr on merged-/usr systems
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                binds.append(top)
        made, bound = {"/", "/tmp", "/dev", "/dev/shm", "/proc"}, []  # the last four are mounted before these binds
        for path in binds + list(self._roots):
            if any(path == b or path.startswith(b + os.sep) for b in bound):
                continue  # already inside a bound tree
            parents = []
            parent = os.path.dirname(path)
            while parent not in made:
                parents.append(parent)
                parent = os.path.dirname(parent)
            for p in reversed(parents):  # e.g. /root as a 0755 directory holding only .pyenv
                args += ["--perms", "0755", "--dir", p]
                made.add(p)
            args += ["--ro-bind", path, path]
            made.add(path)
            bound.append(path)
        return args

    def _bwrap_args(self, tmp: str, info_fd: int) -> list[str]:
        lim = self.limits
        size = str(lim.max_file_mb * 2**20)
        args = [_bwrap_path() or "bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", "--hostname", "sandbox"]
        if lim.network_namespace:
            args.append("--unshare-net")
        if self._root:  # the bootstrap needs only CAP_SETUID/CAP_SETGID, to become the fresh uid
            args += ["--cap-drop", "ALL"]
            if lim.drop_privileges:
                args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-user", "--disable-userns"]
        # The private /tmp and /dev/shm come first, the read-only binds after them: an interpreter or
        # virtual environment that lives under /tmp (a CI checkout in /tmp/...) must stay visible
        # above the fresh tmpfs, not be hidden by it.
        args += ["--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
                 "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]
        args += self._bwrap_fs
        args += ["--bind", tmp, tmp, "--chdir", "/", "--"]  # the bootstrap enters tmp as the fresh uid
        return args

    def _landlock_rules(self, tmp: str) -> list[tuple[str, int]]:
        rules = [(p, _LL_READ) for p in _SYSTEM_READ + self._roots]
        rules += [(os.path.join("/etc", e), _LL_READ) for e in _ETC_READ]
        rules += [(tmp, _LL_ALL)]
        rules += [(d, _LL_DEV) for d in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")]
        if self._namespaces:  # private to the box: a fresh /proc, tmpfs /tmp and /dev/shm
            rules += [("/proc", _LL_READ), ("/tmp", _LL_ALL), ("/dev/shm", _LL_ALL)]
        return rules

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

    def _tree_memory(self, proc: subprocess.Popen) -> int:
        """Resident bytes of the box's processes together: the RSS sum, and, when that is over
        the limit, the PSS sum (shared copy-on-write pages counted once) to confirm."""
        limit = self.limits.memory_mb * 2**20
        table = _proc_table()
        pids = _descendants(proc.pid, table)
        rss = sum(table[p][1] for p in pids) * os.sysconf("SC_PAGE_SIZE")
        if rss <= limit:
            return rss
        pss = [_pss_bytes(p) for p in pids]
        return rss if any(x is None for x in pss) else sum(pss)

    def _pump(self, proc: subprocess.Popen, info_r: int, start: float, uid: int | None):
        """Read stdout/stderr/info until EOF, enforcing the wall time, the tree's memory and
        the output cap."""
        lim = self.limits
        deadline = start + lim.timeout_s
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        bufs = {out_fd: bytearray(), err_fd: bytearray(), info_r: bytearray()}
        sel = selectors.DefaultSelector()
        for fd in bufs:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        reason, truncated, ended, seconds, peak = None, False, None, None, 0

        def stop(why):
            nonlocal reason
            if reason is None:
                reason = why
                _kill_box(proc, uid, self._namespaces)

        try:
            next_sample = start + _SAMPLE_AFTER_S
            while sel.get_map():
                now = time.monotonic()
                if ended is None and _exited(proc):
                    ended = now
                    seconds = now - start
                    _kill_box(proc, uid, self._namespaces)  # children may hold the pipes open
                if ended is None and reason is None and now >= deadline:
                    stop(SandboxStatus.TIMEOUT)
                if ended is None and reason is None and now >= next_sample:
                    next_sample = now + _POLL_S
                    used = self._tree_memory(proc)
                    peak = max(peak, used)
                    if used > lim.memory_mb * 2**20:
                        stop(SandboxStatus.MEMORY)
                if ended is not None and now - ended > _DRAIN_GRACE_S:
                    break
                wait = _POLL_S if ended is None else max(0.0, _DRAIN_GRACE_S - (now - ended))
                if ended is None and reason is None:
                    wait = min(wait, max(0.0, deadline - now), max(0.0, next_sample - now))
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
                        stop(SandboxStatus.OUTPUT_LIMIT)
        finally:
            sel.close()
        # The pipes can close before the process ends (it may close fds 1 and 2 itself).
        while reason is None and not _exited(proc):
            if time.monotonic() >= deadline:
                stop(SandboxStatus.TIMEOUT)
                break
            time.sleep(0.01)
        if seconds is None:
            seconds = time.monotonic() - start
        _kill_box(proc, uid, self._namespaces)  # before reaping the leader, so its pid stays reserved
        proc.wait(timeout=5)
        info: dict = {}
        for line in bytes(bufs[info_r]).decode(errors="replace").splitlines():
            try:
                info.update(json.loads(line))
            except ValueError:
                pass
        text = lambda b: bytes(b).decode("utf-8", errors="replace")
        return text(bufs[out_fd]), text(bufs[err_fd]), info, reason, truncated, seconds, peak

    def _classify(self, rc, out, err, info, reason, truncated, seconds, peak, uid) -> SandboxResult:
        lim = self.limits
        if "wait" in info:  # the code's own exit, as the supervisor saw it (bwrap reports 128+signal)
            status = info["wait"]
            rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        tail = err.rstrip().splitlines()[-3:] if err.strip() else []
        memory_hit = any(marker in line for line in tail for marker in _MEMORY_MARKERS)
        if reason is SandboxStatus.TIMEOUT:
            status, message = reason, f"timeout: the wall-time limit of {lim.timeout_s:g} s was reached"
        elif reason is SandboxStatus.OUTPUT_LIMIT:
            status, message = reason, f"output_limit: more than {lim.max_output_bytes} bytes of output; the process was killed"
        elif reason is SandboxStatus.MEMORY:
            status, message = reason, (f"memory: the run's processes together held {peak / 2**20:.0f} MB, over the "
                                       f"{lim.memory_mb} MB limit; all were killed")
        elif "setup_error" in info:
            status, message = SandboxStatus.ERROR, f"error: the sandbox could not be set up ({info['setup_error']})"
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
        child = info.get("child") or {}
        layers = list(child.get("applied", []))
        netns = self._namespaces and lim.network_namespace
        if self._namespaces:
            layers.append("namespaces")
        if netns:
            layers.append("netns")
        layers += ["rlimits", "supervisor", "tree-memory"]
        if uid is not None and child:
            layers.append("fresh-uid")
        return SandboxResult(
            status=status, stdout=out, stderr=err, returncode=rc, seconds=round(seconds, 4),
            truncated=truncated, message=message, network_isolation="netns" if netns else "seccomp",
            uid=uid if child else None, isolation=tuple(layers),
        )


def run_python(code: str, *, stdin: str = "", timeout_s: float = 10.0, memory_mb: int = 512,
               max_processes: int = 32, max_output_bytes: int = 1_000_000, max_file_mb: int = 64,
               files: Mapping[str, str | bytes] | None = None, env: Mapping[str, str] | None = None,
               allow_weaker: Iterable[str] = ()) -> SandboxResult:
    """Run ``code`` once in a :class:`Sandbox` with these limits (see :class:`SandboxLimits`)."""
    limits = SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb, max_processes=max_processes,
                           max_output_bytes=max_output_bytes, max_file_mb=max_file_mb)
    return Sandbox(limits, allow_weaker=allow_weaker).run(code, stdin=stdin, files=files, env=env)
