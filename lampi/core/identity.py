"""Identity service: users, projects, roles, password checks, tokens, bootstrap.

Protocol-neutral: the Keystone v3 and Swift v1 auth handlers translate HTTP into
calls here; the CLI uses it to administer the data dir.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lampi.config import Settings
from lampi.core import errors
from lampi.core.authz import BUILTIN_ROLES, Principal
from lampi.core.models import Credential, Domain, Project, User
from lampi.core.passwords import hash_password, verify_password
from lampi.core.tokens import TokenCodec, TokenData, TokenError, load_keys
from lampi.store.keyring import SealError
from lampi.store.meta.base import MetaStore

DEFAULT_DOMAIN = Domain(id="default", name="Default")
log = logging.getLogger("lampi.identity")


def role_id(name: str) -> str:
    """A role's id: derived from its name, so that every data dir (and every worker)
    gives the built-in roles the same ids."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"lampi:role:{name}").hex


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against so that an unknown user costs as much time as a wrong
    password. Made on first use, not at import: an argon2 hash takes 0.1-0.4 s, and
    every start (and every admin command) imports this module."""
    return hash_password(secrets.token_hex(8))


def new_password() -> str:
    """A random password for a generated account: 144 bits, URL-safe, and never starting with '-'
    (``swift -K -abc`` and ``openstack --os-password -abc`` would read it as an option)."""
    while True:
        password = secrets.token_urlsafe(18)
        if password[0] != "-":
            return password


def _keys_unavailable(exc: Exception) -> errors.DataUnavailable:
    log.error("the token keys cannot be read: %s", exc)
    return errors.DataUnavailable(f"The token keys cannot be read: {exc}.")


@dataclass(frozen=True, slots=True)
class Bootstrap:
    created: bool
    project: Project
    user: User
    password: str | None


class IdentityService:
    def __init__(self, meta: MetaStore, settings: Settings) -> None:
        self.meta = meta
        self.settings = settings
        keys = getattr(meta, "keys", None)  # the store's key rings (lampi.store.keyring)
        self.codec = TokenCodec(keys.ring("fernet") if keys is not None else load_keys(settings.data_path / "keys"))

    # -- bootstrap ------------------------------------------------------------------

    async def bootstrap(self) -> Bootstrap:
        """First start: domain Default, the admin project and user, the RC file. Every
        start: seal EC2 secrets an older version stored in clear."""
        s = self.settings
        sealed = await self.meta.seal_credentials()
        if sealed.sealed:
            log.warning("sealed %d EC2 secret key(s) stored in clear in meta.db with key %s in %s%s; if meta.db "
                        "was readable by others, consider them exposed and replace them",
                        sealed.sealed, sealed.primary, getattr(getattr(self.meta, "keys", None), "where", "keys/"),
                        "" if sealed.scrubbed else " (old copies may remain in the file: see the log above)")
        if await self.meta.get_domain(DEFAULT_DOMAIN.id) is None:
            await self.meta.create_domain(DEFAULT_DOMAIN)
        project = await self.meta.find_project(s.admin_project, DEFAULT_DOMAIN.id)
        if project is None:
            project = await self.create_project(s.admin_project, "lampi administrators")
        user = await self.meta.find_user(s.admin_user, DEFAULT_DOMAIN.id)
        password = None
        created = False
        if user is None:
            password = s.admin_password or new_password()
            user = await self.create_user(s.admin_user, password, project.id, "admin")
            created = True
        elif s.admin_password and not await verify_password(user.password_hash, s.admin_password):
            # a fixed password (--admin-password): the admin's password is the one given, at every start
            password = s.admin_password
            await self.set_password(user.id, password)
        rc = self.rc_path()
        if not created and password is None and not rc.exists() and s.meta_url:
            # a database shared by gateways: the admin was made by another one, whose data
            # dir holds the RC file; resetting the password here would lock that one out
            log.info("user %s exists in the shared metadata store: no RC file written in %s (copy the first "
                     "gateway's openrc.sh, or give admin_password)", user.name, s.data_path)
            rc = None
        if rc is not None and (created or password is not None or not rc.exists()):
            if password is None:
                # RC file lost: we cannot recover the password, so set a new one (or the fixed one)
                password = s.admin_password or new_password()
                if not s.admin_password or not await verify_password(user.password_hash, password):
                    await self.set_password(user.id, password)
            self.write_openrc(user.name, password, project.name)
        if s.s3_access_key:
            await self._fixed_s3_key(user, project)
        return Bootstrap(created, project, user, password)

    async def _fixed_s3_key(self, user: User, project: Project) -> None:
        """``--s3-access-key``/``--s3-secret-key``: the admin has that key pair in the admin
        project, at every start (a key of that name with another secret or owner is replaced)."""
        s = self.settings
        cred = await self.meta.get_credential(s.s3_access_key)
        if cred is not None:
            same = (cred.user_id == user.id and cred.project_id == project.id
                    and secrets.compare_digest(cred.secret.encode(), s.s3_secret_key.encode()))
            if same:
                return
            await self.meta.delete_credential(cred.access)
        await self.meta.create_credential(Credential(access=s.s3_access_key, secret=s.s3_secret_key, user_id=user.id,
                                                     project_id=project.id, created_at=time.time()))

    def rc_path(self) -> Path:
        return self.settings.data_path / "openrc.sh"

    def openrc_text(self, user: str, password: str, project: str) -> str:
        s = self.settings

        def q(v: str) -> str:
            return "'" + v.replace("'", "'\"'\"'") + "'"

        lines = [
            "# OpenStack RC file v3 for lampi — load with: eval \"$(lampi openrc)\"",
            # as CSC's (Horizon's) RC files: what another login left behind would take
            # precedence over the password (a token from `swift auth` / allas_conf, ids,
            # Keystone v2 names), so it goes
            "unset OS_AUTH_TOKEN OS_STORAGE_URL OS_TOKEN OS_AUTH_TYPE OS_CLOUD",
            "unset OS_PROJECT_ID OS_USER_DOMAIN_ID OS_PROJECT_DOMAIN_ID OS_TENANT_ID OS_TENANT_NAME",
            f"export OS_AUTH_URL={q(s.base_url() + '/v3')}",
            "export OS_IDENTITY_API_VERSION=3",
            f"export OS_USERNAME={q(user)}",
            f"export OS_PASSWORD={q(password)}",
            f"export OS_USER_DOMAIN_NAME={q(DEFAULT_DOMAIN.name)}",
            f"export OS_PROJECT_NAME={q(project)}",
            f"export OS_PROJECT_DOMAIN_NAME={q(DEFAULT_DOMAIN.name)}",
            f"export OS_REGION_NAME={q(s.region)}",
            "export OS_INTERFACE=public",
        ]
        cacert = s.cacert()
        if cacert:  # a self-signed certificate (or tls_ca): clients must be told to trust it
            lines.append(f"export OS_CACERT={q(cacert)}")
        return "\n".join(lines) + "\n"

    def write_openrc(self, user: str, password: str, project: str) -> None:
        import os

        path = self.rc_path()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.openrc_text(user, password, project))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    # -- administration -------------------------------------------------------------

    async def domain(self, ref: str | None) -> Domain:
        d = await self.meta.get_domain(ref or DEFAULT_DOMAIN.id)
        if d is None:
            raise errors.NotFound(f"Could not find domain: {ref}.")
        return d

    async def create_domain(self, name: str) -> Domain:
        if not name or len(name) > 64 or name != name.strip():
            raise errors.InvalidArgument("domain name must be 1 to 64 characters, without surrounding spaces")
        if await self.meta.get_domain(name) is not None:
            raise errors.Conflict(f"domain {name!r} exists")
        return await self.meta.create_domain(Domain(uuid.uuid4().hex, name))

    async def delete_domain(self, ref: str) -> None:
        d = await self.domain(ref)
        if d.id == DEFAULT_DOMAIN.id:
            raise errors.InvalidArgument(f"domain {d.name!r} is lampi's default domain and cannot be deleted")
        await self.meta.delete_domain(d.id)

    async def create_project(self, name: str, description: str = "", domain: str | None = None) -> Project:
        if not name or len(name) > 64:
            raise errors.InvalidArgument("project name must be 1 to 64 characters")
        d = await self.domain(domain)
        return await self.meta.create_project(Project(uuid.uuid4().hex, name, d.id, description))

    async def find_project(self, ref: str, domain: str | None = None) -> Project:
        p = await self.meta.get_project(ref)
        if p is None:
            d = await self.domain(domain)
            p = await self.meta.find_project(ref, d.id)
        if p is None:
            raise errors.NotFound(f"Could not find project: {ref}.")
        return p

    async def create_user(
        self,
        name: str,
        password: str,
        project_id: str | None = None,
        role: str = "member",
        domain: str | None = None,
    ) -> User:
        if not name or len(name) > 255:
            raise errors.InvalidArgument("user name must be 1 to 255 characters")
        if not password:
            raise errors.InvalidArgument("password must not be empty")
        role = await self.resolve_role(role)
        d = await self.domain(domain)
        import asyncio

        pw_hash = await asyncio.to_thread(hash_password, password)
        user = await self.meta.create_user(
            User(uuid.uuid4().hex, name, d.id, pw_hash, True, project_id)
        )
        if project_id:
            await self.meta.grant_role(user.id, project_id, role)
        return user

    # -- roles: the built-in ones (lampi.core.authz.BUILTIN_ROLES) and custom ones ----

    async def list_roles(self) -> list[str]:
        custom = await self.meta.list_roles()
        return [*BUILTIN_ROLES, *(r for r in custom if r.lower() not in {b.lower() for b in BUILTIN_ROLES})]

    async def resolve_role(self, name: str) -> str:
        """The role called ``name`` (any case), as it is spelled; NotFound when none is."""
        roles = await self.list_roles()
        for r in roles:
            if r.lower() == name.lower():
                return r
        raise errors.NotFound(f"Could not find role: {name}. Roles: {', '.join(roles)} "
                              "(`lampi role create` makes others).")

    async def create_role(self, name: str) -> str:
        if not name or len(name) > 255 or name != name.strip() or any(ord(ch) < 32 for ch in name):
            raise errors.InvalidArgument("role name must be 1 to 255 characters, without control characters "
                                         "or surrounding spaces")
        if any(r.lower() == name.lower() for r in BUILTIN_ROLES):
            raise errors.Conflict(f"role {name!r} exists (built in)")
        await self.meta.create_role(role_id(name), name)
        return name

    async def delete_role(self, name: str) -> None:
        if any(r.lower() == name.lower() for r in BUILTIN_ROLES):
            raise errors.InvalidArgument(f"role {name!r} is built in and cannot be deleted")
        for user_id in await self.meta.delete_role(name):
            await self.revoke_tokens_of(user_id=user_id)  # their tokens carry the role

    async def grant_role(self, user_id: str, project_id: str, role: str) -> None:
        await self.meta.grant_role(user_id, project_id, await self.resolve_role(role))

    async def find_user(self, ref: str, domain: str | None = None) -> User:
        u = await self.meta.get_user(ref)
        if u is None:
            d = await self.domain(domain)
            u = await self.meta.find_user(ref, d.id)
        if u is None:
            raise errors.NotFound(f"Could not find user: {ref}.")
        return u

    async def users_with_roles(self) -> list[dict[str, Any]]:
        """Every user with its role assignments (``lampi user list``, the console's admin
        pages)."""
        out = []
        for u in await self.meta.list_users():
            roles = []
            for p in await self.meta.projects_for_user(u.id):
                for r in await self.meta.roles_for(u.id, p.id):
                    roles.append({"project": p.name, "project_id": p.id, "role": r})
            out.append({"id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled, "roles": roles})
        return out

    async def set_password(self, user_id: str, password: str) -> None:
        import asyncio

        if not password:
            raise errors.InvalidArgument("password must not be empty")
        await self.meta.set_password_hash(user_id, await asyncio.to_thread(hash_password, password))
        # as Keystone does: a new password ends the sessions made with the old one
        await self.revoke_tokens_of(user_id=user_id)

    async def delete_user(self, user_id: str) -> None:
        await self.meta.delete_user(user_id)
        await self.revoke_tokens_of(user_id=user_id)

    async def delete_project(self, project_id: str) -> None:
        await self.meta.delete_project(project_id)
        await self.revoke_tokens_of(project_id=project_id)

    async def revoke_role(self, user_id: str, project_id: str, role: str) -> None:
        await self.meta.revoke_role(user_id, project_id, await self.resolve_role(role))
        # tokens carry their roles: end the user's tokens on that project
        await self.revoke_tokens_of(user_id=user_id, project_id=project_id)

    # -- authentication -------------------------------------------------------------

    async def check_password(self, user: User | None, password: str) -> User:
        """Verify ``password`` for ``user`` in constant-ish time; raise Unauthorized."""
        import asyncio

        pw_hash = user.password_hash if user else await asyncio.to_thread(_dummy_hash)
        ok = await verify_password(pw_hash, password)
        if user is None or not ok or not user.enabled:
            raise errors.Unauthorized("The request you have made requires authentication.")
        return user

    async def scope_roles(self, user: User, project: Project) -> tuple[str, ...]:
        roles = tuple(await self.meta.roles_for(user.id, project.id))
        if not roles or not project.enabled:
            raise errors.Unauthorized(
                f"User {user.id} has no access to project {project.id}"
            )
        return implied_roles(roles)

    async def issue_token(
        self,
        user: User,
        project: Project | None,
        roles: tuple[str, ...],
        methods: tuple[str, ...],
        expires_at: float | None = None,
        audit_chain: tuple[str, ...] = (),
    ) -> tuple[str, TokenData]:
        try:
            return await self.codec.aissue(
                user.id,
                project.id if project else None,
                roles,
                methods,
                self.settings.token_ttl,
                expires_at=expires_at,
                audit_chain=audit_chain,
            )
        except SealError as exc:
            raise _keys_unavailable(exc) from None

    async def validate(self, token: str) -> TokenData:
        try:
            data = await self.codec.adecode(token)
        except TokenError as exc:
            raise errors.Unauthorized(str(exc)) from None
        except SealError as exc:  # a token key that cannot be opened (e.g. the master key rotated)
            raise _keys_unavailable(exc) from None
        revoked = await self.meta.revoked_tokens()
        if revoked and (data.audit_id in revoked or any(a in revoked for a in data.audit_chain)):
            raise errors.Unauthorized("token revoked")
        if revoked:
            cutoffs = self._revocation_events(revoked)
            for key in ((data.user_id, "*"), (data.user_id, data.project_id or "-"), ("*", data.project_id or "-")):
                cutoff = cutoffs.get(key)
                if cutoff is not None and data.issued_at <= cutoff:
                    raise errors.Unauthorized("token revoked")
        return data

    async def revoke(self, data: TokenData) -> None:
        await self.meta.revoke_token(data.audit_id, data.expires_at)

    # Revocation events, as Keystone's: every token of a user (optionally only those
    # scoped to one project), or every token scoped to a project, issued up to now.
    # They share the revocation list with single tokens, under the key
    # "event:<user_id|*>:<project_id|*>:<issued_before>", so every worker sees them
    # without a lookup per request. Kept long enough to outlive any token issued
    # before them, even if token_ttl is lowered later.
    _EVENT_KEEP = 7 * 86400

    async def revoke_tokens_of(self, user_id: str | None = None, project_id: str | None = None) -> None:
        assert user_id or project_id
        now = time.time()
        key = f"event:{user_id or '*'}:{project_id or '*'}:{now!r}"
        await self.meta.revoke_token(key, now + max(self.settings.token_ttl, self._EVENT_KEEP))

    _events_src: set[str] | None = None
    _events_len = -1
    _events: dict[tuple[str, str], float] = {}

    def _revocation_events(self, revoked: set[str]) -> dict[tuple[str, str], float]:
        """{(user_id|"*", project_id|"*"): issued_before}; re-parsed only when the list changes."""
        if revoked is not self._events_src or len(revoked) != self._events_len:
            events: dict[tuple[str, str], float] = {}
            for entry in revoked:
                if entry.startswith("event:"):
                    try:
                        _, uid, pid, ts = entry.split(":", 3)
                        key, cutoff = (uid, pid), float(ts)
                    except ValueError:
                        continue
                    events[key] = max(cutoff, events.get(key, 0.0))
            self._events, self._events_src, self._events_len = events, revoked, len(revoked)
        return self._events

    def principal(self, data: TokenData, user_name: str = "") -> Principal:
        return Principal(
            user_id=data.user_id,
            user_name=user_name,
            project_id=data.project_id,
            roles=data.roles,
            is_cloud_admin=self.is_cloud_admin(data.project_id, data.roles),
            audit_id=data.audit_id,
            expires_at=data.expires_at,
        )

    def is_cloud_admin(self, project_id: str | None, roles: tuple[str, ...]) -> bool:
        return bool(project_id) and "admin" in roles and project_id == self._admin_project_id

    _admin_project_id: str | None = None

    async def load_admin_project(self) -> None:
        p = await self.meta.find_project(self.settings.admin_project, DEFAULT_DOMAIN.id)
        self._admin_project_id = p.id if p else None

    async def principal_for_token(self, token: str) -> Principal:
        return self.principal(await self.validate(token))


def implied_roles(roles: tuple[str, ...]) -> tuple[str, ...]:
    """Keystone's default role inference: admin implies member implies reader. Other
    roles (the reseller admin, service and custom roles) are kept as they are."""
    low = {r.lower() for r in roles}
    if "admin" in low:
        low.add("member")
    if "member" in low:
        low.add("reader")
    chain = tuple(r for r in ("admin", "member", "reader") if r in low)
    rest = tuple(dict.fromkeys(r for r in roles if r.lower() not in ("admin", "member", "reader")))
    return chain + rest


def now() -> float:
    return time.time()
