"""What a command module hands the parser: a handler per subcommand it registers."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from inferhook.settings import Settings

if TYPE_CHECKING:  # the client package is imported when a command runs: services go without it
    from inferhook_client import Client

Handler: TypeAlias = Callable[[Settings, argparse.Namespace], None]
"""Runs one subcommand with the settings and its parsed arguments."""
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""Where a command module adds its subcommands."""


def client_command(run: Callable[[Client, argparse.Namespace], int]) -> Handler:
    """A command talking to the API: client errors are one line on stderr and exit 1.

    `run` returns the exit code; the API is found at INFERHOOK_URL with INFERHOOK_API_KEY.
    """

    def command(settings: Settings, args: argparse.Namespace) -> None:
        from inferhook_client import Client, InferhookError

        logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            with Client(timeout=args.timeout) as client:
                code = run(client, args)
        except (InferhookError, ValueError) as exc:
            print(f"inferhook {args.command}: {exc}", file=sys.stderr)
            sys.exit(1)
        if code:
            sys.exit(code)

    return command
