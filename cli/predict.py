"""`inferhook predict` and `inferhook predictions list|get|cancel`: the API from a terminal.

The API is found at INFERHOOK_URL (default http://127.0.0.1:8080) with the key in
INFERHOOK_API_KEY; both go through the inferhook-client package.
"""

from __future__ import annotations

import argparse
import json
from itertools import islice
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from cli.command import Handler, Subparsers, client_command
from cli.inputs import parse_inputs

if TYPE_CHECKING:  # the client package is imported when a command runs: services go without it
    from inferhook_client import Client, Prediction


def _print_json(prediction: Prediction) -> None:
    print(prediction.model_dump_json(indent=2))


def predict(client: Client, args: argparse.Namespace) -> int:
    """Create a prediction; with --wait follow it live to the end and show the result."""
    from cli.progress import show_result

    model: str = args.model
    given = parse_inputs(args.input or [])
    if not given:
        example = client.models.get(model).example_input
        if example is None:
            raise ValueError(f"{model} has no example input; pass -i key=value")
        given = example
    prediction = client.predictions.create(model, given, webhook=args.webhook)
    if not args.wait:
        if args.json:
            _print_json(prediction)
        else:
            print(f"{prediction.id} {prediction.status} (follow: inferhook predictions get "
                  f"{prediction.id}, or predict --wait)")
        return 0
    if args.json:
        prediction = client.predictions.wait(prediction.id, timeout=args.wait_timeout)
        _print_json(prediction)
    else:
        console = Console()
        prediction = follow(client, prediction, args.wait_timeout, console)
        console.print()
        show_result(console, prediction)
    return 0 if prediction.status == "succeeded" else 1


def follow(client: Client, prediction: Prediction, timeout: float, console: Console) -> Prediction:
    """The live display while the prediction runs (its SSE stream), then its final state."""
    from inferhook_client import InferhookError

    from cli.progress import ProgressState

    state = ProgressState(prediction.id, prediction.model)
    with Live(state.render(), console=console, refresh_per_second=8) as live:
        try:
            for event in client.predictions.stream(prediction.id):
                state.apply(event)
                live.update(state.render())
        except InferhookError:  # the stream gave up: fall back to Prefer: wait
            pass
        final = client.predictions.wait(prediction.id, timeout=timeout)
        state.finish(final)
        live.update(state.render())
    return final


def predictions(client: Client, args: argparse.Namespace) -> int:
    """`predictions list|get|cancel`."""
    from cli.progress import show_result

    if args.action == "list":
        found = list(islice(client.predictions.list(status=args.status, model=args.model,
                                                    limit=min(args.limit, 100)), args.limit))
        if args.json:
            print(json.dumps([p.model_dump(mode="json") for p in found], indent=2))
        else:
            Console().print(_table(found))
        return 0
    if not args.id:
        raise ValueError(f"predictions {args.action} needs a prediction id")
    if args.action == "get":
        prediction = client.predictions.get(args.id)
    else:
        prediction = client.predictions.cancel(args.id)
    if args.json:
        _print_json(prediction)
    else:
        show_result(Console(), prediction)
    return 0


def _table(found: list[Prediction]) -> Table:
    table = Table("id", "model", "status", "created", "total")
    for p in found:
        total = p.metrics.get("total_time")
        table.add_row(p.id, p.model, str(p.status), f"{p.created_at:%Y-%m-%d %H:%M:%S}",
                      "—" if total is None else f"{total:.3f} s")
    return table


def commands(sub: Subparsers) -> dict[str, Handler]:
    """Register `predict` and `predictions`; return their handlers by name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the prediction as JSON")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")
    p = sub.add_parser("predict", parents=[common], help="make a prediction (INFERHOOK_URL, "
                                                          "INFERHOOK_API_KEY)")
    p.add_argument("model", help="owner/name")
    p.add_argument("-i", "--input", action="append", metavar="KEY=VALUE",
                   help="an input field (JSON or text; @file sends the file as a data: URI); "
                        "none: the model's example input")
    p.add_argument("--wait", action="store_true", help="follow it live until done, show the output")
    p.add_argument("--wait-timeout", type=float, default=600.0, help="give up waiting after this")
    p.add_argument("--webhook", help="URL that receives its signed webhooks")
    ps = sub.add_parser("predictions", parents=[common], help="list, show or cancel predictions")
    ps.add_argument("action", choices=["list", "get", "cancel"])
    ps.add_argument("id", nargs="?", help="get/cancel: the prediction id")
    ps.add_argument("--status", help="list: only this status")
    ps.add_argument("--model", help="list: only this model (owner/name)")
    ps.add_argument("--limit", type=int, default=20, help="list: at most this many")
    return {"predict": client_command(predict), "predictions": client_command(predictions)}
