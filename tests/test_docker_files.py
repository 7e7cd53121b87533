"""Shipping files that cannot be exercised here (no Docker): parsed and checked by review rules.

Docker is not available on the development machine or in CI, so these tests hold the
Dockerfile, docker-compose.yml, .dockerignore and .env.example to the promises the README makes
(non-root, health check, no torch, weights not baked in, every setting documented). The health
check command itself is executed against a loopback server, since it is plain Python.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from gigaam_api.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuations joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    result = []
    for entry in logical:
        keyword, _, args = entry.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def healthcheck_argv() -> list[str]:
    (args,) = [a for k, a in dockerfile_instructions() if k == "HEALTHCHECK"]
    exec_form = args[args.index("CMD") + 3 :].strip()
    argv = json.loads(exec_form)  # exec form: no shell needed in the slim image
    assert isinstance(argv, list)
    return [str(a) for a in argv]


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    instructions = dockerfile_instructions()
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in instructions if k == "ARG"}
    froms = [a for k, a in instructions if k == "FROM"]
    assert len(froms) >= 2
    for entry in froms:
        image = entry.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert image.startswith("python:3.11-slim"), image
    assert froms[-1].split()[-1] == "runtime"
    # The runtime stage takes the installed venv from the build stage, not a fresh pip run.
    assert any(k == "COPY" and a.startswith("--from=build") for k, a in instructions)


def test_dockerfile_runs_as_uid_1000_and_serves() -> None:
    instructions = dockerfile_instructions()
    users = [a for k, a in instructions if k == "USER"]
    assert users and users[-1].split(":")[0] in ("1000", "app")
    run_lines = " ".join(a for k, a in instructions if k == "RUN")
    assert "--uid 1000" in run_lines
    assert ("EXPOSE", "8000") in instructions
    env = " ".join(a for k, a in instructions if k == "ENV")
    assert "MODELS_DIR=/data/models" in env
    cmd = [a for k, a in instructions if k == "CMD"][-1]
    assert json.loads(cmd) == ["gigaam-api", "serve"]


def test_dockerfile_installs_ffmpeg_from_debian_and_no_torch() -> None:
    instructions = dockerfile_instructions()
    runs = [a for k, a in instructions if k == "RUN"]
    assert any("apt-get install" in r and "ffmpeg" in r for r in runs)
    everything = " ".join(a for _, a in instructions).lower()
    assert "torch" not in everything
    assert "curl" not in everything  # slim has no curl; the health check uses Python
    names = [
        re.split(r"[=<>!~\[; ]", dep, maxsplit=1)[0].lower() for dep in _project_dependencies()
    ]
    assert "torch" not in names and "torchaudio" not in names, names


def test_dockerfile_bakes_in_no_weights() -> None:
    for keyword, args in dockerfile_instructions():
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"\.ckpt|\.onnx|models|\.tokenizer", args), args
            assert not args.startswith("http"), args
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for entry in (".git", ".venv", ".env", "models", "*.ckpt"):
        assert entry in ignored
    for needed in ("pyproject.toml", "README.md", "gigaam_api"):
        assert needed not in ignored


def test_dockerfile_healthcheck_covers_first_download() -> None:
    (args,) = [a for k, a in dockerfile_instructions() if k == "HEALTHCHECK"]
    start = re.search(r"--start-period=(\w+)", args)
    assert start is not None
    assert _seconds(start.group(1)) >= 600
    assert "/health" in " ".join(healthcheck_argv())


def test_compose_file_structure() -> None:
    data = compose()
    services = data["services"]
    api = services["gigaam-api"]
    assert api["build"] == "."
    assert "8000:8000" in api["ports"]
    assert {"path": ".env", "required": False} in api["env_file"]
    assert "./models:/data/models" in api["volumes"]
    assert api["environment"]["MODELS_DIR"] == "/data/models"
    assert api["restart"] == "unless-stopped"
    check = api["healthcheck"]
    assert "/health" in " ".join(check["test"])
    assert _seconds(check["start_period"]) >= 600
    assert "mem_limit" not in api and "cpus" not in api  # offered commented out only
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s*#\s*mem_limit:", text, re.M)
    assert re.search(r"^\s*#\s*cpus:", text, re.M)


def test_compose_tools_profile_downloads_weights() -> None:
    tool = compose()["services"]["download-weights"]
    assert tool["profiles"] == ["tools"]
    assert tool["command"] == ["gigaam-api", "download"]
    assert "./models:/data/models" in tool["volumes"]
    assert tool["image"] == compose()["services"]["gigaam-api"]["image"]


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = type(self).status if self.path == "/health" else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("source", ["Dockerfile", "docker-compose.yml"])
def test_healthcheck_command_passes_on_200_and_fails_on_503(
    source: str, health_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "Dockerfile":
        argv = healthcheck_argv()
    else:
        test = compose()["services"]["gigaam-api"]["healthcheck"]["test"]
        assert test[0] == "CMD"
        argv = [str(a) for a in test[1:]]
    assert argv[0] == "python"
    port = health_server.server_address[1]
    # Both probes read PORT (the compose file pins it to 8000 inside the container).
    env = {"PORT": str(port), "PATH": "", "NO_PROXY": "*"}
    command = [sys.executable, *argv[1:]]
    monkeypatch.setattr(_Health, "status", 200)
    ok = subprocess.run(command, env=env, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    monkeypatch.setattr(_Health, "status", 503)
    loading = subprocess.run(command, env=env, capture_output=True, timeout=30)
    assert loading.returncode != 0, shlex.join(command)


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assigned = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    expected = {name.upper() for name in Settings.model_fields}
    assert set(assigned) == expected
    # Each variable has a comment right above it (or above its group).
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            above = lines[max(0, i - 8) : i]
            assert any(prev.startswith("#") for prev in above), line


def test_env_example_values_are_the_defaults() -> None:
    example = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert example.model_dump() == defaults.model_dump()


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", value)
    assert match is not None and value, value
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def _project_dependencies() -> list[str]:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    deps: list[str] = list(project["dependencies"])
    return deps
