"""Facts about the machine and the software under test, for the top of latest.json."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

import aiohttp
import onnxruntime
import psutil

from executors.runtime import providers
from inferhook.settings import REPO_ROOT


def kafka_version() -> str:
    """The Kafka version, from the broker jar's name in the jar cache."""
    jars = REPO_ROOT / ".state" / "kafka-jars"
    for jar in sorted(jars.glob("kafka_*.jar")):
        return jar.stem.split("-", 1)[1]
    return "unknown"


def git_commit() -> str:
    """The commit the tree is at, with `+changes` when the work tree differs (read only)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+changes" if dirty else head


def facts(postgres_version: str, durable_postgres: bool) -> dict[str, Any]:
    """Cores, memory, versions and the execution provider."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "kafka": kafka_version(),
        "postgres": postgres_version,
        "postgres_fsync": durable_postgres,
        "onnxruntime": onnxruntime.__version__,
        "execution_provider": providers()[0],
        "aiohttp": aiohttp.__version__,
        "commit": git_commit(),
    }
