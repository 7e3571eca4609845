"""Sending one signed webhook over HTTP, refusing addresses inside the network.

The SSRF check runs in the resolver the connector uses, so it sees the addresses that
are actually connected to (a DNS answer that changes between checks cannot slip past).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from dispatcher.signing import headers as signed_headers
from inferhook.ssrf import IPNetwork, address_allowed

MAX_RESPONSE_READ = 64 * 1024
MAX_RESPONSE_STORED = 4 * 1024


class RefusedAddress(OSError):
    """The webhook host resolves only to refused addresses."""


class GuardedResolver(AbstractResolver):
    """Resolves like the default resolver, then drops every address we refuse to reach."""

    def __init__(self, allow: Sequence[IPNetwork]) -> None:
        self.allow = list(allow)
        self.inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: Any = 0) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results
                   if address_allowed(ipaddress.ip_address(r["host"]), self.allow)]
        if not allowed:
            refused = ", ".join(r["host"] for r in results)
            raise RefusedAddress(f"{host} resolves only to refused addresses ({refused})")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Attempt:
    """What one delivery attempt came to."""

    ok: bool
    status: int | None
    error: str | None
    body: str
    latency: float
    retry_after: float | None = None
    gone: bool = False


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def send(session: aiohttp.ClientSession, url: str, secrets: list[str], msg_id: str,
               body: bytes, timeout: float) -> Attempt:
    """POST `body` signed with each secret; 2xx is success, anything else (3xx too) is not."""
    timestamp = int(time.time())
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, allow_redirects=False,
                                headers=signed_headers(secrets, msg_id, timestamp, body),
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            text = (await response.content.read(MAX_RESPONSE_READ)).decode("utf-8", "replace")
            return Attempt(ok=200 <= response.status < 300, status=response.status,
                           error=None if response.status < 300 else f"HTTP {response.status}",
                           body=text[:MAX_RESPONSE_STORED],
                           latency=time.perf_counter() - started,
                           retry_after=_retry_after(response.headers.get("Retry-After")),
                           gone=response.status == 410)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Attempt(ok=False, status=None, error=f"{type(exc).__name__}: {exc}"[:500],
                       body="", latency=time.perf_counter() - started)


def client_session(allow: Sequence[IPNetwork]) -> aiohttp.ClientSession:
    """The one HTTP client of a dispatcher: guarded resolver, no cookies, bounded pool."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow), limit=256,
                                     limit_per_host=16, ttl_dns_cache=None, use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
