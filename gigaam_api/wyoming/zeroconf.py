"""``_wyoming._tcp`` advertisement over mDNS, so Home Assistant discovers the server by itself.

Home Assistant's Wyoming integration browses ``_wyoming._tcp.local.`` and offers any server it
finds. The record carries one IPv4 address: the listen address when it is a specific one, else
the address of the interface that routes multicast (found by "connecting" a UDP socket to the
mDNS group, which sends nothing). Advertising is best effort: a host without multicast logs a
warning and the server keeps serving on its port.
"""

from __future__ import annotations

import logging
import socket
import uuid

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
MDNS_GROUP = "224.0.0.251"


def advertised_address(listen_host: str) -> str:
    """The IPv4 address to publish for a server listening on ``listen_host``."""
    if listen_host not in ("0.0.0.0", "", "::"):
        return socket.gethostbyname(listen_host)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((MDNS_GROUP, 5353))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def instance_name() -> str:
    """A stable per-host name (the MAC address), so a restart does not look like a new server."""
    return f"gigaam-api-{uuid.getnode():012x}"


def service_info(address: str, port: int, name: str | None = None) -> AsyncServiceInfo:
    """The mDNS record: ``<name>._wyoming._tcp.local.`` at ``address:port``."""
    instance = name or instance_name()
    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"{instance}.{SERVICE_TYPE}",
        addresses=[socket.inet_aton(address)],
        port=port,
        properties={"program": "gigaam-api"},
        server=f"{instance}.local.",
    )


class Advertiser:
    """Registers the service on start and withdraws it on stop."""

    def __init__(self, info: AsyncServiceInfo, interfaces: list[str] | None = None) -> None:
        self.info = info
        self._interfaces = interfaces
        self._zeroconf: AsyncZeroconf | None = None
        self.registered = False

    async def start(self) -> None:
        try:
            if self._interfaces is None:
                self._zeroconf = AsyncZeroconf(ip_version=IPVersion.V4Only)
            else:
                self._zeroconf = AsyncZeroconf(
                    interfaces=self._interfaces, ip_version=IPVersion.V4Only
                )
            await self._zeroconf.async_register_service(self.info)
            self.registered = True
            log.info("wyoming: advertised %s over zeroconf", self.info.name)
        except Exception as exc:
            log.warning("wyoming: zeroconf advertisement failed (%s); serving without it", exc)
            await self.stop()

    async def stop(self) -> None:
        zc, self._zeroconf = self._zeroconf, None
        if zc is None:
            return
        try:
            if self.registered:
                await zc.async_unregister_service(self.info)
            await zc.async_close()
        except Exception as exc:
            log.warning("wyoming: zeroconf shutdown failed: %s", exc)
        self.registered = False
