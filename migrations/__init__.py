"""Alembic migrations for the Postgres read model (applied by `inferhook migrate`)."""
