"""Shared test fixtures: where the reference data (`../shared`) lives; a real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PackageUnavailable, PostgresServer

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("GIGAAM_SHARED_DIR", REPO_ROOT.parent / "shared"))
GOLDEN_DIR = SHARED_DIR / "golden"
CORPUS_DIR = SHARED_DIR / "corpus"
MODELS = ("v3_ctc", "v3_rnnt", "v3_e2e_ctc", "v3_e2e_rnnt")


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN_DIR.is_dir():
        pytest.skip(f"reference data not found at {GOLDEN_DIR} (set GIGAAM_SHARED_DIR)")
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"audio corpus not found at {CORPUS_DIR} (set GIGAAM_SHARED_DIR)")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session, started only when a test asks for it.

    Installed from Debian if missing, on a free loopback port, stopped and deleted at the end.
    Tests that take it away (:meth:`PostgresServer.stop`) must bring it back before they end.
    """
    try:
        server = PostgresServer()
    except PackageUnavailable as exc:
        pytest.skip(str(exc))
    with server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://…``) of the session's test database."""
    return postgres_server.url()


@pytest.fixture(scope="session", autouse=True)
def _jobs_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Servers started by tests keep durable jobs in a temporary JOBS_DIR, never in the
    default /data/jobs (tests that exercise jobs pass their own ``jobs_dir``)."""
    os.environ.setdefault("JOBS_DIR", str(tmp_path_factory.mktemp("jobs")))
