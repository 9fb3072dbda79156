"""Whole tables, row by row, for ``lampi migrate`` (the MetaStore's ``table_names``,
``table_columns``, ``export_rows``, ``import_rows``): one store copied into another,
table by table in ``MIGRATED_TABLES`` order, whatever the two stores are (SQLite or
PostgreSQL). Shared by both stores, as the other record families: the statements are
SQLite's, translated for PostgreSQL by ``lampi.store.meta.postgres.dialect``; what
differs (where a table lives, how its columns are listed) is the bases' ``_rows_read``,
``_rows_write``, ``_list_tables`` and ``_list_columns``.

Exports page by primary key (``WHERE (pk) > (?) ORDER BY pk LIMIT ?``): an index range
scan per page, and a page boundary is a key, so an interrupted copy can go on from any
page. Imports are upserts (PostgreSQL: ``INSERT ... ON CONFLICT (pk) DO UPDATE``; SQLite:
an UPDATE by key, else an INSERT): the same rows imported twice leave one copy, as they
are.
"""

from __future__ import annotations

from typing import Any

from lampi.store.meta.base import MIGRATED_TABLES
from lampi.store.meta.sqlite.conn import SQLiteBase

_PK = dict(MIGRATED_TABLES)


def _pk(table: str) -> tuple[str, ...]:
    try:
        return _PK[table]
    except KeyError:
        raise ValueError(f"table {table!r} is not one lampi migrate copies") from None


class RowsMixin(SQLiteBase):
    async def table_names(self) -> list[str]:
        return sorted(await self._rows_read(None, self._list_tables))

    async def table_columns(self, table: str) -> list[str]:
        return await self._rows_read(table, lambda c: self._list_columns(c, table))

    async def export_rows(self, table: str, after: tuple[Any, ...] | None, limit: int) -> list[tuple[Any, ...]]:
        pk = _pk(table)
        columns = await self.table_columns(table)
        keys = ", ".join(pk)
        where, args = "", [limit]
        if after is not None:
            where = f" WHERE ({keys}) > ({', '.join('?' for _ in pk)})"
            args = [*after, limit]
        sql = f"SELECT {', '.join(columns)} FROM {table}{where} ORDER BY {keys} LIMIT ?"
        return await self._rows_read(table, lambda c: [tuple(r) for r in c.execute(sql, args).fetchall()])

    async def import_rows(self, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        pk = _pk(table)
        have = set(await self.table_columns(table))
        unknown = [c for c in columns if c not in have]
        if unknown:
            raise ValueError(f"table {table} has no column {', '.join(unknown)}")
        if not rows:
            return
        rest = [c for c in columns if c not in pk]
        await self._rows_write(table, lambda c: self._imported(c, table, columns, pk, rest, rows))

    def _imported(self, c: Any, table: str, columns: list[str], pk: tuple[str, ...], rest: list[str],
                  rows: list[tuple[Any, ...]]) -> None:
        cols, marks = ", ".join(columns), ", ".join("?" for _ in columns)
        if self._UPSERT:
            action = f"DO UPDATE SET {', '.join(f'{x} = excluded.{x}' for x in rest)}" if rest else "DO NOTHING"
            c.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({', '.join(pk)}) {action}",
                          rows)
            return
        # SQLite: an upsert's UPDATE would run the identity-generation triggers under the
        # upsert's conflict clause, where their INSERT OR REPLACE fails: update, else insert
        at = [columns.index(k) for k in pk]
        keep = [columns.index(x) for x in rest]
        where = " AND ".join(f"{k} = ?" for k in pk)
        update = f"UPDATE {table} SET {', '.join(f'{x} = ?' for x in rest)} WHERE {where}" if rest else None
        insert = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
        exists = f"SELECT 1 FROM {table} WHERE {where}"
        for r in rows:
            key = [r[i] for i in at]
            if update is not None:
                if c.execute(update, [*(r[i] for i in keep), *key]).rowcount:
                    continue
            elif c.execute(exists, key).fetchone() is not None:
                continue
            c.execute(insert, r)
