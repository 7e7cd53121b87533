"""``gigaam-api jobs`` against a real server on loopback (the fixture checkpoint)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gigaam_api import cli
from tests.api_server import served_jobs_server
from tests.conftest import CORPUS_DIR

KEY = "cli-jobs-key"
SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"


@pytest.fixture(scope="module")
def url(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_jobs_server(golden_dir, tmp_path_factory.mktemp("server"), KEY) as base:
        yield base


def run(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["jobs", "--url", url, "--api-key", KEY, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_wait_status_result_delete(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(url, capsys, "submit", str(SPEECH))
    assert code == 0
    job_id = out.strip()
    assert job_id.startswith("job_")
    code, out, _ = run(url, capsys, "wait", job_id)
    assert code == 0 and json.loads(out)["status"] == "completed"
    code, out, _ = run(url, capsys, "status", job_id)
    assert json.loads(out)["id"] == job_id
    code, srt, _ = run(url, capsys, "result", job_id, "-f", "srt")
    expected = httpx.get(
        f"{url}/v1/jobs/{job_id}/result",
        params={"response_format": "srt"},
        headers={"Authorization": f"Bearer {KEY}"},
    ).text
    assert code == 0 and srt == expected and "-->" in srt
    code, out, _ = run(url, capsys, "submit", "--wait", "-f", "text", str(SPEECH))
    assert code == 0 and out.strip()
    assert run(url, capsys, "delete", job_id)[0] == 0
    code, _, err = run(url, capsys, "status", job_id)
    assert code == 1 and "404" in err


def test_errors_are_one_line_with_exit_code_1(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(url, capsys, "submit", str(tmp_path / "missing.wav"))
    assert code == 1 and "no such file" in err
    assert cli.main(["jobs", "--url", url, "status", "job_x"]) == 1  # no key: 401
    assert "401" in capsys.readouterr().err
    assert cli.main(["jobs", "--url", "http://127.0.0.1:9", "status", "job_x"]) == 1
    assert "cannot reach the server" in capsys.readouterr().err
