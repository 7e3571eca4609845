"""Sending one signed webhook over HTTP, refusing addresses inside the network.

The SSRF check runs where the connection is made: the connector's resolver drops refused
answers, and its socket factory refuses to open a socket to a refused address, so what is
checked is the address actually connected to (a DNS answer that changes between checks,
or an IP literal in the URL, cannot slip past).
A response is judged by its status line; at most 64 KiB of its body is read (within the
same timeout) and 4 KiB kept, so a receiver trickling a huge body costs one timeout at most.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from dispatcher.backoff import parse_retry_after
from dispatcher.errors import RefusedAddress
from dispatcher.signing import headers as signed_headers
from inferhook.ssrf import IPNetwork, address_allowed
from schemas.events import utcnow

MAX_RESPONSE_READ = 64 * 1024
MAX_RESPONSE_STORED = 4 * 1024
MAX_ERROR = 500


class GuardedResolver(AbstractResolver):
    """Resolves like `inner` (the default resolver), then drops every address we refuse."""

    def __init__(self, allow: Sequence[IPNetwork], inner: AbstractResolver | None = None) -> None:
        self.allow = list(allow)
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: Any = 0) -> list[ResolveResult]:
        """The allowed addresses of `host`; RefusedAddress when none is."""
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results
                   if address_allowed(ipaddress.ip_address(r["host"]), self.allow)]
        if not allowed:
            refused = ", ".join(r["host"] for r in results)
            raise RefusedAddress(f"{host} resolves only to refused addresses ({refused})")
        return allowed

    async def close(self) -> None:
        """Close the inner resolver."""
        await self.inner.close()


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt came to."""

    started_at: datetime
    ok: bool
    status: int | None
    error: str | None
    response: str
    latency: float
    retry_after: float | None = None


@dataclass(frozen=True)
class Signing:
    """The keys one delivery is signed with."""

    secrets: list[str]
    signing_key: str | None = None


async def _read_some(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_RESPONSE_READ:
        chunk = await response.content.read(MAX_RESPONSE_READ - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def send(session: aiohttp.ClientSession, url: str, signing: Signing, msg_id: str,
               body: bytes, timeout: float, *,
               extra_headers: dict[str, str] | None = None) -> Attempt:
    """POST `body` signed with `signing`; 2xx is success, anything else (3xx too) is not."""
    started_at = utcnow()
    timestamp = int(time.time())
    clock = time.perf_counter()
    deadline = asyncio.get_running_loop().time() + timeout
    headers = signed_headers(signing.secrets, msg_id, timestamp, body,
                             signing_key=signing.signing_key) | (extra_headers or {})
    try:
        async with asyncio.timeout_at(deadline):
            response = await session.post(url, data=body, headers=headers,
                                          allow_redirects=False)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Attempt(started_at, ok=False, status=None, error=_describe(exc, timeout),
                       response="", latency=time.perf_counter() - clock)
    status = response.status
    text, read_error = "", None
    try:
        async with asyncio.timeout_at(deadline):
            text = (await _read_some(response)).decode("utf-8", "replace")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        read_error = f"reading the response: {_describe(exc, timeout)}"
    finally:
        if response.content.at_eof():
            response.release()  # the connection goes back to the pool
        else:
            response.close()  # never wait for (or pool) a body we did not read to the end
    ok = 200 <= status < 300
    error = read_error if ok else f"HTTP {status}" + (
        " (redirects are not followed)" if 300 <= status < 400 else "")
    return Attempt(started_at, ok=ok, status=status, error=error,
                   response=text[:MAX_RESPONSE_STORED], latency=time.perf_counter() - clock,
                   retry_after=parse_retry_after(response.headers.get("Retry-After"), started_at))


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR]


def guarded_socket_factory(allow: Sequence[IPNetwork]) -> Callable[[AddrInfoType], socket.socket]:
    """A socket factory that refuses to open a socket to a refused address.

    It runs for every address a connection is attempted to, IP literals in the URL included
    (those never reach the resolver), so it is the last word on where webhooks go.
    """
    nets = list(allow)

    def factory(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, address = addr_info
        if not address_allowed(ipaddress.ip_address(address[0]), nets):
            raise RefusedAddress(f"refused to connect to {address[0]} (not a public address)")
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


def client_session(allow: Sequence[IPNetwork], *, per_endpoint: int,
                   resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """The one HTTP client of a dispatcher: guarded resolver and sockets, no cookies or DNS cache."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow, resolver), limit=0,
                                     limit_per_host=per_endpoint, use_dns_cache=False,
                                     socket_factory=guarded_socket_factory(allow))
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=None))
