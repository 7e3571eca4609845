"""Webhook host resolution at create time: literals need no lookup, answers are reused briefly."""

from __future__ import annotations

import ipaddress

import pytest

from inferhook.ssrf import HostResolver, UnsafeWebhookURL, check_url

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]


async def test_an_ip_literal_is_its_own_answer() -> None:
    resolver = HostResolver()
    assert await resolver.resolve("127.0.0.1", 80) == [ipaddress.ip_address("127.0.0.1")]
    assert await resolver.resolve("::1", 80) == [ipaddress.ip_address("::1")]
    assert not resolver.answers  # nothing was looked up


async def test_a_host_is_looked_up_once_within_the_ttl() -> None:
    resolver = HostResolver(ttl=60.0)
    first = await resolver.resolve("localhost", 80)
    assert ipaddress.ip_address("127.0.0.1") in first
    assert await resolver.resolve("localhost", 80) is first
    fresh = HostResolver(ttl=0.0)
    one = await fresh.resolve("localhost", 80)
    assert await fresh.resolve("localhost", 80) is not one


async def test_the_cache_is_bounded() -> None:
    resolver = HostResolver(size=1)
    await resolver.resolve("localhost", 80)
    await resolver.resolve("localhost", 81)
    assert list(resolver.answers) == [("localhost", 81)]


async def test_check_url_refuses_what_resolves_inside() -> None:
    resolver = HostResolver()
    await check_url("http://127.0.0.1:9/hook", LOOPBACK, resolver)
    with pytest.raises(UnsafeWebhookURL, match="refused address"):
        await check_url("http://localhost:9/hook", [], resolver)
    with pytest.raises(UnsafeWebhookURL, match="does not resolve"):
        await check_url("http://no-such-host.invalid/hook", [], resolver)
