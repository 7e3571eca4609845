"""inferhook: webhook-first asynchronous ML inference.

The plumbing every service stands on lives here (settings, logging, metrics, tracing,
database and Kafka helpers, the model catalog, data URIs, signed file links) and imports
nothing above it. The services
are the top-level packages ingest, executors and dispatcher, their contracts are in schemas,
every SQL statement is in store, and the `inferhook` command, dev stack and local
infrastructure are in cli.
"""
