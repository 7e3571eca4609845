"""The baseline server: a bare aiohttp app answering the same JSON as ingest, doing no work.

POST /v1/predictions reads and parses the body and answers the canned create response;
GET /v1/predictions/{id} answers the canned prediction, or, with `Prefer: wait`, holds
the connection until the client goes away (the floor for bytes per waiting client).

With `--kafka BOOTSTRAP --topic TOPIC` it is the bare *durable* handler: POST first writes
the body to TOPIC with acks=all and idempotence (plain aiokafka, the same linger as our
producer) and answers once the record is acknowledged: durability without our own work.

    python -m bench.tools.bare --port 9000 --create create.json --get get.json \
        [--kafka 127.0.0.1:9092 --topic bench.bare]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

PRODUCER = web.AppKey("producer", AIOKafkaProducer)


def build(create_body: bytes, get_body: bytes, kafka: tuple[str, str] | None = None
          ) -> web.Application:
    """The bare app answering the given bodies; with `kafka` (bootstrap, topic), durable."""
    forever: asyncio.Future[None] = asyncio.get_event_loop().create_future()

    async def create(request: web.Request) -> web.Response:
        body = await request.read()
        orjson.loads(body)
        if kafka is not None:
            await request.app[PRODUCER].send_and_wait(kafka[1], body)
        return web.Response(status=201, body=create_body, content_type="application/json")

    async def get(request: web.Request) -> web.Response:
        if "wait" in request.headers.get("Prefer", ""):
            await asyncio.shield(forever)
        return web.Response(body=get_body, content_type="application/json")

    app = web.Application()
    if kafka is not None:
        app.cleanup_ctx.append(_producer(kafka[0]))
    app.router.add_post("/v1/predictions", create)
    app.router.add_get("/v1/predictions/{prediction_id}", get)
    return app


def _producer(bootstrap: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def producer(app: web.Application) -> AsyncIterator[None]:
        app[PRODUCER] = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                         enable_idempotence=True, linger_ms=1)
        await app[PRODUCER].start()
        try:
            yield
        finally:
            await app[PRODUCER].stop()

    return producer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--create", type=Path, required=True, help="file with the 201 body")
    parser.add_argument("--get", type=Path, required=True, help="file with the GET body")
    parser.add_argument("--kafka", help="bootstrap servers: write each create body to Kafka")
    parser.add_argument("--topic", help="with --kafka: the topic (it must exist)")
    args = parser.parse_args()
    if bool(args.kafka) != bool(args.topic):
        parser.error("--kafka and --topic go together")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = build(args.create.read_bytes(), args.get.read_bytes(),
                (args.kafka, args.topic) if args.kafka else None)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None, loop=loop)


if __name__ == "__main__":
    main()
