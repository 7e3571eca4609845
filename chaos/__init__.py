"""`make chaos`: our own fault test of "nothing accepted is lost" (DESIGN.md, invariant 1).

One run starts a private stack under `.state/chaos/<run>/` (wiped at start): Kafka (one
broker, or a 3-broker KRaft cluster with replication factor 3), PostgreSQL with fsync on,
and ingest, one executor (inferhook/digits and inferhook/spin) and one dispatcher as
subprocesses. It sends creates at a fixed arrival rate (open loop), each with a webhook
to a receiver in this process that verifies every delivery with `standardwebhooks` and
answers 500 to about one in ten (decided per webhook-id and attempt). Meanwhile it
SIGKILLs and restarts the executor, the dispatcher and ingest (same port), kills a broker
and starts it again on the same data folder, and shuts PostgreSQL down `immediate` and
starts it again, in a seeded random order, spaced over the run.

After the load and a bounded drain it keeps a ledger of every prediction that got a 201
(or the idempotent 200 of a retried create): terminal in GET, its terminal webhook
delivered and verified, one outcome, one event per webhook-id and one webhook-id per
terminal event. The JSON goes to `chaos/results/<scenario>-<timestamp>.json` and
`chaos/results/latest-<scenario>.json`; the exit code is non-zero when anything was lost
or contradicted.

    python -m chaos --scenario single|cluster --duration 120 --rate 40 --seed 1 [--runs 5]

Modules: `config` (the tunables), `servers` (Kafka and PostgreSQL, and their faults),
`services` (the supervised subprocesses), `stack` (all of it started and stopped), `api`,
`receiver`, `load`, `faults` (schedule, injection, time to recover), `ledger` (the rule),
`report` (the JSON), `run` (one run), `__main__` (the command line).
"""
