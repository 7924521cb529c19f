"""Escape attempts against reprolab.sandbox, each checked from outside the box.

tests/test_sandbox.py runs this file as a script twice when the suite runs as root: as root,
and as ``nobody`` (``setpriv --reuid nobody --regid nogroup --clear-groups``) from a copy of
reprolab/sandbox.py, reprolab/errors.py and pyseccomp.py in a directory ``nobody`` can read,
under an interpreter ``nobody`` can read (the virtual environment's usually lives under
/root, 0700): so both the privileged and the normal-user case really run. As a normal user
it runs once, unprivileged. Standard library only (plus reprolab.sandbox).

Every escape also runs as a *control*: the same code in a plain ``python -I -c`` subprocess
of the same user. Where the control is expected to escape (``control`` in the output), a
test that finds it did not would be a test that cannot fail; test_sandbox.py checks that.

    python sandbox_escapes.py MODE [MODE...]   ->  JSON on stdout:
    {"uid": 0, "results": {MODE: {ESCAPE: {"escaped": bool, "detail": str, "status": str,
                                            "isolation": [...], "control": bool,
                                            "control_expected": bool}}}}

MODE: ``all`` (every layer) or ``no-namespaces`` (Landlock, seccomp and the supervisor alone,
as on a machine without user namespaces).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid

from reprolab.sandbox import Sandbox, SandboxLimits, SandboxStatus

MODES = {"all": {}, "no-namespaces": {"allow_weaker": ("namespaces",), "without": ("namespaces",)}}
IS_ROOT = os.geteuid() == 0
OTHER_UID = 1 if IS_ROOT else 0  # `daemon` owns root's test secret; root owns nobody's


class Attempt:
    """One escape: ``setup()`` makes what the code attacks, ``code`` is the attack,
    ``escaped(stdout)`` looks from outside whether it worked, ``cleanup()`` undoes it."""

    name = ""
    control_expected = True
    limits: dict = {}
    timeout_s = 10.0

    def __init__(self, base: str):
        self.base = base
        self.token = uuid.uuid4().hex[:12]

    def setup(self) -> None:
        pass

    def code(self) -> str:
        raise NotImplementedError

    def escaped(self, stdout: str) -> tuple[bool, str]:
        raise NotImplementedError

    def cleanup(self) -> None:
        pass


def _world_writable_dir(base: str, name: str) -> str:
    path = os.path.join(base, name)
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o1777)
    return path


class DirFdWrite(Attempt):
    name = "dir_fd_write"

    def setup(self):
        self.dir = _world_writable_dir(self.base, "dirfd-" + self.token)

    def code(self):
        return textwrap.dedent(f"""
            import os
            fd = os.open({self.dir!r}, os.O_RDONLY)
            out = os.open("pwned", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
            os.write(out, b"x")
        """)

    def escaped(self, stdout):
        return os.path.exists(os.path.join(self.dir, "pwned")), self.dir


class CtypesWrite(Attempt):
    name = "ctypes_write"

    def setup(self):
        self.dir = _world_writable_dir(self.base, "ctypes-" + self.token)
        self.path = os.path.join(self.dir, "pwned")

    def code(self):
        return textwrap.dedent(f"""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.open({self.path.encode()!r}, os.O_CREAT | os.O_WRONLY, 0o644)
            print("fd", fd, "errno", ctypes.get_errno())
            if fd >= 0:
                libc.write(fd, b"x", 1)
        """)

    def escaped(self, stdout):
        return os.path.exists(self.path), stdout.strip()


class ShellWrite(Attempt):
    """``sh -c 'echo x >> PATH'``: a program the code starts, outside any Python hook."""

    where = ""

    def target(self) -> str:
        raise NotImplementedError

    def setup(self):
        self.path = self.target()

    def code(self):
        return textwrap.dedent(f"""
            import subprocess
            r = subprocess.run(["sh", "-c", "echo pwned >> {self.path}"], capture_output=True, text=True)
            print(r.returncode, r.stderr.strip())
        """)

    def escaped(self, stdout):
        try:
            with open(self.path) as f:
                return "pwned" in f.read(), stdout.strip()
        except OSError:
            return False, stdout.strip()

    def cleanup(self):
        try:
            os.remove(self.path)
        except OSError:
            pass


class ShellWriteTmp(ShellWrite):
    name = "shell_write_tmp"

    def target(self):
        return f"/tmp/reprolab-escape-{self.token}"


class ShellWriteDevShm(ShellWrite):
    name = "shell_write_dev_shm"

    def target(self):
        return f"/dev/shm/reprolab-escape-{self.token}"


def _home_file(base: str, token: str, mode: int) -> str:
    """A file in the invoking user's home (root: /root; another user: its home if writable,
    else a stand-in home dir it owns). Mode 0666 for root so that only the sandbox, not file
    permissions, stands between the fresh uid and the file."""
    home = os.path.expanduser("~")
    if not (os.path.isdir(home) and os.access(home, os.W_OK)):
        home = os.path.join(base, "home")
        os.makedirs(home, exist_ok=True)
    path = os.path.join(home, f".reprolab-escape-{token}")
    with open(path, "w") as f:
        f.write(f"secret-{token}\n")
    os.chmod(path, mode)
    return path


class ShellWriteHome(ShellWrite):
    name = "shell_write_home"

    def target(self):
        return _home_file(self.base, self.token, 0o666 if IS_ROOT else 0o644)


class ReadHome(Attempt):
    name = "read_home_file"

    def setup(self):
        self.path = _home_file(self.base, self.token, 0o644)

    def code(self):
        return f"print(open({self.path!r}).read())"

    def escaped(self, stdout):
        return f"secret-{self.token}" in stdout, self.path

    def cleanup(self):
        os.remove(self.path)


class ReadOtherUser0600(Attempt):
    name = "read_other_user_0600"
    control_expected = IS_ROOT  # a normal user cannot read it without the sandbox either

    def setup(self):
        d = os.path.join(self.base, "other-" + self.token)
        os.makedirs(d)
        os.chmod(d, 0o755)
        self.path = os.path.join(d, "secret")
        with open(self.path, "w") as f:
            f.write(f"secret-{self.token}\n")
        os.chmod(self.path, 0o600)
        if IS_ROOT:
            os.chown(self.path, OTHER_UID, OTHER_UID)

    def code(self):
        return f"print(open({self.path!r}).read())"

    def escaped(self, stdout):
        return f"secret-{self.token}" in stdout, self.path


class UnixSocket(Attempt):
    """A pathname unix socket listener made by the test (e.g. a Docker or D-Bus socket)."""

    name = "unix_socket_connect"

    def setup(self):
        d = _world_writable_dir(self.base, "sock-" + self.token)
        self.path = os.path.join(d, "s")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        os.chmod(self.path, 0o777)
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.seen = []
        self.stop = False

        def accept():
            while not self.stop:
                try:
                    conn, _ = self.srv.accept()
                    self.seen.append(conn.recv(16))
                    conn.close()
                except OSError:
                    pass

        self.thread = threading.Thread(target=accept, daemon=True)
        self.thread.start()

    def code(self):
        return textwrap.dedent(f"""
            import ctypes, socket, struct
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect({self.path!r})
                s.send(b"python")
                print("python connected")
            except OSError as e:
                print("python", e)
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.socket(1, 1, 0)
            addr = struct.pack("H", 1) + {self.path.encode()!r}.ljust(108, b"\\0")
            rc = libc.connect(fd, addr, len(addr)) if fd >= 0 else -1
            if rc == 0:
                libc.send(fd, b"ctypes", 6, 0)
            print("ctypes", fd, rc, ctypes.get_errno())
        """)

    def escaped(self, stdout):
        time.sleep(0.3)
        return bool(self.seen), f"{self.seen} / {stdout.strip()}"

    def cleanup(self):
        self.stop = True
        self.thread.join(1)
        self.srv.close()


class TcpConnect(Attempt):
    name = "tcp_connect_loopback"

    def setup(self):
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.srv.settimeout(0.5)
        self.port = self.srv.getsockname()[1]

    def code(self):
        return textwrap.dedent(f"""
            import ctypes, socket, struct
            try:
                socket.create_connection(("127.0.0.1", {self.port}), timeout=2)
                print("python connected")
            except OSError as e:
                print("python", e)
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.socket(2, 1, 0)
            addr = struct.pack("<H", 2) + struct.pack(">H", {self.port}) + socket.inet_aton("127.0.0.1") + bytes(8)
            print("ctypes", fd, libc.connect(fd, addr, len(addr)) if fd >= 0 else -1, ctypes.get_errno())
        """)

    def escaped(self, stdout):
        try:
            conn, _ = self.srv.accept()
            conn.close()
            return True, stdout.strip()
        except OSError:
            return False, stdout.strip()

    def cleanup(self):
        self.srv.close()


class Vsock(Attempt):
    name = "vsock_socket"
    control_expected = False  # needs the vsock module; where it is loaded, the control creates one

    def code(self):
        return textwrap.dedent("""
            import socket
            try:
                socket.socket(40, socket.SOCK_STREAM)  # AF_VSOCK
                print("created")
            except OSError as e:
                print("refused", e)
        """)

    def escaped(self, stdout):
        return "created" in stdout, stdout.strip()


class MemoryChildren(Attempt):
    """Six forked children of 80 MB each under a 256 MB limit (RLIMIT_AS is per process)."""

    name = "memory_forked_children"
    limits = {"memory_mb": 256, "max_processes": 16}

    def code(self):
        return textwrap.dedent("""
            import os, sys, time
            kids = []
            for i in range(6):
                pid = os.fork()
                if pid == 0:
                    block = bytearray(b"\\x01") * (80 * 2**20)
                    print("held", flush=True)
                    time.sleep(1.5)
                    os._exit(0)
                kids.append(pid)
            for pid in kids:
                os.waitpid(pid, 0)
            print("done", flush=True)
        """)

    def escaped(self, stdout):
        held = stdout.count("held")
        return held == 6 or "done" in stdout, f"held={held}"


class DetachedSurvivor(Attempt):
    """Double fork + setsid, then a program with a unique argument, found by its command line."""

    name = "detached_survivor"

    def code(self):
        return textwrap.dedent(f"""
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execv("/bin/sleep", ["sleep", "3{self.token[:6].translate(str.maketrans('abcdef', '123456'))}"])
                os._exit(0)
            time.sleep(0.3)
            print("parent done")
        """)

    def _survivors(self):
        needle = ("3" + self.token[:6].translate(str.maketrans("abcdef", "123456"))).encode()
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/cmdline", "rb") as f:
                        if needle in f.read().split(b"\0"):
                            found.append(int(name))
                except OSError:
                    pass
        return found

    def escaped(self, stdout):
        time.sleep(0.2)
        found = self._survivors()
        return bool(found), f"pids {found}"

    def cleanup(self):
        for pid in self._survivors():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


class KillParent(Attempt):
    """SIGUSR1 to the process that called run() (this script; a handler records it) and
    SIGKILL to a bystander process of the same user."""

    name = "kill_parent"
    received: list = []

    def setup(self):
        KillParent.received = []
        signal.signal(signal.SIGUSR1, lambda *_: KillParent.received.append(1))
        self.victim = subprocess.Popen(["sleep", "30"])

    def code(self):
        return textwrap.dedent(f"""
            import os, signal
            for pid, sig in (({os.getpid()}, signal.SIGUSR1), ({self.victim.pid}, signal.SIGKILL),
                             (os.getppid(), signal.SIGUSR1)):
                try:
                    os.kill(pid, sig)
                    print("sent", pid)
                except OSError as e:
                    print("refused", pid, e)
        """)

    def escaped(self, stdout):
        time.sleep(0.1)
        dead = self.victim.poll() is not None
        return bool(KillParent.received) or dead, f"usr1={bool(KillParent.received)} victim_dead={dead} / {stdout.strip()}"

    def cleanup(self):
        self.victim.kill()
        self.victim.wait()
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)


class ParentEnvironment(Attempt):
    name = "parent_environment"

    def setup(self):
        os.environ["REPROLAB_ESCAPE_SECRET"] = self.token

    def code(self):
        return textwrap.dedent(f"""
            import os
            print(os.environ.get("REPROLAB_ESCAPE_SECRET"))
            try:
                print(open("/proc/{os.getpid()}/environ", "rb").read())
            except OSError as e:
                print(e)
        """)

    def escaped(self, stdout):
        return self.token in stdout, ""

    def cleanup(self):
        os.environ.pop("REPROLAB_ESCAPE_SECRET", None)


ATTEMPTS = [DirFdWrite, CtypesWrite, ShellWriteTmp, ShellWriteDevShm, ShellWriteHome, ReadHome, ReadOtherUser0600,
            UnixSocket, TcpConnect, Vsock, MemoryChildren, DetachedSurvivor, KillParent, ParentEnvironment]


def _control(attempt: Attempt, cwd: str) -> str:
    """The attack without a sandbox: a plain subprocess of the same user (our environment)."""
    with tempfile.TemporaryFile(dir=cwd) as out:  # a file, not a pipe: a survivor keeps its copy open
        subprocess.run([sys.executable, "-I", "-c", attempt.code()], cwd=cwd, stdout=out, stderr=subprocess.DEVNULL,
                       timeout=30, env=dict(os.environ))
        out.seek(0)
        return out.read().decode(errors="replace")


def run(modes: list[str]) -> dict:
    base = tempfile.mkdtemp(prefix="reprolab-escapes-")
    os.chmod(base, 0o755)
    results: dict = {}
    try:
        for mode in modes:
            results[mode] = {}
            for cls in ATTEMPTS:
                row = {}
                attempt = cls(base)
                attempt.setup()
                try:
                    box = Sandbox(SandboxLimits(timeout_s=attempt.timeout_s, **attempt.limits), **MODES[mode])
                    r = box.run(attempt.code())
                    row["escaped"], row["detail"] = attempt.escaped(r.stdout)
                    row.update(status=r.status.value, isolation=list(r.isolation), stdout=r.stdout[-500:],
                               stderr=r.stderr[-500:], message=r.message)
                finally:
                    attempt.cleanup()
                control = cls(base)
                control.setup()
                try:
                    work = tempfile.mkdtemp(dir=base)
                    row["control"] = control.escaped(_control(control, work))[0]
                finally:
                    control.cleanup()
                row["control_expected"] = cls.control_expected
                results[mode][cls.name] = row
    finally:
        subprocess.run(["rm", "-rf", base])
    return {"uid": os.geteuid(), "results": results}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:] or list(MODES))))
