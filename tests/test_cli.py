"""The ``gigaam-api`` command line, run as a user would: ``python -m gigaam_api`` subprocesses.

``transcribe`` runs the real pipeline on corpus audio with the golden v3_ctc fixture checkpoint
(random weights, so the words are nonsense: the tests check the output formats and timings,
not the text). ``download`` talks to the loopback file server of ``tests/file_server.py``.
``serve`` is started on a free port and must answer ``/health``, the documented offline path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gigaam_api import __version__, cli, cli_common, transcribe_cli, weights
from gigaam_api.config import Settings
from tests.file_server import PREFIX, FileServer
from tests.helpers import wait_until
from tests.speakers_conversations import build_conversations
from tests.speakers_data import conv_speaker_model, resemblyzer_wheel, write_wav

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEECH = "constructed_digits/digits_temperature_8k.wav"  # 6.8 s, 8 kHz telephony prompt
LONG = "asterisk_ru/prompts/demo-congrats.wav"  # 31 s: goes through VAD chunking


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gigaam_api ARGS`` in ``cwd`` (no stray .env) with a clean-ish env."""
    base = {k: v for k, v in os.environ.items() if not _is_setting(k)}
    base.update(PYTHONPATH=str(REPO_ROOT), NO_PROXY="127.0.0.1,localhost")
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gigaam_api", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _is_setting(name: str) -> bool:
    return name.lower() in Settings.model_fields


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In-process runs read no developer .env and no stray setting variables."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def fixture_env(golden_dir: Path, tmp_path: Path) -> dict[str, str]:
    """The offline path: a local checkpoint instead of downloaded weights."""
    return {
        "CHECKPOINT_PATH": str(golden_dir / "v3_ctc" / "v3_ctc.ckpt"),
        "MODELS_DIR": str(tmp_path / "models"),
        "NUM_THREADS": "1",
    }


# --- basics ---------------------------------------------------------------------------------


def test_help_lists_the_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "download", "transcribe"):
        assert command in result.stdout
    for command, flag in (("serve", "--port"), ("download", "MODEL"), ("transcribe", "--format")):
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        assert flag in capsys.readouterr().out


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    """``--help`` of every command stays instant: ONNX Runtime, the core and the HTTP stack
    are imported only by the command that runs them (in a fresh interpreter, so nothing an
    earlier test imported counts)."""
    heavy = {"onnxruntime", "numpy", "av", "uvicorn", "fastapi"}
    script = (
        "import contextlib, io, json, sys\n"
        "from gigaam_api.cli import main\n"
        f"for command in {['', 'serve', 'download', 'transcribe', 'jobs', 'listen']!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main([command, '--help'] if command else ['--help'])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    assert "gigaam_api.transcribe_cli" in loaded  # the script did build the command line
    assert sorted({m.split(".")[0] for m in loaded} & heavy) == []
    assert [m for m in loaded if m.startswith("gigaam_api.service")] == []


def test_console_script_points_at_main() -> None:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    module, _, attr = scripts["gigaam-api"].partition(":")
    assert (module, attr) == ("gigaam_api.cli", "main")
    assert cli.main is getattr(sys.modules[module], attr)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gigaam-api {__version__}"


def test_invalid_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = run_cli("download", env={"BATCH_SIZE": "0"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "BATCH_SIZE" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_setting_in_dotenv_exits_2(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MODEL=v3_ssl\n", encoding="utf-8")
    result = run_cli("transcribe", "x.wav", cwd=tmp_path)
    assert result.returncode == 2
    assert "MODEL=v3_ssl is not a transcription model" in result.stderr


def test_missing_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


# --- download -------------------------------------------------------------------------------


@pytest.fixture
def weights_server(golden_dir: Path) -> Iterator[FileServer]:
    data = (golden_dir / "v3_ctc" / "v3_ctc.ckpt").read_bytes()
    srv = FileServer({f"{PREFIX}/v3_ctc.ckpt": data}).start()
    yield srv
    srv.stop()


@pytest.fixture
def served_fixture(
    weights_server: FileServer, golden_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> bytes:
    """The fixture checkpoint served as ``v3_ctc.ckpt`` (``WEIGHTS_URL``) and accepted as such:
    it is not the official file, so its checksum is accepted for this test only."""
    fixture = (golden_dir / "v3_ctc" / "v3_ctc.ckpt").read_bytes()
    table = {**weights.OFFICIAL_CHECKSUMS, "v3_ctc.ckpt": hashlib.md5(fixture).hexdigest()}
    monkeypatch.setattr(weights, "OFFICIAL_CHECKSUMS", table)
    monkeypatch.setenv("WEIGHTS_URL", weights_server.base_url)
    return fixture


def test_download_fetches_into_models_dir(
    weights_server: FileServer,
    served_fixture: bytes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fixture = served_fixture
    models = tmp_path / "models"
    assert cli.main(["download", "--models-dir", str(models)]) == 0  # default: MODEL=v3_ctc
    assert capsys.readouterr().out.strip() == str(models / "v3_ctc.ckpt")
    assert (models / "v3_ctc.ckpt").read_bytes() == fixture
    # Already there: a second run makes no request.
    assert cli.main(["download", "v3_ctc", "--models-dir", str(models)]) == 0
    assert weights_server.gets("v3_ctc.ckpt") == [None]


def test_download_speakers_makes_the_int8_copy_ahead(
    served_fixture: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--speakers`` with an ONNX speaker model: the file, then its checked int8 copy, so the
    server's first labelled request does not wait for it."""
    speaker = tmp_path / "speaker.onnx"
    conv_speaker_model(speaker)
    monkeypatch.setenv("DIARIZATION_MODEL", str(speaker))
    models = tmp_path / "models"
    assert cli.main(["download", "--speakers", "--models-dir", str(models)]) == 0
    lines = capsys.readouterr().out.split()
    assert lines[:2] == [str(models / "v3_ctc.ckpt"), str(speaker)]
    assert len(lines) == 3 and lines[2].endswith("speaker.int8.onnx")
    assert Path(lines[2]).is_file() and Path(lines[2]).is_relative_to(models)
    monkeypatch.setenv("DIARIZATION_INT8", "false")
    assert cli.main(["download", "--speakers", "--models-dir", str(models)]) == 0
    assert capsys.readouterr().out.split() == lines[:2]


def test_download_rejects_a_file_with_the_wrong_checksum(
    weights_server: FileServer, tmp_path: Path
) -> None:
    env = {"WEIGHTS_URL": weights_server.base_url, "MODELS_DIR": str(tmp_path / "m")}
    result = run_cli("download", "v3_ctc", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "checksum mismatch for v3_ctc.ckpt" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m" / "v3_ctc.ckpt").exists()


def test_download_offline_explains_what_to_do(tmp_path: Path) -> None:
    env = {"WEIGHTS_URL": f"http://127.0.0.1:{_free_port()}/GigaAM", "MODELS_DIR": str(tmp_path)}
    result = run_cli("download", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "gigaam-api download v3_ctc" in result.stderr
    assert "CHECKPOINT_PATH" in result.stderr


def test_download_unknown_model_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("download", "v9_ctc", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown model v9_ctc" in result.stderr


# --- transcribe -----------------------------------------------------------------------------


def _srt_cues(body: str) -> list[tuple[float, float, str]]:
    cues = []
    for block in body.strip().split("\n\n"):
        number, times, *text = block.split("\n")
        assert number.isdigit()
        start, end = (_clock(t) for t in times.split(" --> "))
        cues.append((start, end, "\n".join(text)))
    return cues


def _clock(value: str) -> float:
    match = re.fullmatch(r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d)", value.strip())
    assert match is not None, value
    h, m, s, ms = (int(g) for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def test_transcribe_prints_srt(
    corpus_dir: Path, fixture_env: dict[str, str], tmp_path: Path
) -> None:
    result = run_cli(
        "transcribe", str(corpus_dir / SPEECH), "--format", "srt", env=fixture_env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    cues = _srt_cues(result.stdout)
    assert cues, result.stdout
    assert all(0 <= start < end <= 6.8 + 0.05 and text for start, end, text in cues)
    assert [c[0] for c in cues] == sorted(c[0] for c in cues)


def test_transcribe_writes_vtt_files(
    corpus_dir: Path, fixture_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "subs"
    files = [str(corpus_dir / SPEECH), str(corpus_dir / LONG)]
    result = run_cli(
        "transcribe", *files, "-f", "vtt", "-o", str(out), env=fixture_env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    written = sorted(p.name for p in out.iterdir())
    assert written == ["demo-congrats.vtt", "digits_temperature_8k.vtt"]
    long_vtt = (out / "demo-congrats.vtt").read_text(encoding="utf-8")
    assert long_vtt.startswith("WEBVTT\n")
    times = re.findall(r"(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)", long_vtt)
    assert times
    ends = [_clock(end) for _, end in times]
    assert max(ends) <= 31.308 + 0.05
    assert max(ends) > 22.0  # cues from after the first VAD chunk: absolute times


def test_transcribe_json_formats_in_process(
    corpus_dir: Path,
    fixture_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in fixture_env.items():
        monkeypatch.setenv(key, value)
    path = str(corpus_dir / SPEECH)
    assert cli.main(["transcribe", path, "--format", "json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert set(plain) == {"text", "usage"}
    assert plain["usage"] == {"type": "duration", "seconds": 7}

    assert cli.main(["transcribe", path, "--format", "verbose_json", "--words"]) == 0
    verbose = json.loads(capsys.readouterr().out)
    assert verbose["task"] == "transcribe" and verbose["language"] == "russian"
    assert verbose["duration"] == pytest.approx(6.787, abs=0.01)
    assert verbose["text"] == plain["text"]
    words = verbose["words"]
    assert words and all(0 <= w["start"] <= w["end"] <= verbose["duration"] for w in words)

    assert cli.main(["transcribe", path, "--format", "text"]) == 0
    assert capsys.readouterr().out == plain["text"] + "\n"


def test_progress_bar_over_audio_seconds(
    corpus_dir: Path,
    fixture_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in fixture_env.items():
        monkeypatch.setenv(key, value)
    settings = cli_common.command_settings()
    model = transcribe_cli.load_model(settings)
    body = transcribe_cli.transcribe_to_text(
        corpus_dir / LONG, model.transcribe, settings, "srt", progress=True
    )
    assert _srt_cues(body)
    bar = capsys.readouterr().err
    assert "demo-congrats.wav" in bar and "31.3/31.3" in bar, bar


def test_transcribe_bad_input_is_a_clear_error(
    fixture_env: dict[str, str], tmp_path: Path, corpus_dir: Path
) -> None:
    junk = tmp_path / "notes.wav"
    junk.write_text("this is not audio\n" * 50, encoding="utf-8")
    good = corpus_dir / SPEECH
    result = run_cli("transcribe", str(junk), str(good), env=fixture_env, cwd=tmp_path)
    assert result.returncode == 1  # one file failed, the other was still transcribed
    assert "notes.wav" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip()

    missing = run_cli("transcribe", str(tmp_path / "nope.mp3"), env=fixture_env, cwd=tmp_path)
    assert missing.returncode == 2
    assert "no such file" in missing.stderr


def test_transcribe_missing_checkpoint_path(tmp_path: Path) -> None:
    env = {"CHECKPOINT_PATH": str(tmp_path / "absent.ckpt")}
    (tmp_path / "a.wav").write_bytes(b"")
    result = run_cli("transcribe", str(tmp_path / "a.wav"), env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "CHECKPOINT_PATH=" in result.stderr and "does not exist" in result.stderr


# --- serve ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "key", "warned"),
    [("127.0.0.1", "", False), ("0.0.0.0", "", True), ("0.0.0.0", "k-123", False)],
    ids=["loopback", "all-interfaces-no-key", "all-interfaces-with-key"],
)
def test_serve_answers_health_with_a_fixture_checkpoint(
    fixture_env: dict[str, str], tmp_path: Path, host: str, key: str, warned: bool
) -> None:
    """Health answers; a server open to the network without API_KEY warns at start."""
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not _is_setting(k)}
    env = {**base, **fixture_env, "PYTHONPATH": str(REPO_ROOT), "NO_PROXY": "127.0.0.1"}
    env["API_KEY"] = key
    proc = subprocess.Popen(
        [sys.executable, "-m", "gigaam_api", "serve", "--host", host, "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def healthy() -> dict[str, Any] | None:
            if proc.poll() is not None:
                pytest.fail(f"no healthy server: {proc.communicate()[0]}")
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            except httpx.TransportError:
                return None
            assert response.status_code in (200, 503)  # 503: still loading
            return dict(response.json()) if response.status_code == 200 else None

        health = wait_until(healthy, "a healthy server", timeout=120, interval=0.2)
        assert health["status"] == "ok" and health["loaded"] is True
        assert health["device"] == "cpu"
    finally:
        proc.terminate()
        try:
            output = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
    assert ("API_KEY is empty and the server listens on 0.0.0.0" in output) is warned, output
    if warned:
        assert "HOST=127.0.0.1" in output and "Set API_KEY" in output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- speakers ---------------------------------------------------------------------------------


def test_transcribe_diarize_labels_real_voices(fixture_env: dict[str, str], tmp_path: Path) -> None:
    """``--diarize`` with Resemblyzer's real GE2E weights on a conversation of three real
    voices: SRT cues carry ``A: ``…``C: ``, diarized_json the same speakers."""
    conversation = next(c for c in build_conversations() if len(c.speakers) == 3)
    path = write_wav(tmp_path / "meeting.wav", conversation.audio)
    env = {**fixture_env, "DIARIZATION_MODEL": str(resemblyzer_wheel())}
    srt = run_cli("transcribe", str(path), "--diarize", "-f", "srt", env=env, cwd=tmp_path)
    assert srt.returncode == 0, srt.stderr
    labels = {text.split(": ", 1)[0] for _, _, text in _srt_cues(srt.stdout)}
    assert labels == {"A", "B", "C"}
    diarized = run_cli(
        "transcribe",
        str(path),
        "--diarize",
        "--num-speakers",
        "3",
        "-f",
        "diarized_json",
        env=env,
        cwd=tmp_path,
    )
    assert diarized.returncode == 0, diarized.stderr
    body = json.loads(diarized.stdout)
    assert {s["speaker"] for s in body["segments"]} == {"A", "B", "C"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num-speakers", "2"], "--num-speakers needs --diarize"),
        (["--diarize", "--num-speakers", "0"], "between 1 and 32"),
        (["-f", "diarized_json"], "needs --diarize"),
    ],
)
def test_transcribe_speaker_flags_are_checked(
    corpus_dir: Path, fixture_env: dict[str, str], tmp_path: Path, flags: list[str], message: str
) -> None:
    result = run_cli("transcribe", str(corpus_dir / SPEECH), *flags, env=fixture_env, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr


def test_diarize_with_an_unusable_speaker_model_is_a_clear_error(
    corpus_dir: Path, fixture_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fixture_env, "DIARIZATION_MODEL": str(tmp_path / "missing.onnx")}
    result = run_cli("transcribe", str(corpus_dir / SPEECH), "--diarize", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "speaker model is not available" in result.stderr and "Traceback" not in result.stderr
