"""The JSON a run leaves behind, and the line it prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from inferhook.settings import REPO_ROOT


def write(report: dict[str, Any], results_dir: str) -> Path:
    """Write `<scenario>-<timestamp>.json` and `latest-<scenario>.json`; return the first."""
    folder = REPO_ROOT / results_dir
    folder.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    path = folder / f"{report['scenario']}-{report['timestamp']}.json"
    path.write_bytes(data)
    (folder / f"latest-{report['scenario']}.json").write_bytes(data)
    return path


def headline(report: dict[str, Any]) -> str:
    """One line: the verdict and the figures that matter."""
    lost = report.get("lost", {})
    conflicts = report.get("conflicting_outcomes", {})
    recoveries = [f"{f['label']} {f['recovered_after']}s" if f.get("recovered_after") is not None
                  else f"{f['label']} NOT RECOVERED" for f in report.get("faults", [])]
    died = {name: s["died_on_its_own"] for name, s in report.get("services", {}).items()
            if s.get("died_on_its_own")}
    parts = [
        "OK" if report.get("ok") else "FAIL",
        f"{report['scenario']} seed {report['seed']}",
        f"accepted {report.get('accepted', 0)} of {report.get('sent', '?')}",
        f"lost {lost.get('total', '?')} (not terminal {lost.get('not_terminal', '?')}, "
        f"no verified webhook {lost.get('no_verified_terminal_webhook', '?')})",
        f"conflicts {conflicts.get('total', '?')}",
        f"duplicates {report.get('duplicate_deliveries', {}).get('total', '?')}",
        f"503s {report.get('responses_503', '?')}",
        f"died on their own {died or 'none'}",
        "recovery: " + ", ".join(recoveries),
    ]
    if report.get("error"):
        parts.append(f"error: {report['error'].splitlines()[0]}")
    return " | ".join(parts)
