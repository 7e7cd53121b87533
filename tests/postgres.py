"""A real, throw-away PostgreSQL server for the tests: installed from Debian, started, removed.

The shared job store of several replicas lives in PostgreSQL, and its guarantees (atomic claims,
leases, surviving a database outage) only mean something against the real server, so the tests
run one instead of a mock or SQLite in disguise:

* the binaries come from Debian's ``postgresql`` package, installed with apt-get when missing
  (``make test`` runs as root in CI; a developer without root who lacks the package is skipped
  with the command to run);
* the cluster is made with ``initdb`` in a fresh temporary directory, so no system cluster,
  configuration or data is touched;
* PostgreSQL refuses to run as root, so under root every server command runs as the
  unprivileged ``postgres`` user that the package creates, and the directory belongs to it;
* the server listens on a free port on 127.0.0.1 only, its unix socket stays inside the
  temporary directory, and authentication is ``trust`` (loopback, throw-away data);
* :meth:`PostgresServer.stop` / :meth:`PostgresServer.start` take the server away and bring it
  back on the same port and data directory, for the "database went away" tests;
* leaving the ``with`` block stops the server (killing it if a clean stop fails) and deletes
  the directory, also when the test failed, so no ``postgres`` process outlives the run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal

import psycopg
from psycopg import sql

#: The Debian package that provides initdb / pg_ctl / postgres.
APT_PACKAGE = "postgresql"
#: The unprivileged account the Debian package creates; the server runs as it under root.
SERVER_USER = "postgres"
#: The database the fixture creates and hands to the tests.
DEFAULT_DATABASE = "gigaam_test"
#: pg_ctl's own wait for start-up / shut-down, in seconds.
PG_CTL_TIMEOUT_S = 60

StopMode = Literal["smart", "fast", "immediate"]


class PackageUnavailable(RuntimeError):
    """A Debian package the tests need is missing and cannot be installed here: tests skip."""


def _debian_bin_dirs() -> list[Path]:
    """Debian keeps each major version apart: /usr/lib/postgresql/<major>/bin, newest first."""
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return []
    dirs = [d / "bin" for d in root.iterdir() if (d / "bin" / "pg_ctl").is_file()]
    return sorted(dirs, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)[::-1]


def find_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None when PostgreSQL is absent."""
    dirs = _debian_bin_dirs()
    if dirs:
        return dirs[0]
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and Path(pg_ctl).with_name("initdb").exists():
        return Path(pg_ctl).resolve().parent
    return None


def ensure_installed() -> Path:
    """Return PostgreSQL's bin directory, installing Debian's package with apt-get if needed."""
    found = find_bin_dir()
    if found is not None:
        return found
    apt_install(APT_PACKAGE)
    found = find_bin_dir()
    if found is None:
        raise RuntimeError(f"apt-get installed {APT_PACKAGE} but no pg_ctl was found")
    return found


def apt_install(package: str) -> None:
    """Install a Debian package the tests need (as root; otherwise say which command to run).

    Raises :class:`PackageUnavailable` when this process cannot install (not root, no apt):
    the calling fixture turns that into a skip that names the command.
    """
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PackageUnavailable(
            f"{package} is not installed and cannot be installed from here; "
            f"run `sudo apt-get install -y {package}` once"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr}")


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (the server's checkpointer, walwriter, backends…)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return children


class PostgresServer:
    """One throw-away PostgreSQL cluster; use as a context manager (see the module docstring)."""

    def __init__(self, bin_dir: Path | None = None, port: int | None = None) -> None:
        self.bin_dir = bin_dir if bin_dir is not None else ensure_installed()
        self.port = port if port is not None else free_loopback_port()
        self.host = "127.0.0.1"
        self.user = SERVER_USER
        self.base_dir = Path(tempfile.mkdtemp(prefix="gigaam-pg-"))
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir  # short path: unix socket names are limited to ~107 bytes
        self.log_file = self.base_dir / "server.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(self.base_dir, account.pw_uid, account.pw_gid)
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
        self._initialised = False

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        try:
            self.init()
            self._first_start()
            self.create_database(DEFAULT_DATABASE)
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a server binary as the unprivileged user (PostgreSQL refuses to run as root)."""
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        # cwd inside the cluster's directory: the server user may not be able to read ours.
        return subprocess.run(
            command,
            cwd=self.base_dir,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            capture_output=True,
            text=True,
            check=False,
            timeout=PG_CTL_TIMEOUT_S + 30,
        )

    def init(self) -> None:
        """Create the cluster: trust authentication, UTF-8, no fsync (throw-away data)."""
        done = self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
        self._initialised = True

    def _first_start(self, attempts: int = 3) -> None:
        """Start; if another process took the free port meanwhile, pick another one."""
        for attempt in range(attempts):
            try:
                self.start()
                return
            except RuntimeError as exc:
                if "already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                self.port = free_loopback_port()

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) on the same port and data directory."""
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.socket_dir}",
                f"-c listen_addresses={self.host}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        done = self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            str(PG_CTL_TIMEOUT_S),
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}{done.stderr}\n{self.log()}")

    def stop(self, mode: StopMode = "fast") -> None:
        """Shut the server down; clients are disconnected ("fast") or it just dies ("immediate")."""
        if self.postmaster_pid() is None:
            return
        done = self._run(
            "pg_ctl",
            "stop",
            "-D",
            str(self.data_dir),
            "-m",
            mode,
            "-w",
            "-t",
            str(PG_CTL_TIMEOUT_S),
        )
        if done.returncode != 0 and self.running():
            raise RuntimeError(f"pg_ctl stop failed:\n{done.stdout}{done.stderr}")

    def restart(self, down_for_s: float = 0.0, mode: StopMode = "fast") -> None:
        """Stop, stay away for ``down_for_s`` seconds, start again on the same port."""
        self.stop(mode)
        time.sleep(down_for_s)
        self.start()

    @contextlib.contextmanager
    def outage(self, mode: StopMode = "fast") -> Iterator[None]:
        """The database is gone inside the block and back (same port, same data) after it."""
        self.stop(mode)
        try:
            yield
        finally:
            self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster and its children: the last resort of :meth:`cleanup`."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        victims = [pid, *child_pids(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(pid_alive(v) for v in victims) and time.monotonic() < deadline:
            time.sleep(0.05)

    def cleanup(self) -> None:
        """Stop the server whatever state it is in and delete its directory."""
        try:
            if self._initialised:
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self.stop("fast")
                if self.running():
                    self.kill()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    # --- state ---------------------------------------------------------------------------------

    def postmaster_pid(self) -> int | None:
        """The server's main process id from postmaster.pid, if that process is alive."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except (FileNotFoundError, PermissionError):
            return None
        pid = int(first) if first.strip().isdigit() else None
        return pid if pid is not None and pid_alive(pid) else None

    def running(self) -> bool:
        return self.postmaster_pid() is not None

    def log(self) -> str:
        """The server's log (start-up errors land here, not in pg_ctl's output)."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- databases and URLs --------------------------------------------------------------------

    def conninfo(self, database: str = DEFAULT_DATABASE) -> str:
        """A libpq connection string, for psycopg directly."""
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def url(self, database: str = DEFAULT_DATABASE) -> str:
        """A SQLAlchemy URL with the psycopg 3 driver, the form ``JOBS_DATABASE_URL`` takes."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create a database (a fresh, uniquely named one by default) and return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)
