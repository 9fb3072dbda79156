"""Identity records of the SQLite MetaStore: domains, projects, users, role
assignments, token revocations and the identity generation (EC2 credentials are in
``credentials``)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from typing import Any

from lampi.core import errors
from lampi.core.models import Domain, Project, User
from lampi.store.meta.sqlite.conn import SQLiteBase


class IdentityMixin(SQLiteBase):
    # -- identity ---------------------------------------------------------------

    @staticmethod
    def _domain(row: tuple[Any, ...] | None) -> Domain | None:
        return Domain(row[0], row[1], bool(row[2])) if row else None

    @staticmethod
    def _project(row: tuple[Any, ...] | None) -> Project | None:
        return Project(row[0], row[1], row[2], row[3], bool(row[4])) if row else None

    @staticmethod
    def _user(row: tuple[Any, ...] | None) -> User | None:
        return User(row[0], row[1], row[2], row[3], bool(row[4]), row[5]) if row else None

    async def create_domain(self, domain: Domain) -> Domain:
        def fn(c: sqlite3.Connection) -> Domain:
            try:
                c.execute(
                    "INSERT INTO domains (id, name, enabled) VALUES (?, ?, ?)",
                    (domain.id, domain.name, int(domain.enabled)),
                )
            except sqlite3.IntegrityError:
                raise errors.Conflict(f"domain {domain.name!r} exists") from None
            return domain

        return await self._tx(fn)

    async def get_domain(self, id_or_name: str) -> Domain | None:
        return await self._run(
            lambda c: self._domain(
                c.execute(
                    "SELECT id, name, enabled FROM domains WHERE id = ? OR name = ? "
                    "ORDER BY id = ? DESC LIMIT 1",
                    (id_or_name, id_or_name, id_or_name),
                ).fetchone()
            )
        )

    async def list_domains(self) -> list[Domain]:
        return await self._run(
            lambda c: [
                self._domain(r)  # type: ignore[misc]
                for r in c.execute("SELECT id, name, enabled FROM domains ORDER BY name").fetchall()
            ]
        )

    async def delete_domain(self, domain_id: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            for what in ("projects", "users"):
                n = c.execute(f"SELECT COUNT(*) FROM {what} WHERE domain_id = ?", (domain_id,)).fetchone()[0]
                if n:
                    raise errors.Conflict(f"domain still has {n} {what[:-1]}(s); delete them first")
            if not c.execute("DELETE FROM domains WHERE id = ?", (domain_id,)).rowcount:
                raise errors.NotFound("domain not found")

        await self._tx(fn)

    # -- roles (custom ones; the built-in roles have no row) -------------------------

    async def create_role(self, role_id: str, name: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            try:
                c.execute("INSERT INTO roles (id, name, created_at) VALUES (?, ?, ?)", (role_id, name, time.time()))
            except sqlite3.IntegrityError:
                raise errors.Conflict(f"role {name!r} exists") from None

        await self._tx(fn)

    async def list_roles(self) -> list[str]:
        return await self._run(
            lambda c: [r[0] for r in c.execute("SELECT name FROM roles ORDER BY name COLLATE NOCASE").fetchall()]
        )

    async def delete_role(self, name: str) -> list[str]:
        """Delete the role ``name`` and every assignment of it; the ids of the users who
        had it (their tokens carry it)."""

        def fn(c: sqlite3.Connection) -> list[str]:
            row = c.execute("SELECT name FROM roles WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise errors.NotFound(f"Could not find role: {name}.")
            users = [r[0] for r in c.execute(
                "SELECT DISTINCT user_id FROM assignments WHERE role = ?", (row[0],)).fetchall()]
            c.execute("DELETE FROM assignments WHERE role = ?", (row[0],))
            c.execute("DELETE FROM roles WHERE name = ?", (row[0],))
            return users

        return await self._tx(fn)

    _PCOLS = "id, name, domain_id, description, enabled"
    _UCOLS = "id, name, domain_id, password_hash, enabled, default_project_id"

    async def create_project(self, project: Project) -> Project:
        def fn(c: sqlite3.Connection) -> Project:
            try:
                c.execute(
                    f"INSERT INTO projects ({self._PCOLS}) VALUES (?, ?, ?, ?, ?)",
                    (project.id, project.name, project.domain_id, project.description, int(project.enabled)),
                )
            except sqlite3.IntegrityError:
                raise errors.Conflict(f"project {project.name!r} exists") from None
            c.execute(
                "INSERT OR IGNORE INTO accounts (project_id, created_at) VALUES (?, ?)",
                (project.id, time.time()),
            )
            return project

        return await self._tx(fn)

    async def get_project(self, project_id: str) -> Project | None:
        return await self._run(
            lambda c: self._project(
                c.execute(f"SELECT {self._PCOLS} FROM projects WHERE id = ?", (project_id,)).fetchone()
            )
        )

    async def find_project(self, name: str, domain_id: str) -> Project | None:
        return await self._run(
            lambda c: self._project(
                c.execute(
                    f"SELECT {self._PCOLS} FROM projects WHERE name = ? AND domain_id = ?",
                    (name, domain_id),
                ).fetchone()
            )
        )

    async def list_projects(self) -> list[Project]:
        return await self._run(
            lambda c: [
                self._project(r)  # type: ignore[misc]
                for r in c.execute(f"SELECT {self._PCOLS} FROM projects ORDER BY name").fetchall()
            ]
        )

    async def delete_project(self, project_id: str) -> None:
        # the project's accounts: AUTH_<id> (key: the id) and SERVICE_<id> (lampi.core.authz)
        keys = (project_id, "SERVICE_" + project_id)

        def fn(c: sqlite3.Connection) -> None:
            n = c.execute(
                "SELECT COUNT(*) FROM containers WHERE project_id IN (?, ?)", keys
            ).fetchone()[0]
            if n:
                raise errors.Conflict(f"project still has {n} container(s); delete them first")
            if not c.execute("DELETE FROM projects WHERE id = ?", (project_id,)).rowcount:
                raise errors.NotFound("project not found")
            c.execute("DELETE FROM accounts WHERE project_id IN (?, ?)", keys)

        await self._tx(fn)

    async def create_user(self, user: User) -> User:
        def fn(c: sqlite3.Connection) -> User:
            try:
                c.execute(
                    f"INSERT INTO users ({self._UCOLS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        user.id,
                        user.name,
                        user.domain_id,
                        user.password_hash,
                        int(user.enabled),
                        user.default_project_id,
                    ),
                )
            except sqlite3.IntegrityError:
                raise errors.Conflict(f"user {user.name!r} exists") from None
            return user

        return await self._tx(fn)

    async def get_user(self, user_id: str) -> User | None:
        return await self._run(
            lambda c: self._user(
                c.execute(f"SELECT {self._UCOLS} FROM users WHERE id = ?", (user_id,)).fetchone()
            )
        )

    async def find_user(self, name: str, domain_id: str) -> User | None:
        return await self._run(
            lambda c: self._user(
                c.execute(
                    f"SELECT {self._UCOLS} FROM users WHERE name = ? AND domain_id = ?",
                    (name, domain_id),
                ).fetchone()
            )
        )

    async def list_users(self) -> list[User]:
        return await self._run(
            lambda c: [
                self._user(r)  # type: ignore[misc]
                for r in c.execute(f"SELECT {self._UCOLS} FROM users ORDER BY name").fetchall()
            ]
        )

    async def delete_user(self, user_id: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if not c.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount:
                raise errors.NotFound("user not found")

        await self._tx(fn)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if not c.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            ).rowcount:
                raise errors.NotFound("user not found")

        await self._tx(fn)

    async def grant_role(self, user_id: str, project_id: str, role: str) -> None:
        await self._tx(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO assignments (user_id, project_id, role) VALUES (?, ?, ?)",
                (user_id, project_id, role),
            )
        )

    async def revoke_role(self, user_id: str, project_id: str, role: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if not c.execute(
                "DELETE FROM assignments WHERE user_id = ? AND project_id = ? AND role = ?",
                (user_id, project_id, role),
            ).rowcount:
                raise errors.NotFound("role assignment not found")

        await self._tx(fn)

    async def roles_for(self, user_id: str, project_id: str) -> list[str]:
        return await self._run(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT role FROM assignments WHERE user_id = ? AND project_id = ? ORDER BY role",
                    (user_id, project_id),
                ).fetchall()
            ]
        )

    async def projects_for_user(self, user_id: str) -> list[Project]:
        return await self._run(
            lambda c: [
                self._project(r)  # type: ignore[misc]
                for r in c.execute(
                    f"SELECT DISTINCT {', '.join('p.' + x.strip() for x in self._PCOLS.split(','))} "
                    "FROM projects p JOIN assignments a ON a.project_id = p.id "
                    "WHERE a.user_id = ? ORDER BY p.name",
                    (user_id,),
                ).fetchall()
            ]
        )

    async def revoke_token(self, audit_id: str, expires_at: float) -> None:
        def fn() -> None:
            with self._revoke_lock:
                c = self._revoke_conn
                c.execute("BEGIN IMMEDIATE")
                c.execute(
                    "INSERT OR REPLACE INTO revoked (audit_id, expires_at) VALUES (?, ?)",
                    (audit_id, expires_at),
                )
                c.execute("DELETE FROM revoked WHERE expires_at < ?", (time.time() - 3600,))
                c.execute("COMMIT")
                # data_version only moves for other connections' commits: reload ours now
                self._revoke_version = None
                self._revoke_mark = None

        await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def revoked_tokens(self) -> set[str]:
        """The revoked token audit ids; re-read only when another connection wrote.

        Whether one did: first the wal-index header of revocations.db (``_WalMark``, no
        statement), then ``PRAGMA data_version``; the header mark is the one taken before
        the last look that found the set current."""
        watch = self._revoke_watch
        mark = None if watch is None else watch.mark()
        if mark is not None and mark == self._revoke_mark:
            return self._revoked
        with self._revoke_lock:
            version = self._revoke_conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._revoke_version:
                rows = self._revoke_conn.execute("SELECT audit_id FROM revoked").fetchall()
                self._revoked = {r[0] for r in rows}
                self._revoke_version = version
            self._revoke_mark = mark
            if watch is None and self._revoke_pid == os.getpid():
                self._watch_revocations()
            return self._revoked

    def identity_generation(self) -> int:
        """The identity generation (see ``identity_gen`` in the schema), read synchronously:
        one indexed row on a WAL database, a few microseconds, cheaper than a thread hop.
        Raises sqlite3.Error if the database is busy; callers then skip their cache."""
        with self._gen_lock:
            row = self._gen_conn.execute("SELECT gen FROM identity_gen WHERE id = 0").fetchone()
        return row[0] if row else 0

