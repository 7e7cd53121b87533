"""Where a server spools its uploads: a folder of its own, and the leftovers of dead servers.

Uploads are removed when their request ends, but a process killed hard (the OOM killer, a
power cut, ``docker kill``) never gets to; its files would stay in the temp folder forever.
So each server process spools into its own folder, ``<base>/<id>/``, next to a lock file
``<base>/<id>.lock`` that it holds (``flock``) for as long as it runs. At start a server
removes every folder whose lock nobody holds: the kernel drops a lock when its process dies,
however it dies, so a folder whose lock can be taken belongs to a dead server — never to a
live one, even when several servers (tests, replicas on one host) share ``<base>``, and even
in containers where every server is PID 1.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["UploadFolder"]

_LOCK = ".lock"


class UploadFolder:
    """This process's upload folder under ``base``; created (and ``base`` swept) on init."""

    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.removed = self._sweep()
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Lock first, under a name the sweep ignores, then publish: another server's sweep
        # can never take the lock in the moment between creating and locking the file.
        draft = base / f".{name}.new"
        self._fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.lock_path = base / f"{name}{_LOCK}"
        os.replace(draft, self.lock_path)
        self.path = base / name
        self.path.mkdir(mode=0o700)

    def _sweep(self) -> int:
        """Remove the folders of servers that are gone; returns how many."""
        removed = 0
        stale = [*self.base.glob(f"*{_LOCK}"), *self.base.glob(".*.new")]  # .new: died starting
        for lock in stale:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # another server swept it first
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live server
                folder = self.base / lock.name.removesuffix(_LOCK)
                leftovers = sum(1 for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder, ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                removed += 1
                if leftovers:
                    log.warning(
                        "removed %d upload(s) left behind by a server that stopped abruptly",
                        leftovers,
                    )
            finally:
                os.close(fd)
        return removed

    def close(self) -> None:
        """Remove this server's folder and lock (a clean stop); idempotent."""
        if self._fd < 0:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.lock_path.unlink()
        os.close(self._fd)
        self._fd = -1
