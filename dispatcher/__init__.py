"""Dispatcher: projects inferhook.events into Postgres and delivers signed webhooks.

    consumer.py    Kafka side of the projection: read_committed batches, offsets from Postgres
    projector.py   one Postgres transaction per batch, a fixed number of set-based statements
    outfiles.py    binary outputs become files and references, before the fold (pure)
    fold.py        the projection rule (pure): which events apply and what they change
    throttle.py    which webhooks become outbox rows (pure): output/logs throttling, superseding
    fanout.py      each event of an owner with account endpoints → one row per matching endpoint
    outbox.py      claim (SKIP LOCKED + lease + claim id), send, record; per-endpoint isolation
    sender.py      one signed HTTP attempt, SSRF-guarded at connect time
    signing.py     Standard Webhooks signatures (v1 HMAC, v1a ed25519)
    backoff.py     retry schedule with jitter, Retry-After (pure)
    breaker.py     per-endpoint circuit breaker (pure)
    pacing.py      per-endpoint rate limit: starts in a sliding second (pure)
    health.py      account endpoint failing/disabled/recovered policy (pure)
    endpointhealth.py  applies it after each batch of attempts; announces, disables
    reaper.py      ends predictions that cannot finish by themselves (via Kafka events)
    retention.py   clears the data of expired predictions, deletes expired files
    service.py     runs them side by side
    errors.py      the package's error tree
"""
