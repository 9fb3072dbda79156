"""An S3 request as the operations see it (``S3Request``): the caller, the bucket and
key it names, and the bucket once found and allowed (``get_bucket``, which runs the
access check the router gives the request: ``lampi.s3.acl.check``, which itself asks
modules that take an ``S3Request``, so this module does not import it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from multidict import MultiDictProxy

from lampi.config import Settings
from lampi.core.authz import Principal
from lampi.core.models import CKey, Container
from lampi.core.storage import Storage
from lampi.http.context import SETTINGS, STORAGE
from lampi.s3 import sigv4
from lampi.s3.errors import S3Error, no_such_bucket, stamp
from lampi.s3.host import find_bucket, split_tenant

AccessCheck = Callable[["S3Request", Container, bool], Awaitable[None]]


@dataclass
class S3Request:
    request: web.Request
    auth: sigv4.Auth
    bucket: str  # the bucket's name (without a ``tenant:`` prefix)
    key: str
    request_id: str
    check: AccessCheck  # may the caller read (write) this bucket? raises AccessDenied (lampi.s3.acl.check)
    tenant: str | None = None  # the project named by ``<tenant>:<bucket>`` (per-project namespace)
    resolved: Container | None = None  # the bucket, once ``get_bucket`` found it
    operation: str = ""  # the S3 operation (its bucket-policy action: lampi.s3.policy.action_of)

    @property
    def principal(self) -> Principal:
        return self.auth.principal

    # read once a request (aiohttp's ``request.app`` walks the match info at each use)
    storage: Storage = field(init=False, repr=False)
    settings: Settings = field(init=False, repr=False)
    query: MultiDictProxy[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        app = self.request.app
        self.storage, self.settings, self.query = app[STORAGE], app[SETTINGS], self.request.query

    def stamp(self, resp: web.StreamResponse) -> web.StreamResponse:
        stamp(resp, self.request_id)
        return resp

    @property
    def scope(self) -> str | None:
        """The project whose bucket names the request's names mean (per-project namespace)."""
        return self.tenant or self.principal.project_id or None

    async def lookup(self) -> Container | None:
        """The request's bucket (no access check)."""
        if self.resolved is None:
            # a request that reads the object first (GET, HEAD; a DELETE reads it before it
            # writes): its record is read with the bucket's (a hint)
            obj = self.key if self.key and self.request.method in ("GET", "HEAD", "DELETE") else None
            self.resolved = await self.storage.lookup(self.scope, self.bucket, obj, self.request.method == "GET")
        return self.resolved

    @property
    def ckey(self) -> CKey:
        """The key of the request's bucket, after ``get_bucket`` (or ``lookup``) found it."""
        assert self.resolved is not None, "the bucket was not looked up"
        return self.resolved.key

    async def get_bucket(self, write: bool, name: str | None = None) -> Container:
        """The bucket (the request's, or ``name`` as a request would name it: a copy
        source), if the caller may read (or write) it: its own project's roles, or the
        ACLs Swift and S3 share (``lampi.s3.acl.check``)."""
        if name is None:
            c = await self.lookup()
            shown = self.bucket
        else:
            c = await find_bucket(self.storage, name, self.principal.project_id or None)
            shown = split_tenant(self.storage.per_project, name)[1]
        if c is None:
            raise no_such_bucket(shown)
        expected = self.request.headers.get("x-amz-expected-bucket-owner")
        if expected is not None and name is None and expected != c.project_id:
            raise S3Error(403, "AccessDenied", "Access Denied")  # owned by another account than expected
        await self.check(self, c, write)
        return c


Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]
