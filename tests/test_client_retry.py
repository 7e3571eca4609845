"""Retries are safe: a create whose answer was lost makes ONE prediction; a dropped event
stream resumes where it stopped. A small TCP proxy in front of ingest drops connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from inferhook_client import AsyncClient, Client, RetryPolicy, Status
from inferhook_client.retry import compute_backoff, parse_retry_after

from tests.support import Stack, example_input, free_port

FAST = RetryPolicy(initial_backoff=0.05, max_backoff=0.2)


@dataclass
class DroppingProxy:
    """Forwards TCP to ingest; on its first connection it forwards the request, then cuts the
    client off once the answer starts (with `marker`: after forwarding the answer up to it)."""

    upstream: tuple[str, int]
    marker: bytes | None = None
    connections: int = 0
    dropped: int = 0
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = self.connections == 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        upstream = asyncio.create_task(self._pipe(reader, up_writer))
        seen = b""
        try:
            while data := await up_reader.read(65536):
                if first and self.marker is None:
                    self.dropped += 1  # ingest has answered: the prediction exists, unheard
                    break
                writer.write(data)
                await writer.drain()
                seen += data
                if first and self.marker is not None and self.marker in seen:
                    self.dropped += 1
                    break
        finally:
            upstream.cancel()
            writer.transport.abort()
            up_writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    @classmethod
    @asynccontextmanager
    async def running(cls, stack: Stack, marker: bytes | None = None) -> AsyncIterator[DroppingProxy]:
        proxy = cls((stack.settings.host, stack.settings.port), marker)
        port = free_port()
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", port)
        proxy.url = f"http://127.0.0.1:{port}"
        try:
            yield proxy
        finally:
            server.close()


async def test_create_retried_after_a_dropped_answer_makes_one_prediction(stack: Stack) -> None:
    image = example_input(stack.settings, "inferhook/digits")
    async with DroppingProxy.running(stack) as proxy:
        def create() -> str:
            with Client(proxy.url, stack.key, retry=FAST) as client:
                return client.predictions.create("inferhook/digits", image).id

        prediction_id = await asyncio.to_thread(create)
    assert proxy.dropped == 1 and proxy.connections == 2
    async with AsyncClient(stack.base_url, stack.key) as client:
        listed = [p.id async for p in client.predictions.list()]
    assert listed == [prediction_id]


async def test_async_create_retry_is_safe_too(stack: Stack) -> None:
    async with DroppingProxy.running(stack) as proxy, AsyncClient(proxy.url, stack.key,
                                                                  retry=FAST) as client:
        created = await client.predictions.create("inferhook/spin", {"milliseconds": 1})
        assert proxy.dropped == 1 and proxy.connections == 2
        assert [p.id async for p in client.predictions.list()] == [created.id]


async def test_stream_resumes_after_a_drop_without_gaps_or_repeats(stack: Stack) -> None:
    async with DroppingProxy.running(stack, marker=b"event: created") as proxy, \
            AsyncClient(proxy.url, stack.key, retry=FAST) as client:
        created = await client.predictions.create("inferhook/spin", {"milliseconds": 1500})
        events = [e async for e in client.predictions.stream(created.id)]
    assert proxy.dropped == 1 and proxy.connections == 2  # the resumed stream is the second
    kinds = [e.kind for e in events]
    assert kinds[0] == "created" and kinds[-1] == "succeeded"
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences))


def test_backoff_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(initial_backoff=0.5, factor=2, max_backoff=3, jitter=False)
    assert [compute_backoff(n, policy) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]
    assert compute_backoff(1, policy, retry_after=7) == 7
    assert compute_backoff(1, RetryPolicy(max_retry_after=5), retry_after=70) == 5
    assert compute_backoff(3, RetryPolicy(initial_backoff=1), rand=0.5) == 2
    assert parse_retry_after("3") == 3 and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0


def test_status_knows_terminal_states() -> None:
    assert [s for s in Status if s.is_terminal()] == [Status.SUCCEEDED, Status.FAILED,
                                                      Status.CANCELED]
