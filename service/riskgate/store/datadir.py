"""One data dir, one owner.

`riskgate serve` with the embedded Redis holds an OS lock (flock) on `<data_dir>/riskgate.lock`
for as long as it runs; the lock file names the owner's pid. A second process asking for the
same data dir is refused at once, before it starts or writes anything, so two redis-servers
can never share one append-only file. The kernel drops the lock when its holder dies, however
it dies, so a crashed owner never blocks the next start.

The lock is held by riskgate, not by redis-server. A redis-server left running on the data
dir by an earlier riskgate (one killed before its Redis could be told to die with it) is
found through /proc: its working directory is the data dir (redis-server rewrites its
command line, so that is where the dir shows). Such a server is never killed from here;
the start is refused, naming its pid.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = "riskgate.lock"
# A redis-server whose riskgate has just died gets its kill signal a moment after the lock is
# dropped; a start racing with that waits this long for it to go before refusing.
STALE_REDIS_GRACE_S = 3.0


class DataDirError(RuntimeError):
    """The data dir cannot be used: a wrong path or permissions (the message names it)."""


class DataDirBusy(DataDirError):
    """Another process holds the data dir (the message names it and the holder's pid)."""


class DataDirLock:
    """The exclusive lock on one data dir; `release()` (or the owner's death) frees it."""

    def __init__(self, data_dir: Path, fd: int, created: list[Path]) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = fd
        # Folders this lock created, outermost first: removed again on release if still empty,
        # so a start that fails leaves nothing behind.
        self._created = created

    @classmethod
    def acquire(cls, data_dir: str | os.PathLike[str]) -> DataDirLock:
        """Takes the lock without waiting; raises DataDirBusy if it is held, DataDirError if the
        folder cannot be created or written."""
        path = Path(data_dir).resolve()
        created = _make_dirs(path)
        try:
            if not os.access(path, os.W_OK | os.X_OK):
                raise DataDirError(f"cannot use data dir {path}: not writable")
            fd = _lock(path / LOCK_NAME, path)
        except BaseException:
            _remove_empty(created)
            raise
        return cls(path, fd, created)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # Unlinked while still held: a process that opened the old file meanwhile notices on
        # locking it that it is no longer the one on disk, and starts over (see _lock).
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(fd)
        _remove_empty(self._created)

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _make_dirs(path: Path) -> list[Path]:
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    missing.reverse()
    if path.exists() and not path.is_dir():
        raise DataDirError(f"cannot use data dir {path}: not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(missing)
        raise DataDirError(f"cannot use data dir {path}: {exc.strerror or exc}") from exc
    if not path.is_dir():
        raise DataDirError(f"cannot use data dir {path}: not a directory")
    return missing


def _remove_empty(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def _lock(lock_path: Path, data_dir: Path) -> int:
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DataDirError(f"cannot use data dir {data_dir}: {lock_path.name}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"riskgate pid {holder}" if holder else "another riskgate"
                raise DataDirBusy(f"data dir {data_dir} is in use by {who}; "
                                  "one data dir serves one process") from None
            raise DataDirError(f"cannot lock data dir {data_dir}: {exc.strerror or exc}") from exc
        try:
            on_disk = os.stat(lock_path)
            mine = os.fstat(fd)
        except FileNotFoundError:
            os.close(fd)  # its previous owner removed it between our open and our lock
            continue
        if (on_disk.st_dev, on_disk.st_ino) != (mine.st_dev, mine.st_ino):
            os.close(fd)
            continue
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            os.close(fd)
            raise DataDirError(f"cannot use data dir {data_dir}: {lock_path.name}: {exc.strerror or exc}"
                               ) from exc
        return fd


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None


def redis_servers_in(data_dir: str | os.PathLike[str]) -> list[int]:
    """Pids of the redis-server processes (of this user) whose working directory is data_dir.

    redis-server changes into its `dir` at start and rewrites its command line, so the working
    directory is what names its data dir. Empty where /proc is not available."""
    target = os.path.realpath(data_dir)
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/comm", encoding="utf-8", errors="replace") as comm:
                if not comm.read().startswith("redis-server"):
                    continue
            cwd = os.readlink(f"/proc/{name}/cwd")
        except OSError:
            continue  # gone, a zombie, or another user's
        if cwd == target:
            found.append(int(name))
    return found


def refuse_if_redis_running(data_dir: str | os.PathLike[str], grace_s: float = STALE_REDIS_GRACE_S) -> None:
    """Raises DataDirBusy if a redis-server still runs on data_dir after grace_s."""
    deadline = time.monotonic() + grace_s
    while pids := redis_servers_in(data_dir):
        if time.monotonic() >= deadline:
            listed = ", ".join(str(pid) for pid in pids)
            raise DataDirBusy(f"data dir {Path(data_dir).resolve()} is in use by redis-server pid {listed}, "
                              "left running by an earlier riskgate or started by hand; "
                              f"stop it (kill {listed}) and start again")
        time.sleep(0.05)
