"""Test helpers: the services running in-process, a webhook receiver, small utilities."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from dispatcher.service import run as run_dispatcher
from executors.worker import Executor, load_models
from inferhook.accounts import create_key
from inferhook.db import create_engine
from inferhook.infra.process import free_port
from inferhook.settings import Settings
from ingest.app import build_app

__all__ = ["Receiver", "Stack", "docker_available", "example_input", "free_port"]

TERMINAL = {"succeeded", "failed", "canceled"}


def docker_available() -> bool:
    """True when a Docker engine answers (never the case on our CI machines)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0


def example_input(settings: Settings, model: str) -> dict[str, Any]:
    """A model's example input, as its folder holds it."""
    folder = settings.models_dir / model.split("/")[1]
    data: dict[str, Any] = json.loads((folder / "example_input.json").read_text())
    return data


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

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(dict(request.headers), await request.read()))
        self.arrived.set()
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
    async def running(cls) -> AsyncIterator[Receiver]:
        receiver = cls()
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        receiver.url = f"http://127.0.0.1:{port}/hook"
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
            models = await asyncio.to_thread(load_models, settings, [])
            tasks.append(asyncio.create_task(Executor(settings, models).run(stop)))
        if dispatcher:
            tasks.append(asyncio.create_task(run_dispatcher(settings, stop)))
        runner = web.AppRunner(build_app(settings))
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        key = await cls.new_key_for(settings, "alice")
        http = aiohttp.ClientSession()
        try:
            yield cls(settings, key, http)
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

