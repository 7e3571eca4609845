"""The `inferhook` command: the dev stack, infrastructure, keys, and each service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from inferhook import cli_predict, cli_webhooks
from inferhook.infra import InfraError
from inferhook.logs import setup_logging
from inferhook.settings import Settings

log = logging.getLogger("inferhook")


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` with SIGINT/SIGTERM setting `stop` (so work in flight drains)."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


def cmd_up(settings: Settings, args: argparse.Namespace) -> None:
    from inferhook.stack import up

    up(settings)


def cmd_infra(settings: Settings, args: argparse.Namespace) -> None:
    from inferhook.infra.kafka import resolve_jars
    from inferhook.stack import dev_kafka_env, infra_down, infra_status, infra_up

    if args.action == "fetch":
        print(f"Kafka jars in {resolve_jars(settings.state_dir / 'kafka-jars')}")
        return
    if args.brokers is not None and args.brokers < 1:
        raise ValueError("--brokers needs 1 or more")
    if args.action == "up":
        infra_up(settings, args.brokers)
    elif args.action == "down":
        infra_down(settings)
    for name, line in infra_status(settings).items():
        print(f"{name}: {line}")
    if args.action != "down" and (env := dev_kafka_env(settings)):
        print("services run by hand need (`inferhook up` sets them itself):")
        for key, value in env.items():
            print(f"  export {key}={value}")


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    from inferhook.db import migrate

    migrate(settings.database)
    print("database schema is up to date")


def cmd_models(settings: Settings, args: argparse.Namespace) -> None:
    from inferhook.stack import build_models

    built = build_models(settings, force=args.force)
    print(f"built: {', '.join(built) or 'nothing to build'}")


def cmd_keys(settings: Settings, args: argparse.Namespace) -> None:
    from inferhook import accounts
    from inferhook.db import create_engine

    async def main() -> None:
        engine = create_engine(settings.database)
        try:
            if args.action == "create":
                if not args.owner:
                    raise ValueError("keys create needs --owner NAME")
                key = await accounts.create_key(engine, args.owner)
                print(f"API key for {args.owner} (shown once):")
                print(key)
            elif args.action == "list":
                for info in await accounts.list_keys(engine, args.owner):
                    state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "live"
                    print(f"{info.prefix}…  {info.owner:<20} created {info.created_at:%Y-%m-%d %H:%M}  "
                          f"{state}")
            else:
                if not args.key:
                    raise ValueError("keys revoke needs the key or its prefix (see keys list)")
                info = await accounts.revoke_key(engine, args.key)
                print(f"revoked {info.prefix}… of {info.owner} (ingest forgets it within "
                      f"{settings.api.key_cache_seconds:g}s)")
        finally:
            await engine.dispose()

    asyncio.run(main())


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> None:
    from ingest.app import serve

    serve(settings)


def cmd_executor(settings: Settings, args: argparse.Namespace) -> None:
    from executors.worker import Executor, load_models
    from inferhook.catalog import load_catalog

    names = args.models or settings.executor_models
    if settings.executor.mode == "pooled":
        catalog = load_catalog(settings.models_dir)
        served = {name: entry for name, entry in catalog.items() if not names or name in names}
        executor = Executor(settings, pooled=True, catalog=served)
    else:
        executor = Executor(settings, load_models(settings, names))
    run_until_signal(executor.run)


def cmd_dispatcher(settings: Settings, args: argparse.Namespace) -> None:
    from dispatcher.service import run

    run_until_signal(lambda stop: run(settings, stop))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="inferhook", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start Kafka, Postgres, the services and models; Ctrl-C stops")
    infra = sub.add_parser("infra", help="local Kafka and Postgres")
    infra.add_argument("action", choices=["fetch", "up", "down", "status"])
    infra.add_argument("--brokers", type=int, metavar="N",
                       help="up: Kafka nodes; 3 starts a cluster on 127.0.0.1:9092,9093,9094 "
                            "with RF 3 and min.insync.replicas 2 (default: the dev Kafka "
                            "that runs, else 1)")
    sub.add_parser("migrate", help="apply database migrations")
    models = sub.add_parser("models", help="model files")
    models.add_argument("action", choices=["build"])
    models.add_argument("--force", action="store_true", help="rebuild even if present")
    keys = sub.add_parser("keys", help="API keys")
    keys.add_argument("action", choices=["create", "list", "revoke"])
    keys.add_argument("key", nargs="?", help="revoke: the key, or its prefix as `list` shows it")
    keys.add_argument("--owner", help="create: whose key; list: only this owner's keys")
    sub.add_parser("ingest", help="run the HTTP API")
    executor = sub.add_parser("executor", help="run an executor")
    executor.add_argument("models", nargs="*", help="owner/name of models to serve (default: all)")
    sub.add_parser("dispatcher", help="run the projector and webhook delivery")
    COMMANDS.update(cli_predict.add_parsers(sub))  # the API from a terminal (inferhook-client)
    COMMANDS.update(cli_webhooks.add_parsers(sub))
    return root


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], None]] = {
    "up": cmd_up, "infra": cmd_infra, "migrate": cmd_migrate, "models": cmd_models,
    "keys": cmd_keys, "ingest": cmd_ingest, "executor": cmd_executor,
    "dispatcher": cmd_dispatcher,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `inferhook` console script."""
    args = parser().parse_args(argv)
    settings = Settings()
    setup_logging(dev=settings.dev or args.command in ("up", "infra"), service=args.command)
    try:
        COMMANDS[args.command](settings, args)
    except (InfraError, ValueError) as exc:
        print(f"inferhook {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
