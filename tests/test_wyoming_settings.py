"""Wyoming settings and the client-version rule for streaming transcripts."""

from __future__ import annotations

import pytest

from gigaam_api.config import SettingsError, load_settings
from gigaam_api.wyoming.protocol import supports_streaming_transcripts


def test_wyoming_is_off_by_default() -> None:
    settings = load_settings(_env_file=None)
    assert settings.wyoming_uri == ""
    assert settings.wyoming_max_seconds == 60 and settings.wyoming_max_clients == 16
    assert settings.wyoming_zeroconf is False


@pytest.mark.parametrize("uri", ["tcp://0.0.0.0:10300", "tcp://127.0.0.1:0", "unix:///tmp/w.sock"])
def test_accepted_uris(uri: str) -> None:
    assert load_settings(_env_file=None, wyoming_uri=uri).wyoming_uri == uri


@pytest.mark.parametrize(
    "uri", ["0.0.0.0:10300", "tcp://0.0.0.0", "tcp://host:port", "stdio://", "http://x:1"]
)
def test_refused_uris_name_the_variable(uri: str) -> None:
    with pytest.raises(SettingsError, match="WYOMING_URI"):
        load_settings(_env_file=None, wyoming_uri=uri)


def test_zeroconf_needs_a_tcp_listener() -> None:
    with pytest.raises(SettingsError, match="WYOMING_ZEROCONF"):
        load_settings(_env_file=None, wyoming_zeroconf=True)


@pytest.mark.parametrize(
    ("version", "streams"),
    [
        (None, False),
        ("1.5.0", False),
        ("1.6.9", False),
        ("1.7.0", True),
        ("1.10.2", True),
        ("2.0", True),
        ("garbage", False),
        ("1.8.0rc1", True),
    ],
)
def test_streaming_transcripts_from_wyoming_1_7(version: str | None, streams: bool) -> None:
    assert supports_streaming_transcripts(version) is streams
