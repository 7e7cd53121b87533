"""Zeroconf advertisement of the Wyoming door, on loopback only.

The record is checked field by field; then a real server with ``WYOMING_ZEROCONF=true`` bound
to 127.0.0.1 registers it on the loopback interface, a second mDNS responder on loopback finds
it the way Home Assistant's browser would, and shutdown withdraws it.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from gigaam_api.server import create_app
from gigaam_api.wyoming.zeroconf import SERVICE_TYPE, advertised_address, service_info
from tests.api_server import free_port, real_model_settings, serve


def test_service_info_describes_the_listener() -> None:
    info = service_info("192.0.2.7", 10300, name="gigaam-test")
    assert info.type == SERVICE_TYPE == "_wyoming._tcp.local."
    assert info.name == "gigaam-test._wyoming._tcp.local."
    assert info.port == 10300
    assert info.addresses == [socket.inet_aton("192.0.2.7")]
    assert info.properties == {b"program": b"gigaam-api"}


def test_a_specific_listen_address_is_advertised_as_is() -> None:
    assert advertised_address("127.0.0.1") == "127.0.0.1"


async def _lookup(name: str) -> AsyncServiceInfo | None:
    browser = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        found = await info.async_request(browser.zeroconf, 3000)
        return info if found else None
    finally:
        await browser.async_close()


def test_server_registers_on_loopback_and_withdraws_on_shutdown(
    golden_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    settings = real_model_settings(
        golden_dir,
        tmp_path_factory.mktemp("models"),
        wyoming_uri=f"tcp://127.0.0.1:{port}",
        wyoming_zeroconf=True,
    )
    app = create_app(settings, tmp_dir=tmp_path_factory.mktemp("uploads"))
    with serve(app):
        advertiser = app.state.wyoming.advertiser
        assert advertiser is not None and advertiser.registered
        assert advertiser.info.port == port
        assert advertiser.info.addresses == [socket.inet_aton("127.0.0.1")]
        found = asyncio.run(_lookup(advertiser.info.name))
        assert found is not None and found.port == port
    assert not advertiser.registered
