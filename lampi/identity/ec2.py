"""Keystone EC2 credentials: the S3 key pairs of ``openstack ec2 credentials ...``.

Two views of one table, as Keystone has them:

- ``/v3/users/{user_id}/credentials/OS-EC2[/{access}]`` (POST/GET/DELETE), what
  python-keystoneclient's ``ec2`` manager and ``openstack ec2 credentials`` call;
- ``/v3/credentials[/{id}]`` with ``type=ec2`` (GET/POST/DELETE), the generic API
  (Allas's ``allas_project_s3`` reads ``GET /v3/credentials?type=ec2``). The id is
  ``sha256(access)``, as Keystone makes it for EC2 credentials; ``blob`` is a JSON
  string ``{"access": ..., "secret": ...}``.

A key pair acts as its user in its project with that user's roles there (checked on
every S3 request). Keys do not expire.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

from aiohttp import web

from lampi.core import errors, jsonbody
from lampi.core.identity import IdentityService
from lampi.core.models import Credential
from lampi.http.context import IDENTITY
from lampi.identity import common


def new_key() -> str:
    return secrets.token_hex(16)  # 32 hex characters, like Keystone's uuid4().hex


def credential_id(access: str) -> str:
    return hashlib.sha256(access.encode()).hexdigest()


def ec2_json(request: web.Request, c: Credential) -> dict[str, Any]:
    return {
        "user_id": c.user_id,
        "tenant_id": c.project_id,
        "access": c.access,
        "secret": c.secret,
        "trust_id": None,
        "links": {"self": f"{common.base_url(request)}/v3/users/{c.user_id}/credentials/OS-EC2/{c.access}"},
    }


def credential_json(request: web.Request, c: Credential) -> dict[str, Any]:
    cid = credential_id(c.access)
    return {
        "id": cid,
        "type": "ec2",
        "user_id": c.user_id,
        "project_id": c.project_id,
        "blob": json.dumps({"access": c.access, "secret": c.secret, "trust_id": None}),
        "links": {"self": f"{common.base_url(request)}/v3/credentials/{cid}"},
    }


async def create(ident: IdentityService, user_id: str, project_id: str,
                 access: str | None = None, secret: str | None = None) -> Credential:
    """Create a key pair for ``user_id`` in ``project_id`` (the user needs a role there)."""
    user = await ident.meta.get_user(user_id)
    if user is None:
        raise errors.NotFound(f"Could not find user: {user_id}.")
    project = await ident.meta.get_project(project_id)
    if project is None:
        raise errors.NotFound(f"Could not find project: {project_id}.")
    if not await ident.meta.roles_for(user_id, project_id):
        raise errors.Forbidden(f"User {user_id} has no role on project {project_id}.")
    cred = Credential(access=access or new_key(), secret=secret or new_key(), user_id=user_id,
                      project_id=project_id, created_at=time.time())
    return await ident.meta.create_credential(cred)


async def _allowed(request: web.Request, user_id: str) -> tuple[IdentityService, bool]:
    """The caller may manage ``user_id``'s keys: it is that user, or the cloud admin."""
    ident = request.app[IDENTITY]
    caller = await common.caller(request)
    admin = ident.is_cloud_admin(caller.project_id, caller.roles)
    if caller.user_id != user_id and not admin:
        raise errors.Forbidden("You are not authorized to perform the requested action.")
    return ident, admin


async def _own(ident: IdentityService, user_id: str, access: str) -> Credential:
    cred = await ident.meta.get_credential(access)
    if cred is None or cred.user_id != user_id:
        raise errors.NotFound(f"Could not find credential: {access}.")
    return cred


async def handle_os_ec2(request: web.Request, parts: list[str]) -> web.Response:
    """``parts``: path after /v3 — ["users", uid, "credentials", "OS-EC2", (access)]."""
    user_id = parts[1]
    ident, _ = await _allowed(request, user_id)
    m = request.method
    if len(parts) == 4:
        if m == "POST":
            body = await common.read_json(request)
            project_id = body.get("tenant_id") or body.get("project_id") if isinstance(body, dict) else None
            if not isinstance(project_id, str) or not project_id:
                raise errors.InvalidArgument("'tenant_id' is a required property")
            cred = await create(ident, user_id, project_id)
            return web.json_response({"credential": ec2_json(request, cred)}, status=201)
        if m in ("GET", "HEAD"):
            if await ident.meta.get_user(user_id) is None:
                raise errors.NotFound(f"Could not find user: {user_id}.")
            creds = await ident.meta.list_credentials(user_id)
            return common.collection(request, "credentials", [ec2_json(request, c) for c in creds])
        return common.error(405, "Method Not Allowed")
    cred = await _own(ident, user_id, parts[4])
    if m in ("GET", "HEAD"):
        return web.json_response({"credential": ec2_json(request, cred)})
    if m == "DELETE":
        await ident.meta.delete_credential(cred.access)
        return web.Response(status=204)
    return common.error(405, "Method Not Allowed")


async def handle_credentials(request: web.Request, parts: list[str]) -> web.Response:
    """``/v3/credentials[/{id}]`` for credentials of type ec2."""
    ident = request.app[IDENTITY]
    caller = await common.caller(request)
    admin = ident.is_cloud_admin(caller.project_id, caller.roles)
    m = request.method
    visible = None if admin else caller.user_id
    if len(parts) == 1:
        if m in ("GET", "HEAD"):
            ctype = request.query.get("type")
            want_user = request.query.get("user_id")
            creds = [] if ctype not in (None, "ec2") else await ident.meta.list_credentials(visible)
            if want_user:
                creds = [c for c in creds if c.user_id == want_user]
            return common.collection(request, "credentials", [credential_json(request, c) for c in creds])
        if m == "POST":
            body = await common.read_json(request)
            ref = common.required_object(body, "credential", "request")
            if ref.get("type") != "ec2":
                raise errors.InvalidArgument("lampi stores credentials of type 'ec2' only")
            user_id = common.optional_str(ref, "user_id") or caller.user_id
            if user_id != caller.user_id and not admin:
                raise errors.Forbidden("You are not authorized to perform the requested action.")
            project_id = common.optional_str(ref, "project_id")
            raw = ref.get("blob")
            try:
                blob = jsonbody.loads(raw) if isinstance(raw, str) else None
            except ValueError:
                blob = None
            if not isinstance(blob, dict) or not isinstance(blob.get("access"), str) or not blob["access"]:
                raise errors.InvalidArgument("Invalid blob in credential: it must be JSON with 'access' and 'secret'")
            if not project_id:
                raise errors.InvalidArgument("Credential of type ec2 requires a project_id")
            secret = blob.get("secret")
            if not isinstance(secret, str) or not secret:
                raise errors.InvalidArgument("Invalid blob in credential: 'secret' is required")
            if await ident.meta.get_credential(blob["access"]) is not None:
                return common.error(409, "Duplicate entry: a credential with this access key exists.")
            cred = await create(ident, user_id, project_id, access=blob["access"], secret=secret)
            return web.json_response({"credential": credential_json(request, cred)}, status=201)
        return common.error(405, "Method Not Allowed")
    cid = parts[1]
    match = [c for c in await ident.meta.list_credentials(visible) if credential_id(c.access) == cid]
    if not match:
        raise errors.NotFound(f"Could not find credential: {cid}.")
    if m in ("GET", "HEAD"):
        return web.json_response({"credential": credential_json(request, match[0])})
    if m == "DELETE":
        await ident.meta.delete_credential(match[0].access)
        return web.Response(status=204)
    return common.error(405, "Method Not Allowed")


async def route(request: web.Request, path: str) -> web.Response | None:
    """The EC2 credential response for ``path``, or None when it is not one of ours."""
    parts = path.split("/")[2:]  # after /v3
    try:
        if len(parts) in (4, 5) and parts[0] == "users" and parts[2:4] == ["credentials", "OS-EC2"]:
            return await handle_os_ec2(request, parts)
        if parts[:1] == ["credentials"] and len(parts) <= 2:
            return await handle_credentials(request, parts)
    except errors.Conflict as exc:
        return common.error(409, exc.message)
    return None
