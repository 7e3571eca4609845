"""The `inferhook` command: the dev stack, infrastructure, keys, each service, and the API."""

from __future__ import annotations

import argparse
import sys

from cli import admin, dev, predict, services, webhooks
from cli.command import Handler
from cli.infra import InfraError
from inferhook.logs import setup_logging
from inferhook.settings import Settings

COMMAND_MODULES = (dev, admin, services, predict, webhooks)
"""Each registers its subcommands, in this order in `--help`."""


def parser() -> argparse.ArgumentParser:
    """The whole command line, every subcommand registered."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    root = argparse.ArgumentParser(prog="inferhook", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    handlers: dict[str, Handler] = {}
    for module in COMMAND_MODULES:
        handlers.update(module.commands(sub))
    return root, handlers


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `inferhook` console script."""
    root, handlers = _build()
    args = root.parse_args(argv)
    settings = Settings()
    setup_logging(dev=settings.dev or args.command in ("up", "infra"), service=args.command)
    try:
        handlers[args.command](settings, args)
    except (InfraError, ValueError) as exc:
        print(f"inferhook {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
