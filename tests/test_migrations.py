"""The alembic migrations create exactly the tables schemas/tables.py describes."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from pydantic import SecretStr

from inferhook.db import alembic_config
from inferhook.settings import DatabaseSettings


def test_migrations_match_table_models(database_url: str) -> None:
    # database_url is migrated to heads; check() raises if autogenerate would change anything.
    command.check(alembic_config(DatabaseSettings(url=SecretStr(database_url))))


def test_migrations_have_a_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config(DatabaseSettings())).get_heads()
    assert len(heads) == 1, f"merge the migration heads {heads} with `alembic merge`"
