"""Which database holds the jobs, how to connect to it, and how to tell "it is gone".

One box keeps its jobs in SQLite under ``JOBS_DIR`` (one process owns that file). Several
replicas share one PostgreSQL, named by ``JOBS_DATABASE_URL``; this module is the one place
that knows the difference:

* **URLs.** ``postgresql://``, ``postgres://`` and ``postgresql+psycopg://`` all mean
  PostgreSQL through psycopg 3 (SQLAlchemy's bare ``postgresql://`` would pick psycopg2,
  which is not installed).
* **Engines.** A PostgreSQL pool checks a connection before handing it out (``pre_ping``: a
  database restart costs one failed ping, not one failed request per stale connection),
  recycles connections, bounds connecting at a few seconds (a health probe must not hang) and
  keeps a small pool: each replica has a handful of threads that talk to the database.
* **Migrations under a lock.** Replicas that start together would race to create the same
  tables; a transaction-scoped advisory lock makes the Alembic upgrade run once at a time
  (the others then find the schema up to date). SQLite serialises writers by itself.
* **Unavailability.** :func:`is_unavailable` says whether an exception means "the database
  cannot be reached or answer now" (connection refused or dropped, server shutting down):
  callers report that as not-ready / 503 and retry later, without a traceback per attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url

__all__ = [
    "MIGRATION_LOCK_KEY",
    "create_engine",
    "describe_error",
    "is_unavailable",
    "migrating",
    "normalise_url",
    "redact",
    "sqlite_url",
]

#: Advisory-lock key (any 64-bit number unique to this application) held while migrating.
MIGRATION_LOCK_KEY: Final = 0x6769676161_6D01  # "gigaam" + 1
#: Seconds to wait for a PostgreSQL connection before calling the database unreachable.
CONNECT_TIMEOUT_S: Final = 5
#: Connections kept per replica (runner threads + heartbeat + request threads), and overflow.
POOL_SIZE: Final = 5
MAX_OVERFLOW: Final = 10
#: A session idle inside a transaction this long is ended by the server (its locks freed).
IDLE_IN_TRANSACTION_MS: Final = 15_000
#: A pooled connection older than this is replaced (server-side idle timeouts, failovers).
POOL_RECYCLE_S: Final = 1800


def sqlite_url(path: Path) -> str:
    """The embedded store's URL for a database file under ``JOBS_DIR``."""
    return f"sqlite:///{Path(path).resolve()}"


def normalise_url(url: str) -> str:
    """``JOBS_DATABASE_URL`` as SQLAlchemy needs it: PostgreSQL always through psycopg 3."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<invalid database URL>"


def create_engine(url: str) -> Engine:
    """An engine for the store: SQLite as the embedded store wants it, PostgreSQL pooled."""
    url = normalise_url(url)
    if is_sqlite(url):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_recycle=POOL_RECYCLE_S,
        pool_timeout=CONNECT_TIMEOUT_S,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "gigaam-api"},
    )
    sa.event.listen(engine, "connect", _postgres_session)
    return engine


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    """Our transactions last milliseconds. A replica frozen (SIGSTOP, a long pause) or cut off
    in the middle of one would otherwise keep the job's row locked, and ``SKIP LOCKED`` claims
    would pass the job by until it came back: the server ends such a session instead."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
    cursor.close()
    dbapi_connection.commit()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL (readers never block the writer), a busy timeout instead of 'database is locked',
    and foreign keys (segments go with their job)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_PROCESS_MIGRATION_LOCK = threading.Lock()


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A transaction in which to migrate, held by one replica (and one thread) at a time.

    Between processes: a PostgreSQL advisory lock, transaction-scoped, so it is released when
    the migration commits or rolls back, and a replica that dies while migrating cannot leave
    it behind. Within a process: a lock, because Alembic's context is process-global. SQLite
    under JOBS_DIR belongs to one process, which the process lock covers.
    """
    with _PROCESS_MIGRATION_LOCK, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
            connection.execute(lock, {"key": MIGRATION_LOCK_KEY})
        yield connection


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` means the database cannot be reached or cannot answer now.

    SQLAlchemy reports a refused, dropped or timed-out connection, and a server that is
    shutting down, as ``OperationalError`` (or a ``DBAPIError`` flagged as a disconnect);
    a pool with no connection to give is ``TimeoutError``. Programming errors, constraint
    violations and the like are not unavailability: they stay loud.
    """
    if isinstance(error, sa_exc.TimeoutError):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return bool(error.connection_invalidated) or isinstance(error, sa_exc.OperationalError)
    return False


def describe_error(error: BaseException) -> str:
    """A one-line reason for logs, ``/health`` and 503 bodies (no SQL, no password)."""
    # SQLAlchemy's wrapper names the driver's error as ``orig``: report that one.
    original = error.orig if isinstance(error, sa_exc.StatementError) and error.orig else error
    text = " ".join(str(original).split())
    return f"{type(original).__name__}: {text[:200]}" if text else type(original).__name__
