"""Test helpers: the services running in-process, a webhook receiver, small utilities."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from cli.infra.process import free_port
from dispatcher.service import run as run_dispatcher
from executors.runtime import LoadedModel
from executors.worker import Executor, load_models
from inferhook.catalog import load_catalog
from inferhook.db import create_engine
from inferhook.settings import Settings
from ingest.app import build_app
from store.accounts import create_key

__all__ = ["Receiver", "Stack", "docker_available", "example_input", "free_port", "model_folder",
           "service_env", "start_dispatcher_process", "start_executor_process"]

TERMINAL = {"succeeded", "failed", "canceled"}


def docker_available() -> bool:
    """True when a Docker engine answers (never the case on our CI machines)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0


def model_folder(settings: Settings, model: str) -> Path:
    """The folder of the model named `model`. Folder names need not be model names: a name
    may hold hyphens, a folder may not (mypy maps it to a package)."""
    return load_catalog(settings.models_dir)[model].folder


def example_input(settings: Settings, model: str) -> dict[str, Any]:
    """A model's example input, as its folder holds it."""
    data: dict[str, Any] = json.loads((model_folder(settings, model) / "example_input.json").read_text())
    return data


_LOADED: dict[tuple[str, int], dict[str, LoadedModel]] = {}


def loaded_models(settings: Settings) -> dict[str, LoadedModel]:
    """Every model of `settings.models_dir`, loaded once per test session and shared by the
    executors tests start (loading all of them takes about a second)."""
    key = (str(settings.models_dir), settings.executor.intra_op_threads)
    if key not in _LOADED:
        _LOADED[key] = load_models(settings, [])
    return dict(_LOADED[key])


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records POSTs to /hook; `status` and `delay` script its answers."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    """Status codes to answer with, in order; 200 once used up."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    responders: list[Callable[[web.Request], Awaitable[web.StreamResponse]]] = field(
        default_factory=list)
    """Handlers that answer the next requests, in order, before `statuses` is used."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Received(dict(request.headers), await request.read()))
        self.arrived.set()
        if self.responders:
            return await self.responders.pop(0)(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until at least `count` requests arrived."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.requests)} of {count} webhooks arrived")
            self.arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout=remaining)
        return self.requests

    @classmethod
    @asynccontextmanager
    async def running(cls, host: str = "127.0.0.1") -> AsyncIterator[Receiver]:
        receiver = cls()
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, host, port).start()
        receiver.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/hook"
        try:
            yield receiver
        finally:
            await runner.cleanup()


@dataclass
class Stack:
    """The three services of one test, and an HTTP client holding an API key."""

    settings: Settings
    key: str
    http: aiohttp.ClientSession
    app: web.Application | None = None
    """The ingest application (to look at its state, e.g. the waiters it holds)."""

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def new_key(self, owner: str) -> str:
        """A fresh API key for `owner`."""
        return await self.new_key_for(self.settings, owner)

    async def create(self, body: dict[str, Any], *, key: str | None = None,
                     headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        async with self.http.post(f"{self.base_url}/v1/predictions", json=body,
                                  headers={**self.auth(key), **(headers or {})}) as response:
            await response.read()
            return response

    async def get(self, prediction_id: str, *, key: str | None = None) -> aiohttp.ClientResponse:
        async with self.http.get(f"{self.base_url}/v1/predictions/{prediction_id}",
                                 headers=self.auth(key)) as response:
            await response.read()
            return response

    async def wait_terminal(self, prediction_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll GET until the prediction is terminal; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = await self.get(prediction_id)
            if response.status == 200:
                body: dict[str, Any] = await response.json()
                if body["status"] in TERMINAL:
                    return body
            await asyncio.sleep(0.05)
        raise TimeoutError(f"prediction {prediction_id} did not finish in {timeout}s")

    @classmethod
    @asynccontextmanager
    async def running(cls, settings: Settings, *, executor: bool = True,
                      dispatcher: bool = True) -> AsyncIterator[Stack]:
        """Start ingest (and the executor and dispatcher unless told not to)."""
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        if executor:
            models = await asyncio.to_thread(loaded_models, settings)
            tasks.append(asyncio.create_task(Executor.dedicated(settings, models).run(stop)))
        if dispatcher:
            tasks.append(asyncio.create_task(run_dispatcher(settings, stop)))
        app = build_app(settings)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        key = await cls.new_key_for(settings, "alice")
        http = aiohttp.ClientSession()
        try:
            yield cls(settings, key, http, app)
        finally:
            await http.close()
            stop.set()
            await runner.cleanup()
            done, pending = await asyncio.wait(tasks, timeout=20) if tasks else (set(), set())
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    @staticmethod
    async def new_key_for(settings: Settings, owner: str) -> str:
        engine = create_engine(settings.database)
        try:
            return await create_key(engine, owner)
        finally:
            await engine.dispose()



def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """INFERHOOK_* environment that makes a service process use this test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERHOOK_")}
    env.update({
        "INFERHOOK_MODELS_DIR": str(settings.models_dir), "INFERHOOK_DEV": "1",
        "INFERHOOK_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "INFERHOOK_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "INFERHOOK_KAFKA_PARTITIONS": str(settings.kafka.partitions),
        "INFERHOOK_DATABASE_URL": settings.database.url.get_secret_value(),
        **extra})
    return env


def start_executor_process(settings: Settings, *models: str, **env: str) -> subprocess.Popen[bytes]:
    """`python -m cli executor MODELS…` as a child process (SIGKILL it at will)."""
    return subprocess.Popen([sys.executable, "-m", "cli", "executor", *models],
                            env=service_env(settings, **env), start_new_session=True)


def start_dispatcher_process(settings: Settings, **env: str) -> subprocess.Popen[bytes]:
    """`python -m cli dispatcher` as a child process, with this test's webhook settings."""
    hooks = settings.webhook
    webhook_env = {
        "INFERHOOK_WEBHOOK_RETRY_SCHEDULE": ",".join(str(s) for s in hooks.retry_schedule),
        "INFERHOOK_WEBHOOK_TIMEOUT": str(hooks.timeout),
        "INFERHOOK_WEBHOOK_ALLOW_NETS": ",".join(str(n) for n in hooks.allow_nets),
        "INFERHOOK_PUBLIC_URL": settings.base_url,
    }
    return subprocess.Popen([sys.executable, "-m", "cli", "dispatcher"],
                            env=service_env(settings, **{**webhook_env, **env}),
                            start_new_session=True)


class EventWriter:
    """Writes lifecycle events of made-up predictions straight to the events topic."""

    def __init__(self, settings: Settings) -> None:
        from inferhook.kafka import create_producer

        self.settings = settings
        self.topic = f"{settings.kafka.topic_prefix}.events"
        self.producer = create_producer(settings.kafka, client_id="test-events")

    async def __aenter__(self) -> EventWriter:
        from inferhook.kafka import ensure_topics

        await ensure_topics(self.settings.kafka, [self.topic])
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, prediction_id: str, sequence: int, data: Any, *,
                   wait: bool = True) -> None:
        """One event; its type follows from `data` (a terminal Completed needs `type=` below)."""
        await self.send_typed(prediction_id, sequence, _event_type(data), data, wait=wait)

    async def send_typed(self, prediction_id: str, sequence: int, event_type: Any, data: Any, *,
                         wait: bool = True) -> None:
        from schemas.events import PredictionEvent, event_id, utcnow

        event = PredictionEvent(id=event_id(prediction_id, sequence), source="tests", type=event_type,
                                time=utcnow(), subject=prediction_id, sequence=sequence, data=data)
        sent = await self.producer.send(self.topic, event.value(), key=event.key(),
                                        headers=event.headers())
        if wait:
            await sent

    async def flush(self) -> None:
        await self.producer.flush()


def _event_type(data: Any) -> Any:
    from schemas.events import Created, EventType, Logs, Output, Started

    for kind, event_type in ((Created, EventType.CREATED), (Started, EventType.STARTED),
                             (Logs, EventType.LOGS), (Output, EventType.OUTPUT)):
        if isinstance(data, kind):
            return event_type
    raise TypeError("give the type of a Completed event with send_typed")


@asynccontextmanager
async def dispatcher_running(settings: Settings, **parts: bool) -> AsyncIterator[None]:
    """The dispatcher in this event loop (parts: project, deliver, housekeeping)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_dispatcher(settings, stop, **parts))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0,
                     what: str = "condition") -> None:
    """Poll `check` every 50 ms until it is true; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


async def query(settings: Settings, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of one SQL query against the test database, as dicts."""
    from sqlalchemy import text

    engine = create_engine(settings.database)
    try:
        async with engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(text(sql), params)]
    finally:
        await engine.dispose()


async def end_offsets(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    """Where each partition of `topics` ends now (what a write would move)."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=settings.kafka.bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics
                      for p in sorted(consumer.partitions_for_topic(t) or ())]
        assert partitions, topics
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()
