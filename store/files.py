"""Files (`files`): every statement on the table, behind the `FileStore` interface.

Writers: ingest stores uploads and deletes a file when its owner asks; the projector stores
binary outputs in its batch's transaction; the retention sweep deletes expired files.
Readers: the files API and ingest, which inlines the files an input names.

Services hold a `FileStore`. `PostgresFiles` keeps metadata and content in one row; an
object store can take its place by keeping the metadata row here and the content elsewhere.
Every method runs in the caller's transaction (`conn`), so what a projection or an upload
records about a file commits with the rest of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.tables import FileRow
from store.records import Connection, arrays, columns, execute, unnest

COLUMNS = columns(FileRow)
LAZY = ("content",)
"""Read only when asked for: metadata reads leave the bytes in Postgres."""
_NAMES = ", ".join(COLUMNS)
_SHOWN = ", ".join(
    [c for c in COLUMNS if c not in LAZY]
    + [f"CASE WHEN CAST(:content AS boolean) THEN {c} END AS {c}" for c in LAZY])

INSERT = text(f"""
INSERT INTO files ({_NAMES})
SELECT {_NAMES} FROM {unnest(FileRow)}
ON CONFLICT (id) DO NOTHING
""")
"""A file id stored once: the projector replaying an event stores nothing new."""

SELECT_OWNED = text(f"""
SELECT {_SHOWN} FROM files
WHERE id = ANY(CAST(:ids AS text[])) AND owner = :owner AND expires_at > now()
""")

SELECT_ANY = text(f"""
SELECT {_SHOWN} FROM files WHERE id = ANY(CAST(:ids AS text[])) AND expires_at > now()
""")

SELECT_PAGE = text(f"""
SELECT {_SHOWN} FROM files
WHERE owner = :owner AND expires_at > now()
  AND (CAST(:after AS text) IS NULL OR id < :after)
  AND (CAST(:purpose AS text) IS NULL OR purpose = :purpose)
ORDER BY id DESC LIMIT :limit
""")
"""File ids are time-ordered (uuid7): newest first is id order, the page's last id its cursor."""

DELETE = text("DELETE FROM files WHERE id = :id AND owner = :owner")

SWEEP = text("""
DELETE FROM files WHERE id IN (
  SELECT id FROM files WHERE expires_at < now()
  ORDER BY expires_at LIMIT :limit FOR UPDATE SKIP LOCKED)
""")


@dataclass(frozen=True)
class StoredFile:
    """A file as the store takes and gives it back: a field per column of `FileRow` (a test
    checks), a plain dataclass because building a table model costs a millisecond a file."""

    id: str
    owner: str
    purpose: str
    filename: str
    content_type: str
    size: int
    created_at: datetime
    expires_at: datetime
    prediction_id: str | None
    content: bytes | None
    """The bytes (when reading: only when they were asked for)."""


class FileStore(Protocol):
    """Where files live. Expired files are gone for every read, swept or not."""

    async def put(self, conn: Connection, files: Sequence[StoredFile]) -> None:
        """Store `files` (with their content); an id already stored keeps what it holds."""

    async def get(self, conn: AsyncConnection, ids: Sequence[str], *, owner: str | None,
                  content: bool = False) -> dict[str, StoredFile]:
        """The unexpired files among `ids` by id: only `owner`'s, or anyone's when `owner` is
        None (a signed link names the file itself); with their bytes when `content`."""

    async def page(self, conn: AsyncConnection, owner: str, *, after: str | None,
                   purpose: str | None, limit: int) -> list[StoredFile]:
        """Up to `limit` of `owner`'s unexpired files older than the file `after` (all when
        None), newest first, with `purpose` when given; without their bytes."""

    async def delete(self, conn: AsyncConnection, file_id: str, owner: str) -> bool:
        """Delete `owner`'s file; False when there was none."""

    async def sweep(self, conn: AsyncConnection, limit: int) -> int:
        """Delete up to `limit` expired files; returns how many."""


class PostgresFiles:
    """FileStore keeping metadata and content in the `files` table."""

    async def put(self, conn: Connection, files: Sequence[StoredFile]) -> None:
        if files:
            await execute(conn, INSERT, arrays(FileRow, files))

    async def get(self, conn: AsyncConnection, ids: Sequence[str], *, owner: str | None,
                  content: bool = False) -> dict[str, StoredFile]:
        if not ids:
            return {}
        params = {"ids": list(ids), "content": content}
        found = await (conn.execute(SELECT_ANY, params) if owner is None
                       else conn.execute(SELECT_OWNED, {**params, "owner": owner}))
        return {row.id: StoredFile(**row._mapping) for row in found}

    async def page(self, conn: AsyncConnection, owner: str, *, after: str | None,
                   purpose: str | None, limit: int) -> list[StoredFile]:
        found = await conn.execute(SELECT_PAGE, {"owner": owner, "after": after, "limit": limit,
                                                 "purpose": purpose, "content": False})
        return [StoredFile(**row._mapping) for row in found]

    async def delete(self, conn: AsyncConnection, file_id: str, owner: str) -> bool:
        result = await conn.execute(DELETE, {"id": file_id, "owner": owner})
        return bool(result.rowcount)

    async def sweep(self, conn: AsyncConnection, limit: int) -> int:
        result = await conn.execute(SWEEP, {"limit": limit})
        return int(result.rowcount)
