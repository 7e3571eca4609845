"""The benchmark result files keep the exact entry format issue 6 asks for; the pure parts
of the issue 11 benchmarks (CPU arithmetic, the hop breakdown, the capacity rounds, the
profile summary) compute what they say."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from bench import gpu_check
from bench.benchmarks import capacity, feed, first_token, speech
from bench.cpu import Window, per_unit_ms, tree_seconds
from bench.hops import ANSWER, PATH, TOTAL, Timeline, breakdown, table
from bench.profile import package, summarize
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


def test_issue_11_rows_keep_the_shape_and_their_goals(tmp_path: Path) -> None:
    results = [
        Result.measure("CPU per prediction, all five processes, at 50/s", "ms", 23.0,
                       goal=Goal(GoalKind.VALUE_MAX, 3)),
        Result.measure("create throughput vs the bare durable handler (only Kafka and "
                       "Postgres running)", "req/s", 700.0,
                       baseline=("bare durable aiohttp handler", 17_500.0),
                       goal=Goal(GoalKind.RATIO_MIN, 0.3)),
        Result.measure("pipeline capacity: highest steady rate with e2e overhead p99 ≤ 100 ms",
                       "pred/s", 1200.0, goal=Goal(GoalKind.VALUE_MIN, 1000)),
    ]
    path = tmp_path / "latest.json"
    write_json(path, {"cores": 2}, results, {}, {"command": "make bench ONLY=cpu"})
    cpu, create, capacity = json.loads(path.read_text())["results"]
    assert [list(entry) for entry in (cpu, create, capacity)] == [FIELDS] * 3
    assert (cpu["goal"], cpu["met"]) == ("≤ 3 ms", False)
    assert (create["ratio"], create["goal"], create["met"]) == (0.04, "ratio ≥ 0.3", False)
    assert (capacity["goal"], capacity["met"]) == ("≥ 1,000 pred/s", True)


def test_cpu_per_prediction_takes_off_the_idle_cost() -> None:
    window = Window(before={"ingest": 10.0, "postgres": 5.0},
                    after={"ingest": 12.0, "postgres": 5.5}, seconds=20.0)
    idle = Window(before={"ingest": 0.0, "postgres": 0.0},
                  after={"ingest": 0.5, "postgres": 1.0}, seconds=10.0).rates()
    assert idle == {"ingest": 0.05, "postgres": 0.1}
    ms = per_unit_ms(window, idle, units=1000)
    # ingest: 2 s used, 1 s of it idle cost over 20 s; postgres: 0.5 s used, 2 s idle cost
    assert ms["ingest"] == pytest.approx(1.0)
    assert ms["postgres"] == pytest.approx(-1.5)
    assert ms["all"] == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        per_unit_ms(window, idle, units=0)


BUSY_THEN_WAIT = """
import sys, time
sum(range(5_000_000))
print(time.process_time(), flush=True)
sys.stdin.read()
"""


def test_cpu_of_a_process_tree_counts_its_children_live_and_exited() -> None:
    def reaped() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    start, start_reaped = tree_seconds(os.getpid()), reaped()
    child = subprocess.Popen([sys.executable, "-c", BUSY_THEN_WAIT], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    used_so_far = float(child.stdout.readline())
    # /proc counts in clock ticks: allow 0.02 s of rounding.
    assert tree_seconds(os.getpid()) - start >= used_so_far - 0.02  # live: its own times
    child.stdin.close()
    child.wait()
    used = reaped() - start_reaped
    assert used >= used_so_far
    assert tree_seconds(os.getpid()) - start >= used - 0.02  # exited: our children's times


def timeline(start: float, **late: float | None) -> Timeline:
    """A prediction submitted at `start`, passing each point that many seconds later."""
    points: dict[str, float | None] = {
        "accepted": 0.002, "answered": 0.010, "queued": 0.008, "started": 0.020,
        "succeeded": 0.025, "emitted": 0.028, "projecting": 0.040, "projected": 0.050,
        "attempted": 0.055, "received": 0.057}
    points.update(late)
    return Timeline(submitted=start, predict_time=0.001,
                    **{k: None if v is None else start + v for k, v in points.items()})


def test_hops_add_up_to_the_whole_path() -> None:
    hops = breakdown([timeline(100.0), timeline(200.0)])
    path = [hops[hop.name].p50 for hop in PATH]
    assert path == pytest.approx([2.0, 6.0, 12.0, 5.0, 3.0, 12.0, 10.0, 5.0, 2.0])
    assert sum(p or 0.0 for p in path) == pytest.approx(hops[TOTAL.name].p50)
    assert hops[ANSWER.name].p50 == pytest.approx(8.0)
    assert hops["predict_time (inside started → succeeded)"].p50 == pytest.approx(1.0)


def test_hops_leave_out_points_not_recorded() -> None:
    hops = breakdown([timeline(0.0, projected=None), timeline(1.0)])
    assert hops["projection began → projected"].count == 1
    assert hops["outcome in Kafka → projection began"].count == 2
    assert "| request in Kafka → started | 12.0 | 12.0 | 12.0 |" in table({20.0: hops}).splitlines()


def test_capacity_rounds() -> None:
    assert capacity.rates()[:6] == [10.0, 12.0, 16.0, 20.0, 24.0, 31.0]
    assert capacity.Round(100.0, 99.0, 0, 0).passed
    assert not capacity.Round(100.0, 101.0, 0, 0).passed
    assert not capacity.Round(100.0, 20.0, 1, 0).passed  # a webhook fell behind
    assert not capacity.Round(100.0, 20.0, 0, 1).passed  # a create refused


def test_profile_summary_by_package(tmp_path: Path) -> None:
    raw = tmp_path / "spy.raw"
    raw.write_text("<module> (cli/__main__.py:1);run (asyncio/runners.py:86);"
                   "execute (sqlalchemy/engine/base.py:1400) 30\n"
                   "<module> (cli/__main__.py:1);handle (ingest/create.py:60) 10\n")
    text = summarize(raw)
    assert text.startswith("40 samples")
    by_package = text.split("self, by package:\n")[1].split("\n\n")[0].splitlines()
    assert by_package == [" 75.0%  sqlalchemy", " 25.0%  ingest"]
    assert package("<module> (busy.py:1)") == "busy"


def test_feed_wake_rows_keep_the_shape_and_the_100_ms_goal(tmp_path: Path) -> None:
    fast, slow = [0.010] * 90 + [0.300] * 10, [0.005] * 100
    path = tmp_path / "latest.json"
    write_json(path, {"cores": 2}, feed.figures(fast, slow), {}, {"command": "make bench"})
    p50, p99 = json.loads(path.read_text())["results"]
    assert [list(entry) for entry in (p50, p99)] == [FIELDS] * 2
    assert p50["name"] == "feed long-poll wake p50 (event projected → waiter answered)"
    assert (p50["value"], p50["baseline_value"], p50["ratio"]) == (10.0, 5.0, 2.0)
    assert (p50["goal"], p50["met"]) == ("≤ 100 ms", True)
    assert p99["baseline_name"] == "Prefer: wait on the prediction, same event"
    assert p99["value"] > 100 and p99["met"] is False
    missing = feed.figures([], [])
    assert [(r.value, r.met) for r in missing] == [(None, None)] * 2


def test_async_task_rows_keep_the_shape(tmp_path: Path) -> None:
    results = [
        speech.row("transcription", speech.TRANSCRIBE, served=0.30, raw=0.20),
        speech.row("speech", speech.SPEAK, served=0.12, raw=0.10),
        *first_token.rows(served=[0.2, 0.1, 0.3, 0.4], raw=[0.05, 0.05, 0.05, 0.1]),
    ]
    path = tmp_path / "latest.json"
    write_json(path, {"cores": 2}, results, {}, {"command": "make bench ONLY=speech,first_token"})
    transcription, speak, p50, p99 = json.loads(path.read_text())["results"]
    assert [list(entry) for entry in (transcription, speak, p50, p99)] == [FIELDS] * 4
    assert transcription["name"] == ("real-time factor served vs raw: transcription "
                                     "(inferhook/whisper-tiny-en)")
    assert (transcription["unit"], transcription["baseline_name"]) == (
        "s per s of audio", "raw onnxruntime, same handler")
    assert (transcription["ratio"], speak["ratio"]) == (1.5, 1.2)
    assert (p50["unit"], p50["value"], p50["baseline_value"]) == ("ms", 250.0, 50.0)
    assert p99["name"] == "chat first-token latency p99 through the stack vs raw onnxruntime"
    assert p99["value"] == pytest.approx(397.0) and p99["baseline_value"] == pytest.approx(98.5)


def test_served_real_time_factor_is_the_median_per_second_of_audio() -> None:
    runs = [speech.Served(seconds=2.0, audio_seconds=10.0, predict_time=1.0),
            speech.Served(seconds=3.0, audio_seconds=5.0, predict_time=None),
            speech.Served(seconds=1.0, audio_seconds=4.0, predict_time=0.5)]
    assert speech.rtf(runs) == pytest.approx(0.25)


def test_gpu_check_markdown_and_cuda_against_cpu() -> None:
    rows = [gpu_check.Row("inferhook/digits", gpu_check.CUDA, gpu_check.CUDA, load_ms=400.0,
                          first_run_ms=100.0, p50_ms=0.5, p99_ms=1.0, runs=50, batch=64,
                          per_second=40_000.0),
            gpu_check.Row("inferhook/digits", gpu_check.CPU, gpu_check.CPU, load_ms=50.0,
                          first_run_ms=50.0, p50_ms=1.0, p99_ms=2.0, runs=50, batch=64,
                          per_second=10_000.0),
            gpu_check.Row("inferhook/vad", gpu_check.CUDA, gpu_check.CPU, load_ms=10.0,
                          first_run_ms=5.0, p50_ms=1.0, p99_ms=1.0, runs=3),
            gpu_check.Row("inferhook/piper-joe", gpu_check.CPU, error="espeak-ng not found")]
    assert gpu_check.speedups(rows) == {
        "inferhook/digits": {"cold_start": 0.2, "p50": 2.0, "per_second": 4.0}}
    document = {"machine": {"cores": 16, "cpu": "x86_64", "gpu": "NVIDIA H200", "python": "3.12",
                            "onnxruntime": "1.31.1", "cuda": "CUDA provider"},
                "run": {"finished_at": "now", "command": "make gpu-check", "duration_s": 300.0,
                        "seconds": 4.0},
                "models": [{**asdict(r), "cold_start_ms": r.cold_start_ms} for r in rows]}
    lines = gpu_check.markdown(document).splitlines()
    assert "| inferhook/digits | CUDA | 500 (400 + 100) | 0.5 | 1 | 50 | 40,000 (64) |  |" in lines
    assert "| inferhook/vad | CPU | 15 (10 + 5) | 1 | 1 | 3 | — | fell back to CPU |" in lines
    assert "| inferhook/piper-joe | CPU | — | — | — | 0 | — | espeak-ng not found |" in lines
    assert "| inferhook/digits | 0.2 | 2 | 4 |" in lines


def test_gpu_check_measures_a_model_on_cpu() -> None:
    row = gpu_check.measure("inferhook/digits", gpu_check.CPU, seconds=0.2)
    assert (row.provider, row.error, row.batch) == (gpu_check.CPU, None, 64)
    assert row.runs >= gpu_check.MIN_RUNS
    assert row.load_ms and row.first_run_ms and row.p50_ms and row.p99_ms and row.per_second
    assert row.p50_ms <= row.p99_ms


def test_gpu_check_writes_its_files_and_skips_what_the_budget_leaves_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gpu_check.STARTED_ENV, str(time.time() - 60))  # a minute already spent
    gpu_check.main(["--only", "inferhook/digits", "--budget", "30", "--out", str(tmp_path)])
    document = json.loads((tmp_path / "gpu.json").read_text())
    usable, why = gpu_check.cuda_status()  # here: no NVIDIA driver, CPU alone
    assert document["machine"]["cuda"] == why
    providers = [gpu_check.CUDA, gpu_check.CPU] if usable else [gpu_check.CPU]
    assert [(r["model"], r["requested"], r["error"]) for r in document["models"]] == [
        ("inferhook/digits", provider, "skipped: out of time") for provider in providers]
    assert "| inferhook/digits | CPU | — |" in (tmp_path / "gpu.md").read_text()
