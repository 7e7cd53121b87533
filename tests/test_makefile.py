"""The Makefile's entry points hold to what `make help` and the README tables say of them.

`make -n` prints what a target would run without running it (recursive `$(MAKE)` lines are
followed, still without running), so the Docker and CI targets are checked here where neither
Docker nor root is needed. `make test-integration` is checked by what pytest actually selects.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DOWNLOAD = "docker compose --profile tools run --rm download-weights"


def make(*args: str) -> list[str]:
    """``make ARGS`` in the repository, its output lines. An outer make's MAKEFLAGS (when the
    suite runs under `make test`) would leak its jobserver and options into this one."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def help_targets() -> dict[str, str]:
    return dict(line.split("\t", 1) for line in make("-s", "help"))


def recipe(target: str) -> list[str]:
    """The recipe lines of ``target`` as written in the Makefile (up to the first blank line)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    found = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)*)", text, re.M)
    assert found, f"no {target} target"
    return [line.strip() for line in found.group(1).splitlines()]


@pytest.mark.parametrize("target", ["pre-commit", "test-integration", "download-weights"])
def test_the_seed_targets_are_in_make_help(target: str) -> None:
    assert help_targets().get(target, "").strip(), f"`make help` does not describe {target}"


def test_pre_commit_runs_the_ci_steps_in_order() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ci_steps = [line.strip() for line in ci if line.strip().startswith("make ")]
    steps = [line.replace("$(MAKE)", "make") for line in recipe("pre-commit")]
    assert steps == ci_steps == ["make test", "make image-test"]
    dry = make("-n", "pre-commit")
    # The whole suite (lint, types, every test) comes before the image is built and run.
    assert dry.index("make image-test") > dry.index("make test")
    suite = next(i for i, line in enumerate(dry) if re.search(r"/bin/pytest -q$", line))
    assert any(re.search(r"/bin/ruff check ", line) for line in dry[:suite])
    assert any(re.search(r"/bin/mypy$", line) for line in dry[:suite])
    assert dry.index("scripts/image-test.sh") > suite


def test_test_integration_runs_the_integration_marker() -> None:
    dry = make("-n", "test-integration")
    assert re.search(r"/bin/pytest -q -m integration$", dry[-1]), dry
    assert "scripts/ensure-chromium.sh >/dev/null" in dry  # the browser suite needs it


def test_download_weights_runs_the_compose_tools_service() -> None:
    assert make("-n", "download-weights") == ["mkdir -p models", COMPOSE_DOWNLOAD]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    service = compose["services"]["download-weights"]
    assert service["profiles"] == ["tools"]
    assert service["command"] == ["gigaam-api", "download"]
    assert "./models:/data/models" in service["volumes"]


@pytest.mark.parametrize("readme", ["README.md", "README_ru.md"])
def test_every_help_target_is_in_the_readme_command_table(readme: str) -> None:
    rows = [
        line
        for line in (ROOT / readme).read_text(encoding="utf-8").splitlines()
        if line.startswith("| `make ")
    ]
    listed = {name for row in rows for name in re.findall(r"`make ([a-z-]+)`", row.split("|")[1])}
    assert set(help_targets()) <= listed, sorted(set(help_targets()) - listed)
    assert all(f"`{COMPOSE_DOWNLOAD}`" in row for row in rows if "`make download-weights`" in row)


def test_integration_marker_follows_what_a_module_runs() -> None:
    """Real server (in-process and as a process), browser, PostgreSQL (by fixture and by its
    class), Wyoming, and a module whose server comes from a helper module (the gated app of
    tests/gated_server.py) are selected; unit modules, including one that uses a helper from
    tests/api_server.py that starts nothing, are not."""
    expected = {
        "tests/test_api_process.py",  # server_process
        "tests/test_web_page.py",  # Chromium and serve()
        "tests/test_wyoming.py",
        "tests/test_postgres_harness.py",  # the postgres_server fixture
        "tests/test_jobs_store.py",  # SQLite and PostgreSQL through one parametrized fixture
        "tests/test_api_overlap.py",  # its server comes from tests/gated_server.py
    }
    unit = {
        "tests/test_wyoming_settings.py",
        "tests/test_features.py",
        "tests/test_pipeline_resume.py",
    }
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*argv, "-m", "integration", *sorted(expected | unit)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    selected = {line.split("::", 1)[0] for line in done.stdout.splitlines() if "::" in line}
    assert selected == expected
