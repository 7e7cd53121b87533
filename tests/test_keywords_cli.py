"""``--keyword`` in the command line: ``gigaam-api transcribe`` (in process, the fixture
checkpoint) and ``gigaam-api jobs submit`` (against a real server on loopback).

As in ``tests/test_keywords_api.py``, the fixture model has random weights, so a phrase
boosted strongly enough is written into its text and a weak one is not: the observable sign
that the flag reached the decoder. ``KEYWORDS`` applies to the local run as it does to a
server; a phrase the model cannot write is a usage error naming it, before any file is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gigaam_api import cli
from gigaam_api.config import Settings
from tests.api_server import served_jobs_server
from tests.conftest import CORPUS_DIR

SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"  # 3.2 s, 16 kHz mono
PHRASE = "саш"
KEY = "keywords-cli-key"


def marked(text: str) -> bool:
    """Whether the phrase is one of the words of ``text`` (keywords match whole words)."""
    return PHRASE in text.split()


@pytest.fixture
def local(golden_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A local run on the fixture checkpoint, reading no developer .env or stray setting."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHECKPOINT_PATH", str(golden_dir / "v3_ctc" / "v3_ctc.ckpt"))
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("NUM_THREADS", "1")
    return monkeypatch


def transcribe(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    code = cli.main(["transcribe", str(SPEECH), "-f", "text", *flags])
    out, err = capsys.readouterr()
    return code, out, err


def test_keyword_reaches_the_decoder(
    local: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, plain, _ = transcribe(capsys)
    assert code == 0 and plain.strip() and not marked(plain)
    code, boosted, _ = transcribe(capsys, "--keyword", "Сбербанк", "--keyword", f"{PHRASE}:9")
    assert code == 0 and marked(boosted) and boosted != plain
    code, weak, _ = transcribe(capsys, "--keyword", f"{PHRASE}:1")
    assert code == 0 and not marked(weak)
    code, listed, _ = transcribe(capsys, "--keyword", f"Сбербанк, {PHRASE}:9")  # a list
    assert code == 0 and listed == boosted


def test_the_keywords_setting_applies_to_a_local_run(
    local: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    local.setenv("KEYWORDS", f"{PHRASE}:9")
    code, out, _ = transcribe(capsys)
    assert code == 0 and marked(out)
    code, out, _ = transcribe(capsys, "--keyword", f"{PHRASE}:1")  # re-boosted, weaker
    assert code == 0 and not marked(out)


@pytest.mark.parametrize(
    ("flag", "needle"),
    [
        ("Moscow", "--keyword: Invalid keyword 'Moscow'"),
        (f"{PHRASE}:0", "above 0"),
        (f"{PHRASE}:99", "KEYWORDS_MAX_BOOST"),
        ("а" * 65, "longer than 64"),
    ],
)
def test_a_bad_keyword_is_a_usage_error_naming_it(
    local: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flag: str, needle: str
) -> None:
    code, out, err = transcribe(capsys, "--keyword", flag)
    assert code == 2 and out == ""
    assert needle in err and "Traceback" not in err


def test_keywords_the_model_cannot_write_in_the_setting_are_named(
    local: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    local.setenv("KEYWORDS", "Paris")
    code, out, err = transcribe(capsys)
    assert code == 2 and out == "" and "KEYWORDS: Invalid keyword 'Paris'" in err


# -- gigaam-api jobs submit --keyword ----------------------------------------------------------


@pytest.fixture(scope="module")
def url(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_jobs_server(golden_dir, tmp_path_factory.mktemp("server"), KEY) as base:
        yield base


def jobs(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["jobs", "--url", url, "--api-key", KEY, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_jobs_submit_keeps_the_keywords_with_the_job(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, plain, _ = jobs(url, capsys, "submit", "--wait", "-f", "text", str(SPEECH))
    assert code == 0 and plain.strip() and not marked(plain)
    code, boosted, _ = jobs(
        url, capsys, "submit", "--wait", "-f", "text", "--keyword", f"{PHRASE}:9", str(SPEECH)
    )
    assert code == 0 and marked(boosted)


def test_jobs_submit_with_a_bad_keyword_is_refused_naming_it(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = jobs(url, capsys, "submit", "--keyword", "Berlin", str(SPEECH))
    assert code == 1 and out == ""
    assert "400" in err and "'Berlin'" in err
