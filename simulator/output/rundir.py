"""One writer per run directory: an exclusive lock held while a run uses the directory.

``RunLock(D)`` takes an exclusive ``flock`` on ``D/.lock`` (created if needed; the file stays,
removing it would let two writers lock two different files) and writes the holder's process
id (and thread) into it. A second process that asks for the same directory gets :class:`RunDirBusy`
at once, naming the directory and the holder's pid. The kernel drops the lock when its holder
exits, however it exits, so a killed run never leaves a stale lock behind.

The lock is re-entrant within one thread of one process: a thread that already holds
``D/.lock`` (the Hydra callback that takes it before Hydra writes anything, then the run,
then :func:`simulator.output.results.write_run`) may take it again; only the outermost release
unlocks. Another thread of the same process is refused like another process.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

__all__ = ["LOCK_FILE", "RunDirBusy", "RunLock"]

LOCK_FILE = ".lock"
"""Name of the lock file inside a run directory."""


class RunDirBusy(RuntimeError):
    """Another process holds the run directory (its pid is in the message)."""


class RunLock:
    """Context manager: hold the run directory ``path`` exclusively (see module doc).

    Raises:
        RunDirBusy: another process holds the directory.
        OSError: the directory cannot be created or the lock file not opened (e.g. read-only).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (re-entrant within this process); see the class doc for errors."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK_FILE
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            if holder == _me():
                return self  # held by this very thread (an outer RunLock): nothing to do
            who = f"pid {holder[0]}" if holder else "another process"
            raise RunDirBusy(
                f"run directory {self.path} is in use by {who} (another run writes its "
                "results there); wait for it to end or choose another directory "
                "(hydra.run.dir=... / hydra.sweep.dir=...)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{_me()[0]} {_me()[1]}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock if this object took it (an inner, re-entrant one does nothing)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _me() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


def _read_holder(fd: int) -> tuple[int, int] | None:
    """``(pid, thread id)`` written by the holder, None while it has not written them yet."""
    try:
        parts = os.pread(fd, 64, 0).decode("ascii", "replace").split()
    except OSError:
        return None
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])
