"""Per-project quota overrides of the SQLite MetaStore."""

from __future__ import annotations

import sqlite3

from lampi.core import errors
from lampi.store.meta import memo
from lampi.store.meta.sqlite.conn import SQLiteBase


class QuotasMixin(SQLiteBase):
    async def get_project_quota(self, project_id: str) -> dict[str, int | None]:
        def fn(c: sqlite3.Connection) -> tuple[int | None, int | None, int | None]:
            row = c.execute(
                "SELECT max_bytes, max_containers, max_objects_per_container FROM project_quotas "
                "WHERE project_id = ?",
                (project_id,),
            ).fetchone()
            return row or (None, None, None)

        # remembered by the request, shared as container and account records (memo)
        row = await memo.read(("quota", project_id), lambda: self._read(fn), self._shared)
        return {"bytes": row[0], "containers": row[1], "objects_per_container": row[2]}

    async def set_project_quota(self, project_id: str, updates: dict[str, int | None]) -> None:
        """Set (int) or reset to the default (None) the given quota keys of a project."""
        cols = {"bytes": "max_bytes", "containers": "max_containers",
                "objects_per_container": "max_objects_per_container"}

        def fn(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is None:
                raise errors.NotFound("project not found")
            c.execute("INSERT OR IGNORE INTO project_quotas (project_id) VALUES (?)", (project_id,))
            for key, value in updates.items():
                c.execute(f"UPDATE project_quotas SET {cols[key]} = ? WHERE project_id = ?", (value, project_id))

        await self._tx(fn)
