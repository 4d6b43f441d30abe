"""The bubblewrap sandbox that runs a student's code, and its limits.

:func:`sandbox_command` builds the ``bwrap`` command around ``python -I worker.py``:

- never privileged: a new user namespace in which the worker runs as uid/gid 1000 with
  every capability dropped (``--cap-drop ALL``) and no further user namespaces
  (``--disable-userns``), also when the grader runs as root: no remount, no write outside
  the private tmpfs mounts;
- no network, no IPC, its own PID namespace, killed with the grader (``--die-with-parent``);
- a read-only view of the interpreter, of the course environment's packages that no answer
  implements (:data:`ALLOWED_SITE`: torch, numpy, tqdm, matplotlib and what they import)
  and of a private copy of the ``lmcourse`` modules the part may import; the reference
  modules, ``transformers`` and ``tokenizers`` are absent;
- size-limited private tmpfs mounts for ``/tmp`` and ``/dev/shm`` (:data:`TMPFS_BYTES`);
- inside, the worker sets ``RLIMIT_AS`` (:data:`MEMORY_BYTES`), ``RLIMIT_NPROC``
  (:data:`NPROC`), ``RLIMIT_FSIZE`` and ``RLIMIT_CORE`` before any student code runs. (The
  kernel does not apply ``RLIMIT_NPROC`` to processes whose uid outside the namespace is 0:
  when grading as root, the PID namespace, the memory limit and the kill at the end of
  each part bound a fork bomb instead.)

:class:`Sandbox` is one such process with the grader's end of the pipes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from typing import Any

from grader import protocol

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")
PROTOCOL = os.path.join(HERE, "protocol.py")

MEMORY_BYTES = 6 * 2**30     # RLIMIT_AS of the worker
TMPFS_BYTES = 256 * 2**20    # each of /tmp and /dev/shm
FSIZE_BYTES = 128 * 2**20    # the largest file the student's code may write
NPROC = 64                   # processes and threads of the sandbox's uid
REPLY_BYTES = 32 * 2**20     # the largest message accepted from the sandbox
STARTUP_SECONDS = 300        # Python + torch imports (never counted against the student)
SANDBOX_UID = 1000           # the uid/gid inside the sandbox
# distributions of the course environment the sandboxed Python may import: torch and what
# it imports, numpy, tqdm, matplotlib (and their dependencies). Not lmcourse (a copy of the
# allowed modules is mounted instead), not transformers or tokenizers (they implement answers).
ALLOWED_SITE = (
    "torch", "functorch", "torchgen", "numpy", "typing_extensions", "sympy", "mpmath",
    "networkx", "jinja2", "markupsafe", "filelock", "fsspec", "nvidia", "triton",
    "_distutils_hack", "regex", "tqdm", "matplotlib", "mpl_toolkits", "pylab", "contourpy",
    "cycler", "fonttools", "kiwisolver", "packaging", "pil", "pillow", "pyparsing",
    "dateutil", "python_dateutil", "six",
)
# what the homework texts may promise as importable in every answer
AVAILABLE = ("torch", "numpy", "tqdm", "matplotlib")


class SandboxStartError(BaseException):
    """The sandbox itself could not start: nothing to do with the student (stops the grading)."""


class SandboxError(Exception):
    """The student's code failed in the sandbox (an exception, a time-out, a crash)."""


class SandboxTimeout(SandboxError):
    """The student's code did not answer in time."""


def bwrap_available() -> bool:
    """Whether bubblewrap can start an unprivileged sandbox here (as :func:`sandbox_command`)."""
    exe = shutil.which("bwrap")
    if not exe:
        return False
    cmd = [exe, "--ro-bind", "/", "/", "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID),
           "--gid", str(SANDBOX_UID), "--cap-drop", "ALL", "--disable-userns", "--die-with-parent", "true"]
    r = subprocess.run(cmd, capture_output=True)
    return r.returncode == 0


def _site_dirs() -> list[str]:
    dirs = []
    for key in ("purelib", "platlib"):
        d = sysconfig.get_paths()[key]
        if d not in dirs and os.path.isdir(d):
            dirs.append(d)
    base = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["purelib"]
    if base not in dirs and os.path.isdir(base):
        dirs.append(base)
    return dirs


def _allowed_entry(entry: str) -> bool:
    base = entry.split("-")[0].split(".")[0].lower()
    return base in ALLOWED_SITE


def make_lib(allow: tuple, dest: str) -> str:
    """A private library folder for one part: the allowed lmcourse modules, the protocol.

    ``dest/lmcourse`` holds copies of the modules in ``allow`` (``"lmcourse.model"``, ...)
    and nothing else of lmcourse; ``dest/grader/protocol.py`` is this package's protocol;
    ``dest/worker.py`` the worker. Every file is world-readable (the sandbox runs as another
    uid) and the folder is never shared with another part or student.
    """
    import lmcourse

    src = os.path.dirname(lmcourse.__file__)
    pkg = os.path.join(dest, "lmcourse")
    os.makedirs(pkg, exist_ok=True)
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write('"""lmcourse while grading: only the modules this part may use."""\n')
    for mod in allow:
        if not mod.startswith("lmcourse.") or "/" in mod:
            raise ValueError(f"allow: expected lmcourse module names, got {mod!r}")
        name = mod.split(".", 1)[1]
        shutil.copy(os.path.join(src, name.replace(".", "/") + ".py"), os.path.join(pkg, name + ".py"))
        if name == "data" and os.path.isdir(os.path.join(src, "assets")):
            shutil.copytree(os.path.join(src, "assets"), os.path.join(pkg, "assets"), dirs_exist_ok=True)
    os.makedirs(os.path.join(dest, "grader"), exist_ok=True)
    open(os.path.join(dest, "grader", "__init__.py"), "w").close()
    shutil.copy(PROTOCOL, os.path.join(dest, "grader", "protocol.py"))
    shutil.copy(WORKER, os.path.join(dest, "worker.py"))
    for root, _dirs, files in os.walk(dest):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return dest


def sandbox_command(lib: str, config: dict, isolate: bool = True) -> list[str]:
    """The command that starts the worker: bubblewrap around ``python -I worker.py CONFIG``."""
    py = os.path.realpath(sys.executable)
    cfg = dict(config, sys_path=["/sandbox/lib"] if isolate else [lib])
    if not isolate:
        return [sys.executable, "-I", os.path.join(lib, "worker.py"), json.dumps(cfg)]
    cmd = ["bwrap", "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
           "--cap-drop", "ALL", "--disable-userns", "--die-with-parent", "--new-session", "--clearenv",
           "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "OMP_NUM_THREADS", "1",
           "--setenv", "MPLBACKEND", "Agg", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
           "--setenv", "TQDM_DISABLE", "0", "--proc", "/proc", "--dev", "/dev",
           "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm",
           "--chdir", "/tmp"]
    for d in ("/usr", "/lib", "/lib64", "/bin", "/etc/alternatives", "/etc/ld.so.cache"):
        if os.path.exists(d):
            cmd += ["--ro-bind", d, d]
    for prefix in sorted({sys.base_prefix, sys.prefix, os.path.dirname(os.path.dirname(py))}):
        if not prefix.startswith("/usr"):
            cmd += ["--ro-bind", prefix, prefix]
    sites = _site_dirs()
    for site in sites:
        cmd += ["--tmpfs", site]  # an empty site-packages, then only the allowed distributions
        for entry in sorted(os.listdir(site)):
            if _allowed_entry(entry):
                cmd += ["--ro-bind", os.path.join(site, entry), os.path.join(site, entry)]
    cmd += ["--ro-bind", lib, "/sandbox/lib"]
    if sys.executable != py:  # a venv: its bin/python link
        cmd += ["--ro-bind", os.path.dirname(sys.executable), os.path.dirname(sys.executable)]
    for site in sites:  # nothing writable but /tmp and /dev/shm
        cmd += ["--remount-ro", site]
    cmd += ["--remount-ro", "/"]
    return cmd + [sys.executable, "-I", "/sandbox/lib/worker.py", json.dumps(cfg)]


class Sandbox:
    """One sandboxed worker process; :meth:`request` sends a message and reads the reply."""

    def __init__(self, lib: str, config: dict, isolate: bool = True, slot: int = 0,
                 reply_bytes: int = REPLY_BYTES):
        self.reply_bytes = reply_bytes
        self.proc = subprocess.Popen(
            sandbox_command(lib, config, isolate), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.dead = False
        try:  # Python + torch imports: never counted in the student's time
            reply = self.receive(time.monotonic() + STARTUP_SECONDS)
        except SandboxTimeout:
            raise SandboxStartError(f"the sandbox did not start within {STARTUP_SECONDS} s") from None
        except SandboxError:
            raise SandboxStartError("the sandbox did not start: check `bwrap` with scripts/install_bubblewrap.sh") from None
        if reply != {"ready": True}:
            self.kill()
            raise SandboxStartError(f"the sandbox did not start: {reply!r}")

    def kill(self) -> None:
        """Kill the sandbox and everything it started (its process group, its PID namespace)."""
        self.dead = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                f.close()

    def send(self, msg: Any) -> None:
        """Send one message (trusted data, built by the grader)."""
        if self.dead:
            raise SandboxError("the sandbox was restarted")
        try:
            self.proc.stdin.write(protocol.dumps(msg))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            raise SandboxError("the Python process running your code died") from None

    def receive(self, deadline: float) -> Any:
        """One message from the sandbox, checked to be plain data; kill the sandbox on any fault."""
        if self.dead:
            raise SandboxError("the sandbox was restarted")
        try:
            return protocol.check_plain(protocol.read_message(self.proc.stdout.fileno(), deadline, self.reply_bytes))
        except protocol.ProtocolTimeout:
            self.kill()
            raise SandboxTimeout("no answer in time (an infinite loop?)") from None
        except protocol.ProtocolClosed:
            self.kill()
            raise SandboxError("the Python process running your code died (crash, os._exit or memory limit)") from None
        except protocol.ProtocolError as e:
            self.kill()
            raise SandboxError(f"the value sent back was refused: {e}") from None
