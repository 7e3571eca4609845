"""The benchmark result files keep the exact entry format issue 6 asks for."""

from __future__ import annotations

import json
from pathlib import Path

from bench.results import Goal, GoalKind, Result, markdown_table, write_json

FIELDS = ["name", "unit", "value", "baseline_name", "baseline_value", "ratio", "goal", "met"]


def test_entries_have_exactly_the_issue_fields(tmp_path: Path) -> None:
    results = [
        Result.measure("create throughput", "req/s", 600.0, baseline=("bare", 1000.0),
                       goal=Goal(GoalKind.RATIO_MIN, 0.6)),
        Result.measure("e2e p99", "ms", 75.0, goal=Goal(GoalKind.VALUE_MAX, 60)),
        Result.not_measured("minilm batching", "pred/s", baseline_name="batch 1"),
    ]
    path = tmp_path / "latest.json"
    write_json(path, {"cores": 2}, results, {"e2e": "note"}, {"command": "make bench"})
    document = json.loads(path.read_text())
    assert document["machine"] == {"cores": 2}
    assert [list(entry) for entry in document["results"]] == [FIELDS] * 3
    first, second, third = document["results"]
    assert (first["ratio"], first["goal"], first["met"]) == (0.6, "ratio ≥ 0.6", True)
    assert (second["ratio"], second["goal"], second["met"]) == (None, "≤ 60 ms", False)
    assert (third["value"], third["met"]) == (None, None)


def test_markdown_table_has_a_row_per_figure() -> None:
    table = markdown_table([Result.measure("get p99", "ms", 5.0, baseline=("bare", 2.5))])
    assert table.splitlines()[2] == "| get p99 | 5 ms | 2.5 (bare) | 2 | — | — |"
