"""inferhook: webhook-first asynchronous ML inference.

Shared runtime pieces live here (settings, logging, database and Kafka plumbing, the CLI,
local infrastructure); the services are the top-level packages ingest, executors and
dispatcher, and their contracts are in schemas.
"""
