"""An exclusive, cross-process lock around the read-modify-write of one predictor file.

Two ComfyUI processes (one per GPU is common) that calibrate into the same file must both count: each takes this
lock, re-reads the file, merges its run in and replaces the file atomically before letting go.

How: an operating-system lock on a small companion file ``.<name>.lock`` in the same folder (``fcntl.flock`` on
POSIX, ``msvcrt.locking`` on Windows). The kernel drops such a lock when its holder exits or is killed, so the
lock of a dead process never blocks anyone: a leftover ``.lock`` file is only a file. The companion file is left in
place on release (deleting it would let a waiter lock an unlinked file while a newcomer locks a fresh one); its
text names the last holder, for the message when a live holder keeps the lock past ``timeout``.

A filesystem that cannot lock at all (some network shares answer ENOLCK / EOPNOTSUPP) is not an error: the lock
reports ``locked == False`` and the caller says so in the run's report, because refusing would lose the run.

Cost: one small file per predictor file; waiting polls every ``poll`` seconds.
"""
from __future__ import annotations

import errno
import os
import socket
import time

from .predictor_file import PredictorFileError

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt
else:
    import fcntl

DEFAULT_TIMEOUT = 120.0  # seconds: a merge-and-write takes well under a second; only a hung holder waits this long
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
_BUSY = {errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK, getattr(errno, "EDEADLK", errno.EAGAIN)}
_INFO_OFFSET = 1  # the holder's text starts after the locked byte 0 (Windows locks byte ranges, not files)


class LockTimeout(PredictorFileError):
    """Another live process held the file's lock for longer than the timeout."""


def lock_path_for(path: str | os.PathLike) -> str:
    path = os.path.abspath(os.fspath(path))
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.lock")


def _try_lock(fd: int) -> None:
    """Take the lock without waiting; OSError with an errno in _BUSY when another holder has it."""
    if os.name == "nt":  # pragma: no cover
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)


class FileLock:
    """``with FileLock(path): ...`` holds the lock of ``path`` (the predictor file, not the lock file).

    Raises OSError when the lock file cannot be created (read-only or full folder: the caller reports it) and
    LockTimeout, naming the holder, when a live process keeps the lock past ``timeout`` seconds. One object per
    use; not re-entrant.
    """

    def __init__(self, path: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT, poll: float = 0.02) -> None:
        if not timeout >= 0 or not poll > 0:
            raise ValueError(f"timeout must be >= 0 and poll > 0 seconds, got {timeout!r} and {poll!r}")
        self.path = os.fspath(path)
        self.lock_path = lock_path_for(path)
        self.timeout, self.poll = float(timeout), float(poll)
        self.locked = False  # True while held; stays False when the filesystem cannot lock
        self.unsupported_reason: str | None = None
        self._fd: int | None = None

    def __enter__(self) -> "FileLock":
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                try:
                    _try_lock(fd)
                    break
                except OSError as exc:
                    if exc.errno in _UNSUPPORTED:
                        self.unsupported_reason = f"{self.lock_path}: {exc.strerror or exc}"
                        self._fd = fd
                        return self
                    if exc.errno not in _BUSY:
                        raise
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"L2P predictor file '{self.path}': another process held its lock ({self.lock_path}) for"
                        f" more than {self.timeout:g} s ({_holder(fd)}). If that process hangs, stop it; a"
                        f" process that has exited never holds the lock"
                    )
                time.sleep(self.poll)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self.locked = fd, True
        _write_holder(fd)
        return self

    def __exit__(self, *exc_info) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self.locked:
                _unlock(fd)
        finally:
            self.locked = False
            os.close(fd)


def _write_holder(fd: int) -> None:
    """Best effort: who holds the lock, for another process's timeout message."""
    text = f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    try:
        os.ftruncate(fd, _INFO_OFFSET)
        os.lseek(fd, _INFO_OFFSET, os.SEEK_SET)
        os.write(fd, text.encode("utf-8"))
    except OSError:
        pass  # a full disk must not stop the merge over an informational line


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, _INFO_OFFSET, os.SEEK_SET)
        text = os.read(fd, 400).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return f"held by {text}" if text else "holder unknown"
