"""The console's client of lampi's own APIs on the main listener (loopback HTTP).

Every action of the console is one of these requests, made with the user's token, so
the Keystone, Swift and EC2-credentials APIs authenticate and authorize it exactly as
they do for ``swift``, ``openstack`` or ``aws``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from lampi.config import Settings
from lampi.console import s3client

log = logging.getLogger("lampi.console")


class UpstreamError(Exception):
    """An API answered with an error status."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(f"{status}: {body[:200]}")
        self.status = status
        self.body = body


def unreachable(exc: BaseException) -> UpstreamError:
    """The main listener did not answer (or its certificate was refused): a 502."""
    log.warning("console: the API listener did not answer: %s", exc)
    return UpstreamError(502, "the API listener did not answer")


def api_base(settings: Settings) -> str:
    """The main listener as seen from a worker: its own address (a wildcard: loopback),
    over https when it serves TLS."""
    host = settings.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{settings.port}"


def client_tls(settings: Settings) -> ssl.SSLContext | None:
    """How the console checks the main listener's certificate (None: plain HTTP).

    The console talks to its own listener, so the certificate it expects is the one it
    serves: ``tls_cert`` is its trust anchor (a partial chain, whatever CA signed it),
    and ``tls_ca`` too when set. The host name is not checked: the address is the
    worker's own (loopback for a wildcard host), which a certificate for the public
    name need not list; a peer without the certificate's private key is still refused.
    """
    if not settings.tls_cert:
        return None
    ctx = ssl.create_default_context(cafile=settings.tls_cert)
    if settings.tls_ca:
        ctx.load_verify_locations(cafile=settings.tls_ca)
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.check_hostname = False
    return ctx


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime if path else 0.0
    except OSError:
        return -1.0


def q(name: str) -> str:
    return quote(name, safe="")


class Upstream:
    def __init__(self, settings: Settings) -> None:
        self.base = api_base(settings)
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._tls: tuple[tuple[float, float], ssl.SSLContext | None] | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300),
            # no cookies of their own, and never the browser's: only the token authenticates
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "console upstream not started"
        return self._session

    def ssl(self) -> ssl.SSLContext | bool:
        """The client TLS context for the main listener (True: plain HTTP, aiohttp's
        default), made again when the certificate files change (SIGHUP reload)."""
        if not self.settings.tls_cert:
            return True
        stamp = (_mtime(self.settings.tls_cert), _mtime(self.settings.tls_ca))
        if self._tls is None or self._tls[0] != stamp:
            try:
                self._tls = (stamp, client_tls(self.settings))
            except (OSError, ssl.SSLError):
                if self._tls is None:
                    raise
                # a file half replaced: the server keeps its certificate too (ReloadableTLS)
        ctx = self._tls[1]
        assert ctx is not None
        return ctx

    async def call(self, method: str, path: str, token: str | None = None, *, params: Mapping[str, str] | None = None,
                   headers: Mapping[str, str] | None = None, json_body: Any = None, data: Any = None,
                   ok: tuple[int, ...] = (200, 201, 202, 204)) -> tuple[int, Mapping[str, str], bytes]:
        h = dict(headers or {})
        if token:
            h["X-Auth-Token"] = token
        try:
            async with self.session.request(method, self.base + path, params=params, headers=h, json=json_body,
                                            data=data, ssl=self.ssl()) as r:
                body = await r.read()
        except (aiohttp.ClientConnectionError, ssl.SSLError) as exc:
            raise unreachable(exc) from None
        if r.status not in ok:
            raise UpstreamError(r.status, body.decode("utf-8", "replace"))
        return r.status, r.headers, body

    async def stream(self, path: str, token: str, headers: Mapping[str, str] | None = None,
                     params: Mapping[str, str] | None = None) -> aiohttp.ClientResponse:
        """A GET whose body the caller reads (and must release)."""
        h = dict(headers or {})
        h["X-Auth-Token"] = token
        try:
            r = await self.session.get(self.base + path, headers=h, params=params, ssl=self.ssl())
        except (aiohttp.ClientConnectionError, ssl.SSLError) as exc:
            raise unreachable(exc) from None
        if r.status not in (200, 206):
            body = await r.read()
            r.release()
            raise UpstreamError(r.status, body.decode("utf-8", "replace"))
        return r

    # -- Keystone ---------------------------------------------------------------------

    async def password_token(self, user: str, password: str, domain: str) -> tuple[str, dict[str, Any]]:
        body = {"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": user, "password": password, "domain": {"name": domain or "Default"}}}}}}
        _, h, raw = await self.call("POST", "/v3/auth/tokens", json_body=body)
        return h["X-Subject-Token"], json.loads(raw)["token"]

    async def rescope(self, token: str, project_id: str) -> tuple[str, dict[str, Any]]:
        body = {"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
                         "scope": {"project": {"id": project_id}}}}
        _, h, raw = await self.call("POST", "/v3/auth/tokens", json_body=body)
        return h["X-Subject-Token"], json.loads(raw)["token"]

    async def projects(self, token: str) -> list[dict[str, Any]]:
        _, _, raw = await self.call("GET", "/v3/auth/projects", token)
        return list(json.loads(raw).get("projects", []))

    async def revoke(self, token: str) -> None:
        await self.call("DELETE", "/v3/auth/tokens", token, headers={"X-Subject-Token": token},
                        ok=(200, 204, 404, 401))

    async def ec2_list(self, token: str, user_id: str) -> list[dict[str, Any]]:
        _, _, raw = await self.call("GET", f"/v3/users/{q(user_id)}/credentials/OS-EC2", token)
        return list(json.loads(raw).get("credentials", []))

    async def ec2_create(self, token: str, user_id: str, project_id: str) -> dict[str, Any]:
        _, _, raw = await self.call("POST", f"/v3/users/{q(user_id)}/credentials/OS-EC2", token,
                                    json_body={"tenant_id": project_id})
        return dict(json.loads(raw)["credential"])

    async def ec2_delete(self, token: str, user_id: str, access: str) -> None:
        await self.call("DELETE", f"/v3/users/{q(user_id)}/credentials/OS-EC2/{q(access)}", token)

    # -- Swift ------------------------------------------------------------------------

    @staticmethod
    def account_path(project_id: str, container: str | None = None, obj: str | None = None) -> str:
        p = f"/swift/v1/AUTH_{q(project_id)}"
        if container is not None:
            p += "/" + q(container)
            if obj is not None:
                p += "/" + q(obj)
        return p

    async def head_account(self, token: str, project_id: str) -> Mapping[str, str]:
        _, h, _ = await self.call("HEAD", self.account_path(project_id), token)
        return h

    async def list_account(self, token: str, project_id: str, marker: str = "", limit: int = 100) -> list[dict[str, Any]]:
        params = {"format": "json", "limit": str(limit)}
        if marker:
            params["marker"] = marker
        st, _, raw = await self.call("GET", self.account_path(project_id), token, params=params)
        return [] if st == 204 or not raw else list(json.loads(raw))

    async def head_container(self, token: str, project_id: str, name: str) -> Mapping[str, str]:
        _, h, _ = await self.call("HEAD", self.account_path(project_id, name), token)
        return h

    async def list_container(self, token: str, project_id: str, name: str, prefix: str = "", marker: str = "",
                             limit: int = 100, delimiter: str | None = "/") -> list[dict[str, Any]]:
        params = {"format": "json", "limit": str(limit), "prefix": prefix}
        if delimiter:
            params["delimiter"] = delimiter
        if marker:
            params["marker"] = marker
        st, _, raw = await self.call("GET", self.account_path(project_id, name), token, params=params)
        return [] if st == 204 or not raw else list(json.loads(raw))

    async def create_container(self, token: str, project_id: str, name: str) -> int:
        st, _, _ = await self.call("PUT", self.account_path(project_id, name), token)
        return st

    async def post_container(self, token: str, project_id: str, name: str, headers: Mapping[str, str]) -> None:
        await self.call("POST", self.account_path(project_id, name), token, headers=headers)

    async def delete_container(self, token: str, project_id: str, name: str) -> None:
        await self.call("DELETE", self.account_path(project_id, name), token)

    async def head_object(self, token: str, project_id: str, container: str, name: str) -> Mapping[str, str]:
        _, h, _ = await self.call("HEAD", self.account_path(project_id, container, name), token)
        return h

    async def put_object(self, token: str, project_id: str, container: str, name: str,
                         body: AsyncIterator[bytes], length: int | None, content_type: str) -> None:
        headers = {"Content-Type": content_type}
        if length is not None:
            headers["Content-Length"] = str(length)
        await self.call("PUT", self.account_path(project_id, container, name), token, headers=headers, data=body)

    async def copy_object(self, token: str, project_id: str, src: str, dest: str, name: str,
                          src_account: str | None = None) -> None:
        """A server-side copy (Swift PUT with X-Copy-From), checked as the user's own."""
        headers = {"X-Copy-From": f"/{q(src)}/{q(name)}", "Content-Length": "0"}
        if src_account:
            headers["X-Copy-From-Account"] = f"AUTH_{src_account}"
        await self.call("PUT", self.account_path(project_id, dest, name), token, headers=headers)

    async def post_object(self, token: str, project_id: str, container: str, name: str,
                          headers: Mapping[str, str]) -> None:
        await self.call("POST", self.account_path(project_id, container, name), token, headers=headers)

    async def delete_object(self, token: str, project_id: str, container: str, name: str,
                            manifest: bool | None = None) -> None:
        """Delete an object; a Swift SLO with its segments (``?multipart-manifest=delete``,
        as ``swift delete`` does), so that no segment is left behind in
        ``<bucket>_segments``. ``manifest``: whether it is one (a listing's ``slo_etag``
        says); None: asked with a HEAD."""
        path = self.account_path(project_id, container, name)
        if manifest is None:
            st, h, _ = await self.call("HEAD", path, token, ok=(200, 204, 404))
            manifest = st != 404 and str(h.get("X-Static-Large-Object", "")).lower() == "true"
        if not manifest:
            await self.call("DELETE", path, token, ok=(200, 204, 404))
            return
        _, _, raw = await self.call("DELETE", path, token, params={"multipart-manifest": "delete"},
                                    headers={"Accept": "application/json"}, ok=(200, 404))
        try:
            result = json.loads(raw) if raw else {}
        except ValueError:
            result = {}
        status = str(result.get("Response Status", "200"))
        if not status.startswith(("2", "404")):  # the real status of a bulk-style answer
            code = int(status.split()[0]) if status.split() and status.split()[0].isdigit() else 502
            errs = "; ".join(f"{p}: {e}" for p, e in result.get("Errors", [])[:3])
            raise UpstreamError(code, f"{status}{': ' + errs if errs else ''}")

    # -- S3 (bucket tagging: S3's alone) ----------------------------------------------

    async def s3_call(self, token: str, user_id: str, project_id: str, method: str, bucket: str,
                      query: Mapping[str, str], body: bytes = b"",
                      ok: tuple[int, ...] = (200, 204)) -> tuple[int, bytes]:
        """An S3 request on ``bucket`` signed with an EC2 credential of the user for
        ``project_id`` (one made for it, and deleted after, when there is none):
        lampi.console.s3client."""
        creds = [c for c in await self.ec2_list(token, user_id) if c.get("tenant_id") == project_id]
        made = None
        if not creds:
            made = await self.ec2_create(token, user_id, project_id)
            creds = [made]
        try:
            host = self.base.split("://", 1)[1]
            path = "/" + bucket
            headers = s3client.sign(method, host, path, query, body, creds[0]["access"], creds[0]["secret"],
                                    self.settings.region)
            if body:
                headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
            try:
                async with self.session.request(method, self.base + "/" + q(bucket), params=query, data=body,
                                                headers=headers, ssl=self.ssl()) as r:
                    raw = await r.read()
            except (aiohttp.ClientConnectionError, ssl.SSLError) as exc:
                raise unreachable(exc) from None
            if r.status not in ok:
                raise UpstreamError(r.status, raw.decode("utf-8", "replace"))
            return r.status, raw
        finally:
            if made is not None:
                await self.ec2_delete(token, user_id, made["access"])

    async def bucket_tags(self, token: str, user_id: str, project_id: str, bucket: str) -> list[tuple[str, str]]:
        st, raw = await self.s3_call(token, user_id, project_id, "GET", bucket, {"tagging": ""}, ok=(200, 404))
        if st == 404:
            if b"NoSuchTagSet" in raw:
                return []
            raise UpstreamError(404, raw.decode("utf-8", "replace"))
        return s3client.parse_tagging(raw)

    async def put_bucket_tags(self, token: str, user_id: str, project_id: str, bucket: str,
                              tags: list[tuple[str, str]]) -> None:
        if tags:
            await self.s3_call(token, user_id, project_id, "PUT", bucket, {"tagging": ""},
                               s3client.tagging_xml(tags))
        else:
            await self.s3_call(token, user_id, project_id, "DELETE", bucket, {"tagging": ""})
