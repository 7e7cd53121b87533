"""The server as its own process, configured only by environment variables.

Starts ``uvicorn --factory gigaam_api.server:create_app_from_env`` (what a deployment runs)
with ``CHECKPOINT_PATH`` on the golden fixture, waits for ``/health`` to turn 200, transcribes
with the official SDK, and reads the JSON request log the process wrote.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
from openai import OpenAI

from tests.api_server import free_port, server_process
from tests.conftest import CORPUS_DIR, REPO_ROOT
from tests.helpers import wait_until

KEY = "process-key-0042"


def test_server_process_from_environment(
    golden_dir: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "CHECKPOINT_PATH": str(golden_dir / "v3_ctc" / "v3_ctc.ckpt"),
        "MODELS_DIR": str(tmp_path / "models"),
        "API_KEY": KEY,
        "LOG_JSON": "true",
        "NUM_THREADS": "1",
    }
    log_path = tmp_path / "server.log"
    proc = server_process(port, env, cwd=tmp_path, log_path=log_path)  # no stray .env
    try:
        base = f"http://127.0.0.1:{port}"

        def healthy() -> httpx.Response | None:
            assert proc.poll() is None, log_path.read_text()
            try:
                response = httpx.get(f"{base}/health", timeout=5)
            except httpx.TransportError:
                return None
            assert response.status_code in (200, 503)
            return response if response.status_code == 200 else None

        health = wait_until(healthy, "the server to become healthy", timeout=120, interval=0.1)
        assert health.json()["loaded"] is True

        with OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0) as client:
            raw = client.audio.transcriptions.with_raw_response.create(
                file=CORPUS_DIR / "pisets" / "test_sound_ru.wav", model="whisper-1"
            )
            result = raw.parse()
        assert result.text
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert proc.wait(30) in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry.get("request_id") == raw.request_id]
    assert len(access) == 1
    entry = access[0]
    assert entry["status"] == 200 and entry["path"] == "/v1/audio/transcriptions"
    assert entry["audio_seconds"] > 3 and entry["processing_seconds"] > 0
    assert any("ready" in entry.get("message", "") for entry in lines)
    assert "Application shutdown complete" in log_path.read_text()
    assert KEY not in log_path.read_text()
