"""Shared test fixtures: where the reference data (`../shared`) lives; a real PostgreSQL.

Also the ``integration`` marker (``make test-integration``), set here from what each test
module uses rather than written on each test, so a new suite that starts a real component is
selected without anyone remembering to mark it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.postgres import PackageUnavailable, PostgresServer

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("GIGAAM_SHARED_DIR", REPO_ROOT.parent / "shared"))
GOLDEN_DIR = SHARED_DIR / "golden"
CORPUS_DIR = SHARED_DIR / "corpus"
MODELS = ("v3_ctc", "v3_rnnt", "v3_e2e_ctc", "v3_e2e_rnnt")

#: What starts a real component: a uvicorn server on real TCP or a server process, PostgreSQL
#: (also reached through the ``postgres_server`` fixture). Named by (module, qualified name) so
#: this file need not import them.
REAL_COMPONENT_ENTRIES = {
    ("tests.api_server", "serve"),
    ("tests.api_server", "server_process"),
    ("tests.gated_server", "served"),
    ("tests.postgres", "PostgresServer"),
    ("tests.replica_server", "Replica"),
}
#: Helper modules whose every name drives a real component: Chromium, the Wyoming door's client.
REAL_COMPONENT_MODULES = {"tests.browser", "tests.wyoming_client"}
INTEGRATION_FIXTURES = {"postgres_server"}


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


def runs_real_components(module: ModuleType) -> bool:
    """Whether a test module uses one of the real-component entries. Helper modules such as
    ``tests.api_server`` are not followed: most of their names (``tiled_wav``, ``busy_decoders``)
    start nothing, so a helper that does start something is named in the entries above. No test
    module imports another (``tests/test_test_layout.py``), so there is nothing else to follow."""
    for value in list(vars(module).values()):
        if isinstance(value, ModuleType):
            if value.__name__ in REAL_COMPONENT_MODULES:
                return True
            continue
        home = getattr(value, "__module__", None)
        if not isinstance(home, str):
            continue
        if home in REAL_COMPONENT_MODULES:
            return True
        if (home, getattr(value, "__qualname__", None)) in REAL_COMPONENT_ENTRIES:
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test of a module that runs real components, and every test
    that asks for the PostgreSQL fixture."""
    verdicts: dict[str, bool] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is None:
            continue
        if module.__name__ not in verdicts:
            verdicts[module.__name__] = runs_real_components(module)
        fixtures = set(getattr(item, "fixturenames", ()))
        if verdicts[module.__name__] or fixtures & INTEGRATION_FIXTURES:
            item.add_marker(pytest.mark.integration)
