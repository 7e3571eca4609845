"""Open-loop load: create predictions at a fixed arrival rate and receive their webhooks.

Request i is due at `start + i / rate` whatever happened to earlier ones, and every
latency is counted from that due time, so a slow answer cannot hide by delaying the
next request (no coordinated omission). The webhook receiver runs in this same process
(not in the service's), on 127.0.0.1. With `--split URL`, every other prediction's
webhook goes to URL instead (e.g. a black hole) and only ours are waited for; with
`--split self` they go to a second healthy path of our receiver.

    python -m bench.tools.openloop --url http://127.0.0.1:8080 --key ih_… \
        --body body.json --rate 200 --seconds 10 --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from cli.infra.process import free_port

TERMINAL = {"succeeded", "failed", "canceled"}


@dataclass
class Sample:
    """One prediction as the load generator saw it (times from time.perf_counter(); the
    run's `wall_offset` turns them into wall-clock time, `*_wall` fields are wall-clock)."""

    index: int
    group: str
    due: float
    responded: float | None = None
    status: int | None = None
    prediction_id: str | None = None
    webhook_at: float | None = None
    webhook_wall: float | None = None
    final_status: str | None = None
    predict_time: float | None = None
    completed_wall: float | None = None


@dataclass
class Run:
    """Everything one run collected; `pending` counts terminal webhooks still expected."""

    samples: list[Sample] = field(default_factory=list)
    by_id: dict[str, Sample] = field(default_factory=dict)
    early: dict[str, tuple[float, float, dict[str, Any]]] = field(default_factory=dict)
    count_b: bool = False
    """Whether group b's webhooks come to us too (`--split self`)."""
    expected: int = 0
    received: int = 0
    sending_done: bool = False
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def check_done(self) -> None:
        if self.sending_done and self.received >= self.expected:
            self.all_in.set()


def _apply_webhook(sample: Sample, at: float, wall: float, body: dict[str, Any]) -> None:
    sample.webhook_at, sample.webhook_wall = at, wall
    sample.final_status = body.get("status")
    sample.predict_time = (body.get("metrics") or {}).get("predict_time")
    completed = body.get("completed_at")
    if completed:
        sample.completed_wall = datetime.fromisoformat(completed).timestamp()


def receiver(run: Run) -> web.Application:
    """Records terminal webhooks by prediction id (arrival times taken first thing)."""

    async def hook(request: web.Request) -> web.Response:
        at, wall = time.perf_counter(), time.time()
        body = orjson.loads(await request.read())
        if body.get("status") in TERMINAL:
            sample = run.by_id.get(body["id"])
            if sample is None:  # the webhook beat the 201 to us
                run.early[body["id"]] = (at, wall, body)
            elif sample.webhook_at is None:
                _apply_webhook(sample, at, wall, body)
                run.received += 1
                run.check_done()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook/{group}", hook)
    return app


async def create(session: aiohttp.ClientSession, url: str, body: bytes, run: Run,
                 sample: Sample) -> None:
    """POST one prediction and note when and how it was answered."""
    try:
        async with session.post(url, data=body) as response:
            payload = await response.read()
            sample.responded, sample.status = time.perf_counter(), response.status
    except aiohttp.ClientError:
        sample.responded, sample.status = time.perf_counter(), 0
        return
    if sample.status != 201:
        return
    sample.prediction_id = orjson.loads(payload)["id"]
    if sample.group == "a" or run.count_b:
        run.expected += 1
        run.by_id[sample.prediction_id] = sample
        early = run.early.pop(sample.prediction_id, None)
        if early is not None:
            _apply_webhook(sample, *early)
            run.received += 1
        run.check_done()


async def generate(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    """Send at the fixed rate, then wait (bounded) for the terminal webhooks."""
    run = Run(count_b=args.split == "self")
    runner = web.AppRunner(receiver(run), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ours = f"http://127.0.0.1:{port}/hook"
    bodies = {}
    for group in ("a", "b"):
        webhook = f"{ours}/{group}" if group == "a" or args.split in (None, "self") else args.split
        if args.no_webhook:
            bodies[group] = orjson.dumps(template)
        else:
            bodies[group] = orjson.dumps({**template, "webhook": webhook,
                                          "webhook_events_filter": ["completed"]})
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=4000)
    url = f"{args.url}/v1/predictions"
    total = int(args.rate * args.seconds)
    tasks: list[asyncio.Task[None]] = []
    wall_offset = time.time() - time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        start = time.perf_counter() + 0.2
        for i in range(total):
            due = start + i / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            group = "b" if args.split and i % 2 else "a"
            sample = Sample(index=i, group=group, due=due)
            run.samples.append(sample)
            tasks.append(asyncio.create_task(create(session, url, bodies[group], run, sample)))
        sent_at = time.perf_counter()
        await asyncio.gather(*tasks)
        run.sending_done = True
        if args.no_webhook:
            run.all_in.set()
        run.check_done()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.all_in.wait(), timeout=args.drain_timeout)
        finished = time.perf_counter()
    await runner.cleanup()
    return {"rate": args.rate, "seconds": args.seconds, "sent": total,
            "send_seconds": sent_at - start, "finished_after": finished - start,
            "expected": run.expected, "received": run.received, "wall_offset": wall_offset,
            "samples": [asdict(s) for s in run.samples]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--body", required=True, help="JSON file: the create body, no webhook")
    parser.add_argument("--rate", type=float, required=True, help="predictions per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--split", default=None,
                        help="`self`, or a URL that every other prediction's webhook goes to")
    parser.add_argument("--no-webhook", action="store_true", help="create without webhooks")
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    template = orjson.loads(Path(args.body).read_bytes())
    Path(args.out).write_bytes(orjson.dumps(asyncio.run(generate(args, template))))


if __name__ == "__main__":
    main()
