"""Invariant 8: a dependency's outage is not a crash (DESIGN.md).

Ingest, an executor and the dispatcher run as real processes against a private Postgres
or a private Kafka (the session's servers are shared with other tests, so they are never
stopped here). The server goes away under load and comes back on the same data: every
process stays up, /readyz and the metrics say what is down meanwhile, creates answer 201
or 503 with Retry-After, and every prediction that got a 201 reaches a terminal state.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import CommitFailedError, KafkaConnectionError, KafkaError, KafkaTimeoutError
from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError

from cli.infra import LocalKafka, LocalPostgres
from cli.infra.kafka import resolve_jars
from cli.infra.process import free_port, terminate
from cli.supervise import Service, Supervisor
from inferhook.db import migrate
from inferhook.resilience import Backoff, Dependency, outage
from inferhook.settings import REPO_ROOT, DatabaseSettings, KafkaSettings, Settings
from tests.support import TERMINAL, Stack, example_input, service_env

MODEL = "inferhook/digits"


@dataclass
class Services:
    """Ingest, one executor and the dispatcher as child processes, each logging to a file."""

    settings: Settings
    folder: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, *names: str) -> None:
        extra = {"INFERHOOK_HOST": self.settings.host, "INFERHOOK_PORT": str(self.settings.port),
                 "INFERHOOK_PUBLIC_URL": self.settings.base_url,
                 "INFERHOOK_METRICS_REFRESH_SECONDS": "1"}
        for name in names:
            args = [sys.executable, "-m", "cli", name, *([MODEL] if name == "executor" else [])]
            with self.log(name).open("ab") as out:
                self.procs[name] = subprocess.Popen(
                    args, env=service_env(self.settings, **extra), stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True)

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def dead(self) -> dict[str, str]:
        """Services that exited, with the tail of their log."""
        return {name: self.log(name).read_text(errors="replace")[-3000:]
                for name, proc in self.procs.items() if proc.poll() is not None}

    def stop(self) -> None:
        for proc in self.procs.values():
            terminate(proc.pid, timeout=20)



@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[Services]]:
    """Whatever Services a test starts are stopped at its end."""
    started: list[Services] = []
    yield started
    for running in started:
        running.stop()


@dataclass
class Load:
    """Creates predictions one after another; remembers the answers."""

    stack: Stack
    accepted: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    """Headers of the 503 answers."""

    async def one(self) -> int:
        async with self.stack.http.post(
                f"{self.stack.base_url}/v1/predictions",
                json={"model": MODEL, "input": example_input(self.stack.settings, MODEL)},
                headers=self.stack.auth(), timeout=aiohttp.ClientTimeout(total=80)) as response:
            body = await response.json(content_type=None)
            self.statuses.append(response.status)
            if response.status == 201:
                self.accepted.append(body["id"])
            elif response.status == 503:
                self.refused.append(dict(response.headers))
            return response.status

    async def run(self, stop: asyncio.Event) -> None:
        """A create every 0.1 s, up to 20 in flight (a create may wait on Kafka a while)."""
        slots = asyncio.Semaphore(20)
        tasks: set[asyncio.Task[None]] = set()

        async def create() -> None:
            try:
                with suppress(aiohttp.ClientError, TimeoutError):
                    await self.one()
            finally:
                slots.release()

        while not stop.is_set():
            await slots.acquire()
            task = asyncio.create_task(create())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks)


@asynccontextmanager
async def load(stack: Stack) -> AsyncIterator[Load]:
    stop, running = asyncio.Event(), Load(stack)
    task = asyncio.create_task(running.run(stop))
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=90)


async def readyz(stack: Stack) -> tuple[int, dict[str, Any]]:
    async with stack.http.get(f"{stack.base_url}/readyz",
                              timeout=aiohttp.ClientTimeout(total=10)) as response:
        return response.status, await response.json()


async def metric(stack: Stack, sample: str) -> str | None:
    async with stack.http.get(f"{stack.base_url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(sample):
                return line.rsplit(" ", 1)[1]
    return None


async def until(check: Any, timeout: float, what: str, services: Services) -> Any:
    """Poll `check` (sync or async) until it returns something true; fail early if a service
    died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not services.dead(), services.dead()
        with suppress(aiohttp.ClientError, TimeoutError):
            found = check()
            if inspect.isawaitable(found):
                found = await found
            if found:
                return found
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{what} not reached within {timeout}s")


async def all_terminal(stack: Stack, ids: list[str], services: Services, timeout: float) -> None:
    left = set(ids)

    async def check() -> bool:
        for prediction_id in sorted(left):
            response = await stack.get(prediction_id)
            if response.status == 200 and (await response.json())["status"] in TERMINAL:
                left.discard(prediction_id)
        return not left

    await until(check, timeout, f"all {len(ids)} accepted predictions terminal", services)


@asynccontextmanager
async def client(settings: Settings, key: str) -> AsyncIterator[Stack]:
    async with aiohttp.ClientSession() as http:
        yield Stack(settings, key, http)


async def test_postgres_restart_under_load(settings: Settings, tmp_path: Path,
                                           services: list[Services]) -> None:
    postgres = LocalPostgres(tmp_path / "postgres", durable=False)
    await asyncio.to_thread(postgres.start)
    try:
        database = DatabaseSettings(url=SecretStr(postgres.url), pool_size=5)
        await asyncio.to_thread(migrate, database)
        mine = settings.model_copy(update={"database": database})
        key = await Stack.new_key_for(mine, "alice")
        running = Services(mine, tmp_path)
        services.append(running)
        running.start("dispatcher", "executor", "ingest")
        async with client(mine, key) as stack:
            await until(lambda: _ready(stack), 60, "ingest ready", running)
            async with load(stack) as creates:
                await until(lambda: len(creates.accepted) >= 3, 30, "first creates", running)
                # Immediate shutdown (no checkpoint, clients cut off), like a crash.
                postgres.stop(immediate=True)
                down = await until(lambda: _says_down(stack, "postgres"), 20, "readyz: postgres down",
                                   running)
                await asyncio.sleep(3)
                await asyncio.to_thread(postgres.start)
                await until(lambda: _ready(stack), 60, "ingest ready again", running)
                during = list(creates.statuses)
                await until(lambda: len(creates.statuses) >= len(during) + 3, 30, "creates after",
                            running)
            assert "unavailable" in down["checks"]["postgres"]
            assert set(creates.statuses) <= {201, 503}, creates.statuses
            assert all(h.get("Retry-After") for h in creates.refused)
            await all_terminal(stack, creates.accepted, running, timeout=60)
        assert not running.dead(), running.dead()
    finally:
        postgres.stop()


@pytest.mark.timeout(240)
async def test_kafka_away_at_start_then_killed_under_load(
        settings: Settings, clean_db: None, tmp_path: Path, services: list[Services]) -> None:
    kafka = LocalKafka(tmp_path / "kafka", resolve_jars(REPO_ROOT / ".state" / "kafka-jars"),
                       port=free_port())
    mine = settings.model_copy(update={"kafka": KafkaSettings(
        bootstrap=kafka.bootstrap, topic_prefix=settings.kafka.topic_prefix, partitions=2)})
    key = await Stack.new_key_for(mine, "alice")
    running = Services(mine, tmp_path)
    services.append(running)
    try:
        # Started while Kafka is not there: they wait for it, say so, and serve what they can.
        running.start("dispatcher", "executor", "ingest")
        async with client(mine, key) as stack:
            await until(lambda: _says_down(stack, "kafka"), 60, "readyz: kafka down", running)
            clock = time.monotonic()
            status, body = await readyz(stack)
            assert status == 503 and "unavailable" in body["checks"]["kafka"]
            assert body["checks"]["postgres"] == "ok"
            assert time.monotonic() - clock < 3
            early = Load(stack)
            assert await early.one() == 503
            assert early.refused[0]["Retry-After"].isdigit()
            await until(lambda: _logged(running, "dispatcher", "waiting for kafka"), 30,
                        "the dispatcher says it waits", running)
            assert await metric(stack, 'inferhook_dependency_up{dependency="kafka"}') == "0.0"
            await asyncio.to_thread(kafka.start)
            await until(lambda: _ready(stack), 60, "ingest ready", running)
            async with load(stack) as creates:
                await until(lambda: len(creates.accepted) >= 3, 60, "first creates", running)
                await all_terminal(stack, creates.accepted[:3], running, timeout=60)
                # Killed under load, as a crash would.
                await asyncio.to_thread(kafka.kill)
                await until(lambda: _says_down(stack, "kafka"), 20, "readyz: kafka down", running)
                await until(lambda: creates.refused, 45, "a create refused", running)
                await asyncio.to_thread(kafka.start)
                await until(lambda: _ready(stack), 60, "ingest ready again", running)
                during = list(creates.statuses)
                await until(lambda: sum(s == 201 for s in creates.statuses[len(during):]) >= 3, 60,
                            "creates accepted again", running)
            assert set(creates.statuses) <= {201, 503}, creates.statuses
            assert all(h.get("Retry-After") for h in creates.refused)
            await all_terminal(stack, creates.accepted, running, timeout=90)
            assert await metric(stack, 'inferhook_dependency_up{dependency="kafka"}') == "1.0"
        assert not running.dead(), running.dead()
    finally:
        running.stop()
        kafka.stop()


async def _ready(stack: Stack) -> bool:
    return (await readyz(stack))[0] == 200


async def _says_down(stack: Stack, dependency: str) -> dict[str, Any] | None:
    status, body = await readyz(stack)
    return body if status == 503 and "unavailable" in body["checks"][dependency] else None


async def _logged(services: Services, name: str, text: str) -> bool:
    return text in services.log(name).read_text(errors="replace")


def test_backoff_is_capped_exponential_with_bounded_jitter() -> None:
    exact = Backoff(first=1.0, factor=2.0, cap=5.0, jitter=0.0)
    assert [exact.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittered = Backoff(first=1.0, factor=2.0, cap=5.0, jitter=0.2)
    rng = random.Random(7)
    assert all(4.0 <= jittered.delay(9, rng) <= 6.0 for _ in range(200))


def test_outage_asks_the_error_and_its_causes() -> None:
    def wrapped(cause: BaseException) -> DBAPIError:
        try:
            raise DBAPIError("SELECT 1", {}, Exception("adapted")) from cause
        except DBAPIError as exc:
            return exc

    assert outage(KafkaConnectionError("gone")) is Dependency.KAFKA
    assert outage(KafkaTimeoutError()) is Dependency.KAFKA
    assert outage(CommitFailedError("rebalanced")) is None  # not an outage
    assert outage(KafkaError("Unexpected error during batch delivery")) is None
    assert outage(wrapped(asyncpg.CannotConnectNowError("starting up"))) is Dependency.POSTGRES
    assert outage(wrapped(asyncpg.UniqueViolationError("dup"))) is None
    assert outage(ConnectionRefusedError(111, "refused")) is None  # names no server …
    assert outage(ConnectionRefusedError(111, "refused"),
                  network=Dependency.POSTGRES) is Dependency.POSTGRES  # … unless told which
    assert outage(ValueError("bug"), network=Dependency.POSTGRES) is None


async def test_a_hung_broker_is_an_outage(tmp_path: Path) -> None:
    """A broker that stops answering (SIGSTOP: its port still accepts) makes aiokafka's
    metadata fetch fail with a plain, non-retriable KafkaError. An executor creating its
    topics at start met it and exited; it must be an outage, waited out like any other."""
    kafka = LocalKafka(tmp_path / "kafka", resolve_jars(REPO_ROOT / ".state" / "kafka-jars"),
                       port=free_port())
    await asyncio.to_thread(kafka.start)
    assert kafka.pid is not None
    metadata = AIOKafkaClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=2000)
    try:
        await metadata.bootstrap()
        os.kill(kafka.pid, signal.SIGSTOP)
        try:
            with pytest.raises(KafkaError) as raised:
                await metadata.fetch_all_metadata()
        finally:
            os.kill(kafka.pid, signal.SIGCONT)
        assert not raised.value.retriable
        assert outage(raised.value) is Dependency.KAFKA
        assert (await metadata.fetch_all_metadata()).brokers()  # answers again once resumed
    finally:
        await metadata.close()
        await asyncio.to_thread(kafka.stop)


def test_supervisor_restarts_what_exits_and_leaves_the_rest(tmp_path: Path) -> None:
    steady = Service("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    crashy = Service("crashy", [sys.executable, "-c", "raise SystemExit(3)"])
    supervisor = Supervisor([steady, crashy], backoff=Backoff(first=0.05, cap=0.1, jitter=0.0))
    supervisor.start()
    try:
        deadline = time.monotonic() + 30
        while crashy.restarts < 3 and time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.02)
        assert crashy.restarts >= 3
        assert steady.process is not None and steady.process.poll() is None
        assert steady.restarts == 0
    finally:
        supervisor.stop(timeout=5)
    assert steady.process.poll() is not None
