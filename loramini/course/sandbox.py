"""Running one submission's kernel at arm's length (process level, not a container).

* where Linux allows it (util-linux `unshare` and user namespaces), the kernel runs in its own user, mount
  and PID namespaces: the solutions and submission folders, and the shared temp folders (other runs' and other
  users' files), are covered by an empty tmpfs (unreadable even by absolute path), every file system but the
  scratch folder is read-only, /proc shows only the submission's processes, and when the kernel ends every
  process it started ends with it (the namespace's init is gone). Without them the kernel runs as a plain
  process and only the measures below hold; `isolation()` says which;
* a throwaway folder per submission, outside the solutions (the system's temp folder): the kernel's working
  folder and HOME, removed afterwards; nothing but the graded notebook's cells reaches it;
* a minimal environment: PATH, LANG, the thread and offline settings, PYTHONPATH (without relative entries)
  and what the grader sets; PYTHONSAFEPATH=1, so neither the working folder nor '' is on sys.path;
* limits set in the kernel before it starts: address space (memory), file size, and a process count;
* the kernel leads its own session; at the wall-clock limit, and at the end in any case, every process of
  that session or process group, every process whose environment carries this submission's marker, and
  every orphan the grader (a child subreaper) inherits is killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import stat
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

MARKER = "LORAMINI_GRADE_RUN"
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LORAMINI_SMOKE",
               "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass
class Limits:
    """timeout: wall-clock seconds for the whole submission; memory, file_size: bytes; processes: count."""

    timeout: float = 900
    memory: int = 8 << 30
    file_size: int = 1 << 30
    processes: int = 4096


def _limit(kind: int, value: int) -> None:
    soft, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))


def preexec(limits: Limits):
    """Runs in the kernel's process after fork, before exec: the resource limits."""
    def apply():
        try:  # the kernel dies with the grader (PR_SET_PDEATHSIG = SIGKILL), even if the grader is killed
            ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
        _limit(resource.RLIMIT_AS, limits.memory)
        _limit(resource.RLIMIT_FSIZE, limits.file_size)
        _limit(resource.RLIMIT_NPROC, limits.processes)
        _limit(resource.RLIMIT_CORE, 0)
    return apply


@dataclass
class Scratch:
    """The per-submission folders: root/work (cwd and HOME), root/work/.answers, root/tmp, root/runtime."""

    root: Path
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def create(cls, avoid: list) -> "Scratch":
        root = Path(tempfile.mkdtemp(prefix="loramini-grade-")).resolve()
        for folder in avoid:  # the scratch must not sit where a relative path reaches the solutions
            folder = Path(folder).resolve()
            if root.is_relative_to(folder) or folder.is_relative_to(root):
                shutil.rmtree(root, ignore_errors=True)
                raise SystemExit(f"error: the temp folder {root.parent} holds {folder}; set TMPDIR to a folder "
                                 f"outside the solutions and submissions")
        for sub in ("work", "tmp", "runtime"):
            (root / sub).mkdir(mode=0o700)
        return cls(root)

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def answers(self) -> Path:
        return self.root / "work" / ".answers"

    def env(self, extra: Optional[dict] = None) -> dict:
        env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isabs(p)]
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        env.setdefault("PATH", os.defpath)
        env.update({"HOME": str(self.work), "TMPDIR": str(self.root / "tmp"), "PYTHONSAFEPATH": "1",
                    "PYTHONNOUSERSITE": "1", "MPLBACKEND": "Agg", "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
                    "LORAMINI_ANSWERS": str(self.answers), MARKER: self.marker})
        env.update(extra or {})
        return env

    def remove(self) -> None:
        def unlock(func, path, _):  # a submission may have made its files read-only
            os.chmod(os.path.dirname(path), stat.S_IRWXU)
            os.chmod(path, stat.S_IRWXU) if os.path.lexists(path) and not os.path.islink(path) else None
            func(path)
        shutil.rmtree(self.root, onerror=unlock)


# ---------------------------------------------------------------- namespaces
_UNSHARE = ["unshare", "--user", "--map-current-user", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"]
# Inside the namespaces, before the kernel starts: an empty tmpfs covers each folder given before "--" (the
# scratch's parent among them); the scratch folder ($1) is bound back in from the folder held open below the
# covers ("." with --no-canonicalize); every other mount becomes read-only, /dev/shm a fresh tmpfs; then the
# kernel, in its working folder reached again by name (the one it started in lies on the read-only mount).
_SETUP_NS = r"""
scratch="$1"; shift
here="$(pwd -P)"; cd "$scratch" || exit 1
while [ "$1" != "--" ]; do [ -d "$1" ] && mount -t tmpfs -o size=4k,mode=000 none "$1"; shift; done; shift
mkdir -p "$scratch" && mount --no-canonicalize --bind . "$scratch" || exit 1
for mp in $(awk '{print $5}' /proc/self/mountinfo | sort -r); do
  case "$mp" in "$scratch"|/proc|/proc/*|/dev|/dev/*|/sys|/sys/*) continue;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null
done
mount -t tmpfs -o size=256m none /dev/shm 2>/dev/null
cd "$here" || exit 1
exec "$@"
"""
# Folders anyone may write to: other grading runs, other courses and other users leave files there.
_SHARED_TEMP = ("/tmp", "/var/tmp")
_ISOLATION: Optional[bool] = None


def isolation() -> bool:
    """True when kernels can run in their own user, mount and PID namespaces (tried once)."""
    global _ISOLATION
    if _ISOLATION is None:
        import subprocess

        try:
            with tempfile.TemporaryDirectory() as scratch:  # writable by name and from inside, not beside
                done = subprocess.run(_UNSHARE + ["sh", "-c", _SETUP_NS, "sh", scratch, "--", "sh", "-c",
                                                  f"touch {scratch}/w && touch v && ! touch ../w 2>/dev/null"],
                                      cwd=scratch, capture_output=True, timeout=30)
            _ISOLATION = done.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _ISOLATION = False
    return _ISOLATION


def hideable(folder: Path) -> bool:
    """A folder can be covered when it holds neither the Python environment, the loramini package nor a
    PYTHONPATH entry the kernel gets (the scratch folder is bound back in wherever it is)."""
    import sys

    import loramini

    folder = Path(folder).resolve()
    needed = [Path(sys.prefix), Path(sys.base_prefix), Path(loramini.__file__).resolve().parent]
    needed += [Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isabs(p)]
    return folder != Path("/") and not any(n.resolve().is_relative_to(folder) for n in needed)


def wrap(argv: list, scratch: Path, hide: list) -> list:
    """The kernel's command, run inside namespaces (when `isolation()`) where only `scratch` is writable and the
    folders `hide` and the shared temp folders (the scratch's parent among them) are empty; those that hold the
    environment or the package stay visible, see `hideable`."""
    if not isolation():
        return list(argv)
    hide = [*hide, Path(scratch).resolve().parent, *_SHARED_TEMP]
    folders = sorted({str(Path(h).resolve()) for h in hide if Path(h).is_dir() and hideable(h)})
    return _UNSHARE + ["sh", "-c", _SETUP_NS, "sh", str(Path(scratch).resolve()), *folders, "--", *argv]


# ---------------------------------------------------------------- finding and killing what a submission started
def become_subreaper() -> None:
    """Orphans of the kernel's children (`setsid` double forks) become the grader's children (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _stat(pid: int) -> Optional[tuple]:
    """(ppid, pgid, sid, start ticks) of a process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])


def _has_marker(pid: int, marker: str) -> bool:
    try:
        return f"{MARKER}={marker}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def submission_processes(leader: Optional[int], marker: str, since: int) -> set:
    """Processes of one submission: in the kernel's session or group, carrying its marker, or orphans the
    grader inherited that started after the kernel did (`since`: start ticks)."""
    found, me = set(), os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid, info = int(entry), _stat(int(entry))
        if info is None:
            continue
        ppid, pgid, sid, start = info
        if (leader and leader in (pgid, sid)) or _has_marker(pid, marker) or (ppid == me and start >= since):
            found.add(pid)
    return found


def kill_all(leader: Optional[int], marker: str, since: int, rounds: int = 5) -> None:
    """SIGKILL every process of the submission, again until none is left (a fork may race the first pass)."""
    for _ in range(rounds):
        pids = submission_processes(leader, marker, since)
        if leader:
            try:
                os.killpg(leader, signal.SIGKILL)
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _reap()
        if not pids:
            return
        time.sleep(0.05)


def _reap() -> None:
    """Collect exited children (the orphans a subreaper inherits), so none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def now_ticks() -> int:
    """The clock /proc's start times use (ticks since boot), now, less a tick."""
    return int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK")) - 1


class Watchdog:
    """After `seconds`, SIGKILL the kernel's session and everything marked as this submission's."""

    def __init__(self, seconds: float, scratch: Scratch, since: int):
        self.seconds, self.scratch, self.since = seconds, scratch, since
        self.leader: Optional[int] = None
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        kill_all(self.leader, self.scratch.marker, self.since)

    def stop(self) -> None:
        self._timer.cancel()
        self._timer.join()  # a kill already under way ends before the next submission starts its kernel
