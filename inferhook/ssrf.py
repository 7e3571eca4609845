"""Refuse webhook URLs that point inside: loopback, private, link-local, metadata and the like.

Used by ingest when a prediction is created and by the dispatcher on the address it
actually connects to (so DNS rebinding cannot slip past). Operators allow networks with
INFERHOOK_WEBHOOK_ALLOW_NETS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Sequence
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CGNAT = ipaddress.ip_network("100.64.0.0/10")
EMBEDDING = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"),
             ipaddress.ip_network("2002::/16"))
"""NAT64 and 6to4 prefixes: IPv6 addresses that carry an IPv4 address we cannot judge."""


class UnsafeWebhookURL(ValueError):
    """The webhook URL is malformed or reaches an address we refuse."""


def address_allowed(address: IPAddress, allow: Sequence[IPNetwork]) -> bool:
    """True for a public unicast address, or one inside an operator-allowed network.

    Refused: loopback, private, link-local (cloud metadata included), CGNAT, multicast,
    reserved and unspecified addresses, and IPv6 forms that embed an IPv4 address
    (IPv4-mapped, NAT64, 6to4). An IPv4-mapped address passes only when the address it
    maps is in the allow-list.
    """
    if any(address in net for net in allow):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return any(address.ipv4_mapped in net for net in allow)
        if any(address in net for net in EMBEDDING):
            return False
    if address in CGNAT:
        return False
    return address.is_global and not address.is_multicast


def check_url_syntax(url: str) -> tuple[str, int]:
    """Host and port of an http(s) URL, or UnsafeWebhookURL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookURL("webhook must be an http or https URL")
    if not parts.hostname:
        raise UnsafeWebhookURL("webhook URL has no host")
    if parts.username or parts.password:
        raise UnsafeWebhookURL("webhook URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhookURL("webhook URL has an invalid port") from exc
    return parts.hostname, port


class HostResolver:
    """Resolves webhook hosts, reusing an answer for `ttl` seconds (at most `size` hosts).

    An IP literal is its own answer (no lookup). The dispatcher checks the address it really
    connects to on every attempt, so reusing an answer here only spares lookups.
    """

    def __init__(self, ttl: float = 30.0, size: int = 4096) -> None:
        self.ttl, self.size = ttl, size
        self.answers: OrderedDict[tuple[str, int], tuple[float, list[IPAddress]]] = OrderedDict()

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses `host` stands for; UnsafeWebhookURL when it does not resolve."""
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        now = time.monotonic()
        cached = self.answers.get((host, port))
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                                 type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnsafeWebhookURL(f"webhook host {host!r} does not resolve") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        self.answers[(host, port)] = (now, addresses)
        self.answers.move_to_end((host, port))
        while len(self.answers) > self.size:
            self.answers.popitem(last=False)
        return addresses


async def check_url(url: str, allow: Sequence[IPNetwork], resolver: HostResolver) -> None:
    """Raise UnsafeWebhookURL unless every address the URL's host resolves to is allowed."""
    host, port = check_url_syntax(url)
    for address in await resolver.resolve(host, port):
        if not address_allowed(address, allow):
            raise UnsafeWebhookURL(f"webhook host {host!r} resolves to a refused address {address}")
