"""Ingest: the public HTTP API. Validates, authenticates, writes events to Kafka, reads Postgres."""
