"""The fault test, short: a real private stack under load while each part is killed once.

`make chaos` runs the full version (chaos/); here 45 s at 20 creates/s with one SIGKILL of
ingest, executor and dispatcher, one broker kill and one PostgreSQL immediate shutdown, on
servers of its own (not the session fixtures). Deselect with `-m 'not chaos'`. The pure parts
(the fault schedule, the ledger's rule) are tested without servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.config import RunConfig, default_faults, parse_faults
from chaos.faults import schedule
from chaos.ledger import Outcome, verdict
from chaos.receiver import Delivery, fails
from chaos.run import run_once

REPORT_FIELDS = ("scenario", "seed", "duration", "rate", "accepted", "lost", "duplicate_deliveries",
                 "conflicting_outcomes", "responses_503", "faults", "services", "findings")


def delivery(prediction_id: str, status: str, webhook_id: str, *, answered: int = 204,
             output: str = "o1", attempt: int = 1) -> Delivery:
    return Delivery(prediction_id=prediction_id, status=status, webhook_id=webhook_id, attempt=attempt,
                    answered=answered, output=output, at=0.0)


def test_schedule_is_seeded_spread_and_hits_every_broker() -> None:
    counts = default_faults("cluster")
    faults = schedule(counts, duration=100, window=(0.1, 0.8), seed=3, brokers=3)
    assert faults == schedule(counts, duration=100, window=(0.1, 0.8), seed=3, brokers=3)
    assert faults != schedule(counts, duration=100, window=(0.1, 0.8), seed=4, brokers=3)
    assert len(faults) == 12
    assert [f.at for f in faults] == sorted(f.at for f in faults)
    assert faults[0].at == 10 and faults[-1].at == 80
    assert sorted(f.target for f in faults if f.kind == "broker") == [0, 1, 2]
    assert parse_faults("executor=1,broker=0", "single")["executor"] == 1


def test_receiver_failures_are_deterministic_and_about_one_in_n() -> None:
    decisions = [fails(1, f"msg_{i}", 1, 10) for i in range(5000)]
    assert decisions == [fails(1, f"msg_{i}", 1, 10) for i in range(5000)]
    assert 350 < sum(decisions) < 650
    assert not any(fails(1, f"msg_{i}", 1, 0) for i in range(100))


def test_ledger_passes_a_clean_history_with_retries_and_duplicates() -> None:
    gets: dict[str, Outcome | str] = {"p1": Outcome("succeeded", "o1")}
    history = [delivery("p1", "started", "w1"),
               delivery("p1", "succeeded", "w2", answered=500),
               delivery("p1", "succeeded", "w2", attempt=2),
               delivery("p1", "succeeded", "w2", attempt=3)]  # at-least-once: a duplicate
    ledger = verdict(["p1"], gets, history)
    assert (ledger.lost, ledger.conflicts, ledger.duplicate_deliveries) == (0, 0, 1)


def test_ledger_finds_every_kind_of_loss_and_conflict() -> None:
    gets: dict[str, Outcome | str] = {
        "stuck": "pending", "unpushed": Outcome("succeeded", "o1"),
        "twice": Outcome("succeeded", "o1"), "reused": Outcome("failed", "o1"),
        "two-ids": Outcome("succeeded", "o1")}
    history = [delivery("unpushed", "succeeded", "w1", answered=500),
               delivery("twice", "succeeded", "w2"), delivery("twice", "failed", "w3"),
               delivery("reused", "started", "w4"), delivery("reused", "failed", "w4"),
               delivery("two-ids", "succeeded", "w5"), delivery("two-ids", "succeeded", "w6")]
    ledger = verdict(["stuck", "unpushed", "twice", "reused", "two-ids"], gets, history)
    assert ledger.not_terminal == [{"id": "stuck", "status": "pending"}]
    assert ledger.no_verified_terminal_webhook == ["stuck", "unpushed"]
    assert ledger.lost == 2
    assert [c["id"] for c in ledger.conflicting_outcomes] == ["twice"]
    assert [c["webhook_id"] for c in ledger.webhook_id_conflicts] == ["w4"]
    assert [c["id"] for c in ledger.several_terminal_webhook_ids] == ["twice", "two-ids"]


@pytest.mark.chaos
@pytest.mark.timeout(420)
async def test_short_chaos_run_loses_nothing(tmp_path: Path) -> None:
    config = RunConfig(scenario="single", duration=45, rate=20, seed=1, drain=90,
                       faults={"executor": 1, "dispatcher": 1, "ingest": 1, "broker": 1, "postgres": 1},
                       results_dir=str(tmp_path))
    report = await run_once(config, name="stack", state=tmp_path)  # not .state/: sessions may overlap
    assert report["error"] is None, report.get("traceback")
    assert all(field in report for field in REPORT_FIELDS)
    assert (tmp_path / "latest-single.json").exists()
    assert report["accepted"] > 0.9 * config.duration * config.rate
    assert [f["kind"] for f in report["faults"]].count("broker") == 1 and len(report["faults"]) == 5
    assert report["lost"]["total"] == 0, report["lost"]
    assert report["conflicting_outcomes"]["total"] == 0, report["conflicting_outcomes"]
    assert report["deliveries"]["unverified"] == 0
