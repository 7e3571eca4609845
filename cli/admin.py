"""`inferhook migrate`, `inferhook models build` and `inferhook keys`: one-off operations."""

from __future__ import annotations

import argparse
import asyncio

from cli.command import Handler, Subparsers
from inferhook.settings import Settings


def migrate(settings: Settings, args: argparse.Namespace) -> None:
    from inferhook.db import migrate

    migrate(settings.database)
    print("database schema is up to date")


def models(settings: Settings, args: argparse.Namespace) -> None:
    from cli.stack import build_models

    built = build_models(settings, force=args.force)
    print(f"built: {', '.join(built) or 'nothing to build'}")


def keys(settings: Settings, args: argparse.Namespace) -> None:
    from inferhook.db import create_engine
    from store import accounts

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


def commands(sub: Subparsers) -> dict[str, Handler]:
    """Register `migrate`, `models` and `keys`; return their handlers by name."""
    sub.add_parser("migrate", help="apply database migrations")
    p = sub.add_parser("models", help="model files")
    p.add_argument("action", choices=["build"])
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    p = sub.add_parser("keys", help="API keys")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("key", nargs="?", help="revoke: the key, or its prefix as `list` shows it")
    p.add_argument("--owner", help="create: whose key; list: only this owner's keys")
    return {"migrate": migrate, "models": models, "keys": keys}
