"""Deadlines (Cancel-After), the model's maximum run time, and result retention, via HTTP."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferhook.settings import Settings
from tests.support import Stack, example_input

SPIN = "inferhook/spin"


async def wait_for(stack: Stack, prediction: dict[str, Any], seconds: int = 30) -> dict[str, Any]:
    async with stack.http.get(prediction["urls"]["get"],
                              headers={**stack.auth(), "Prefer": f"wait={seconds}"}) as response:
        body: dict[str, Any] = await response.json()
        return body


async def spin(stack: Stack, milliseconds: int, **headers: str) -> dict[str, Any]:
    response = await stack.create({"model": SPIN, "input": {"milliseconds": milliseconds}},
                                  headers=headers)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


@pytest.fixture
def quick_sweeps(settings: Settings) -> Settings:
    webhook = settings.webhook.model_copy(update={"reaper_interval": 0.2, "retention_interval": 0.2})
    return settings.model_copy(update={"webhook": webhook})


@pytest.fixture
async def quick_stack(quick_sweeps: Settings, clean_db: None) -> AsyncIterator[Stack]:
    async with Stack.running(quick_sweeps) as running:
        yield running


async def test_pending_prediction_past_its_deadline_is_canceled(quick_sweeps: Settings,
                                                                clean_db: None) -> None:
    async with Stack.running(quick_sweeps, executor=False) as stack:
        created = await spin(stack, 1, **{"Cancel-After": "1s"})
        done = await wait_for(stack, created)
    assert done["status"] == "canceled"
    assert done["error"]["reason"] == "deadline"
    assert done["started_at"] is None


async def test_running_prediction_past_its_deadline_is_canceled(quick_stack: Stack) -> None:
    created = await spin(quick_stack, 20_000, **{"Cancel-After": "2s"})
    done = await wait_for(quick_stack, created)
    assert done["status"] == "canceled", done
    assert done["error"]["reason"] == "deadline"
    assert done["started_at"] is not None


@pytest.fixture
def short_runs(quick_sweeps: Settings, tmp_path: Path) -> Settings:
    """The models folder with spin allowed one second per run."""
    models = tmp_path / "models"
    shutil.copytree(quick_sweeps.models_dir / "spin", models / "spin")
    manifest = models / "spin" / "manifest.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["max_run_seconds"] = 1
    manifest.write_text(yaml.safe_dump(data))
    return quick_sweeps.model_copy(update={"models_dir": models})


async def test_run_longer_than_the_model_allows_fails_timed_out(short_runs: Settings,
                                                                clean_db: None) -> None:
    async with Stack.running(short_runs) as stack:
        created = await spin(stack, 20_000)
        done = await wait_for(stack, created)
    assert done["status"] == "failed", done
    assert done["error"]["reason"] == "timed_out"


async def test_results_are_removed_after_their_ttl(quick_stack: Stack) -> None:
    stack = quick_stack
    body = {"model": "inferhook/digits", "input": example_input(stack.settings, "inferhook/digits")}
    created = await (await stack.create(body, headers={"Result-TTL": "1"})).json()
    done = await wait_for(stack, created)
    assert done["status"] == "succeeded" and done["output"] is not None
    for _ in range(300):  # the sweep runs every 0.2 s here
        current = await (await stack.get(created["id"])).json()
        if current["data_removed"]:
            break
        await asyncio.sleep(0.1)
    assert current["input"] is None and current["output"] is None and current["logs"] == ""
    assert current["status"] == "succeeded" and current["metrics"] == done["metrics"]
    async with stack.http.get(created["urls"]["events"], headers=stack.auth()) as response:
        for event in (await response.json())["results"]:
            assert event["data"].get("input") is None and event["data"].get("output") is None
