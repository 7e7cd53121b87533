"""Shared test fixtures: where the reference data (`../shared`) lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session", autouse=True)
def _jobs_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Servers started by tests keep durable jobs in a temporary JOBS_DIR, never in the
    default /data/jobs (tests that exercise jobs pass their own ``jobs_dir``)."""
    os.environ.setdefault("JOBS_DIR", str(tmp_path_factory.mktemp("jobs")))
