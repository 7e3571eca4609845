"""API keys: the CLI, GET /v1/account, revocation, and which routes need a key."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import pytest

from inferhook.settings import ApiSettings, Settings
from ingest.openapi import documented_routes
from tests.support import Stack

PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/metrics",
          "/console", "/console/app.js", "/console/endpoints.js", "/console/console.css"}


async def cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERHOOK_")}
    env["INFERHOOK_DATABASE_URL"] = settings.database.url.get_secret_value()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "keys", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def account(stack: Stack, key: str) -> tuple[int, dict[str, str]]:
    async with stack.http.get(f"{stack.base_url}/v1/account", headers=stack.auth(key)) as response:
        return response.status, await response.json()


@pytest.fixture
def no_key_cache(settings: Settings) -> Settings:
    return settings.model_copy(update={"api": ApiSettings(key_cache_seconds=0)})


async def test_keys_cli_create_list_revoke(no_key_cache: Settings, clean_db: None) -> None:
    async with Stack.running(no_key_cache, executor=False, dispatcher=False) as stack:
        code, out = await cli(stack.settings, "create", "--owner", "carol")
        assert code == 0, out
        key = out.strip().splitlines()[-1]
        assert key.startswith("ih_")

        status, who = await account(stack, key)
        assert status == 200
        assert who["owner"] == "carol"
        assert key.startswith(who["key_prefix"])

        code, out = await cli(stack.settings, "list", "--owner", "carol")
        assert code == 0
        assert re.search(rf"{re.escape(who['key_prefix'])}.*carol.*live", out), out
        assert key not in out

        code, out = await cli(stack.settings, "revoke", who["key_prefix"])
        assert code == 0, out
        assert (await account(stack, key))[0] == 401
        code, out = await cli(stack.settings, "list", "--owner", "carol")
        assert "revoked" in out

        code, out = await cli(stack.settings, "revoke", who["key_prefix"])
        assert code == 1
        assert "no live keys" in out


async def test_keys_are_stored_hashed(stack: Stack) -> None:
    from sqlalchemy import text

    from inferhook.db import create_engine

    engine = create_engine(stack.settings.database)
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(text("SELECT key_hash, prefix FROM api_keys"))).all()
    finally:
        await engine.dispose()
    assert stored
    assert all(stack.key not in (row.key_hash, row.prefix) for row in stored)


async def test_account_tells_whose_key(stack: Stack) -> None:
    status, who = await account(stack, stack.key)
    assert status == 200
    assert who["owner"] == "alice"


async def test_every_route_but_public_ones_needs_a_key(stack: Stack) -> None:
    assert stack.app is not None
    checked = 0
    for method, path, _ in documented_routes(stack.app):
        url = stack.base_url + re.sub(r"\{[^}]+\}", "x", path)
        async with stack.http.request(method, url) as response:
            if path in PUBLIC:
                assert response.status != 401, path
            else:
                assert response.status == 401, f"{method} {path} answered {response.status}"
                assert response.content_type == "application/problem+json"
                checked += 1
    assert checked >= 8
