"""How rows travel to Postgres: column names and recordset types read off the table models.

Batched writes send rows as one JSON array expanded by `jsonb_to_recordset(...) AS r(<types>)`;
Postgres ignores JSON keys missing from that type list, so the list is derived from the model
here instead of being written out (a column left out of a hand-written list is lost silently).
Tables with binary columns, which JSON cannot carry, send one typed array per column instead
(`unnest` with `arrays`), derived the same way.

Statements run through `fetch` and `execute` on either connection: SQLAlchemy's, or the
asyncpg connection under it (`inferhook.db.driver_transaction`). The hot paths — the
projector's batch and the create's pending row — use the latter: SQLAlchemy's execution
layer cost ≈0.29 ms of CPU per statement where asyncpg's own costs ≈0.12, and ≈0.3 ms more
per transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any, TypeAlias

import asyncpg
import orjson
from sqlalchemy import Table, TextClause
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy table behind a table model."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def columns(model: type[SQLModel]) -> tuple[str, ...]:
    """The model's column names, in table order."""
    return tuple(column.name for column in table_of(model).columns)


def recordset(model: type[SQLModel], names: Iterable[str] | None = None,
              extra: str = "") -> str:
    """`name type, ...` of the model's columns (all, or `names`) for `AS r(...)`; `extra`
    appends fields that are not columns (e.g. `output_set boolean`)."""
    table = table_of(model)
    wanted = columns(model) if names is None else tuple(names)
    types = [f"{name} {table.columns[name].type.compile(dialect=_DIALECT)}" for name in wanted]
    return ", ".join(types + ([extra] if extra else []))


def jsonb(value: Any) -> str:
    """JSON text for a `CAST(:x AS jsonb)` parameter."""
    return orjson.dumps(value).decode()


def unnest(model: type[SQLModel]) -> str:
    """`unnest(CAST(:name AS type[]), ...) AS r(name, ...)` over every column of the model:
    rows sent as one array per column (bound by `arrays`), binary columns as bytea."""
    table, names = table_of(model), columns(model)
    casts = ", ".join(f"CAST(:{name} AS {table.columns[name].type.compile(dialect=_DIALECT)}[])"
                      for name in names)
    return f"unnest({casts}) AS r({', '.join(names)})"


def arrays(model: type[SQLModel], rows: Sequence[Any]) -> dict[str, list[Any]]:
    """The parameters of `unnest(model)`: each column's values over `rows` (objects with an
    attribute per column), in row order."""
    return {name: [getattr(row, name) for row in rows] for name in columns(model)}


Connection: TypeAlias = AsyncConnection | asyncpg.Connection
"""What store functions on the hot paths accept: SQLAlchemy's connection, or asyncpg's own."""

_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")
"""A `:name` bind parameter as SQLAlchemy's text() finds it (not a `::` cast)."""


@cache
def positional(statement: TextClause) -> tuple[str, tuple[str, ...]]:
    """The statement with `$1, $2, ...` for its `:name` parameters, and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAMETER.sub(number, statement.text), tuple(names)


async def fetch(conn: Connection, statement: TextClause,
                params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """The rows `statement` returns, each a mapping of column name to value."""
    if isinstance(conn, AsyncConnection):
        result = await conn.execute(statement, dict(params))
        return [dict(row) for row in result.mappings()]
    sql, names = positional(statement)
    rows: list[Mapping[str, Any]] = await conn.fetch(sql, *(params[n] for n in names))
    return rows


async def execute(conn: Connection, statement: TextClause, params: Mapping[str, Any]) -> None:
    """Run `statement` for its effect."""
    if isinstance(conn, AsyncConnection):
        await conn.execute(statement, dict(params))
        return
    sql, names = positional(statement)
    await conn.execute(sql, *(params[n] for n in names))
