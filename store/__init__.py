"""The floor every service stands on for Postgres: the only place SQL text is written.

Rule: only `store/` and `migrations/` spell a table's columns or hold SQL. Services call the
named functions here, inside the transaction they own (`conn`), and get rows or schema models
back. Column lists and recordset types derive from the table models in `schemas/tables.py`
(`store.records`), so a new column is one edit there plus a migration.

    records.py       column lists, recordset types and JSON parameters, derived from the models
    predictions.py   the read model: pending insert, projection writes, history, reads, counts,
                     the reaper's overdue query, the retention sweep
    parked.py        events held for predictions the projector does not know yet
    outbox.py        webhook deliveries and attempts: one enqueue, claims, outcomes, views
    offsets.py       the projector's next offset per partition
    idempotency.py   Idempotency-Key reservations
    accounts.py      API keys and webhook signing secrets
    endpoints.py     account webhook endpoints; their deliveries' skip, recover and listing
    files.py         uploads and outputs stored as files, behind the FileStore interface
    server.py        statements about the server, not a table: ping, advisory locks
"""
