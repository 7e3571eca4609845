"""`inferhook webhooks listen`: a local receiver that verifies and prints deliveries."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from cli.command import Handler, Subparsers, client_command

if TYPE_CHECKING:  # imported when the command runs: services go without the client package
    from inferhook_client import Client, WebhookVerificationError
    from inferhook_client.webhooks import Delivery

OUTPUT_PREVIEW = 300
"""Characters of a delivery's output shown on its line."""


def describe(delivery: Delivery) -> str:
    """One line per verified delivery: when, message id, prediction, status, output preview."""
    p = delivery.prediction
    line = (f"{datetime.now(UTC):%H:%M:%S} verified {delivery.webhook_id} {p.id} {p.model} "
            f"{p.status}")
    if p.error is not None:
        line += f" error={p.error.reason}"
    if p.output is not None:
        line += f" output={json.dumps(p.output)[:OUTPUT_PREVIEW]}"
    return line


def listen(client: Client, args: argparse.Namespace) -> int:
    """Fetch the account's secret, then serve until Ctrl-C, printing each delivery."""
    from inferhook_client.receivers import aiohttp_handler

    keys = client.webhooks.secret()
    secrets = [keys.key] + ([keys.previous_key] if keys.previous_key else [])
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    def rejected(exc: WebhookVerificationError) -> None:
        print(f"{datetime.now(UTC):%H:%M:%S} REJECTED {exc}")

    app = web.Application()
    app.router.add_post(args.path, aiohttp_handler(secrets, lambda d: print(describe(d)),
                                                   on_rejected=rejected))
    url = f"http://{args.host}:{args.port}{args.path}"
    print(f"listening on {url} (verifying with {keys.key[:10]}…)")
    print(f'put this in your create body: "webhook": "{url}"')
    web.run_app(app, host=args.host, port=args.port, print=None, handle_signals=True)
    return 0


def commands(sub: Subparsers) -> dict[str, Handler]:
    """Register `webhooks listen`; return its handler by name."""
    p = sub.add_parser("webhooks", help="receive and verify webhooks locally")
    p.add_argument("action", choices=["listen"])
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--path", default="/hook")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")
    return {"webhooks": client_command(listen)}

