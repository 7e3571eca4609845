"""The OpenAPI document covers every route, /docs works offline, and schemathesis agrees."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest.openapi import documented_routes, undocumented
from tests.support import Stack

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")


async def spec_of(stack: Stack) -> dict[str, Any]:
    async with stack.http.get(f"{stack.base_url}/openapi.json") as response:
        assert response.status == 200
        spec: dict[str, Any] = await response.json()
        return spec


async def test_every_route_is_documented(stack: Stack) -> None:
    assert stack.app is not None
    assert undocumented(stack.app) == []
    spec = await spec_of(stack)
    assert spec["openapi"].startswith("3.1")
    routes = {(method.lower(), path) for method, path, _ in documented_routes(stack.app)}
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert routes == documented
    assert len(routes) >= 13


async def test_documented_models_are_the_handlers_models(stack: Stack) -> None:
    spec = await spec_of(stack)
    create = spec["paths"]["/v1/predictions"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictionCreate")
    assert {"201", "200", "409", "422", "429"} <= set(create["responses"])
    headers = {p["name"] for p in create["parameters"] if p["in"] == "header"}
    assert headers == {"Prefer", "Cancel-After", "Result-TTL", "Idempotency-Key"}
    listing = spec["paths"]["/v1/predictions"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "limit", "cursor", "status", "model", "created_after", "created_before"}
    assert spec["paths"]["/healthz"]["get"]["security"] == []


async def test_docs_page_is_self_contained(stack: Stack) -> None:
    async with stack.http.get(f"{stack.base_url}/docs") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
    assert "/openapi.json" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "docs must not load from a CDN"
    assert "<script src" not in page


async def schemathesis(stack: Stack, tmp_path: Path, *options: str, seconds: float = 240) -> None:
    """Run schemathesis on the stack's API (with `options`); fail with its report."""
    tool = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert tool, "schemathesis is a dev dependency"
    process = await asyncio.create_subprocess_exec(
        tool, "run", f"{stack.base_url}/openapi.json", "--header",
        f"Authorization: Bearer {stack.key}", "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing,stateful", "--workers", "1", "--seed", "1",
        "--request-timeout", "90", "--generation-database", "none", "--no-color",
        "--suppress-health-check", "all", *options,
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=seconds)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-20000:]


async def test_schemathesis_finds_no_server_error_or_schema_violation(
        stack: Stack, tmp_path: Path) -> None:
    await schemathesis(stack, tmp_path, "--max-examples", "25",
                       "--exclude-path-regex", "^/v1/async/|^/v1/events$")


async def test_schemathesis_on_the_event_feed(stack: Stack, tmp_path: Path) -> None:
    """/v1/events on its own, its long poll cut to a second (a generated `Prefer: wait` would
    hold an empty page for up to a minute); no stateful phase (it links to nothing)."""
    await schemathesis(stack, tmp_path, "--max-examples", "25", "--include-path-regex",
                       "^/v1/events$", "--header", "Prefer: wait=1",
                       "--phases", "examples,coverage,fuzzing", seconds=180)


@pytest.mark.timeout(300)
async def test_schemathesis_on_the_async_task_routes(stack: Stack, tmp_path: Path) -> None:
    """The 22 /v1/async routes on a budget of their own (their examples run real models)."""
    await schemathesis(stack, tmp_path, "--max-examples", "8", "--include-path-regex", "^/v1/async/",
                       seconds=270)
