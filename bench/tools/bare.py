"""The baseline server: a bare aiohttp app answering the same JSON as ingest, doing no work.

POST /v1/predictions reads and parses the body and answers the canned create response;
GET /v1/predictions/{id} answers the canned prediction, or, with `Prefer: wait`, holds
the connection until the client goes away (the floor for bytes per waiting client).

    python -m bench.tools.bare --port 9000 --create create.json --get get.json
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import orjson
from aiohttp import web


def build(create_body: bytes, get_body: bytes) -> web.Application:
    """The bare app answering the given bodies."""
    forever: asyncio.Future[None] = asyncio.get_event_loop().create_future()

    async def create(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        return web.Response(status=201, body=create_body, content_type="application/json")

    async def get(request: web.Request) -> web.Response:
        if "wait" in request.headers.get("Prefer", ""):
            await asyncio.shield(forever)
        return web.Response(body=get_body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/predictions", create)
    app.router.add_get("/v1/predictions/{prediction_id}", get)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--create", type=Path, required=True, help="file with the 201 body")
    parser.add_argument("--get", type=Path, required=True, help="file with the GET body")
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = build(args.create.read_bytes(), args.get.read_bytes())
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None, loop=loop)


if __name__ == "__main__":
    main()
