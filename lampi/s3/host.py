"""Which host a request was sent to, and what that means for S3.

- ``request_host``: the ``Host`` header, or the first ``X-Forwarded-Host`` when the
  peer is one of the ``trusted_proxies`` (never otherwise: anyone could send it).
  SigV4 signs the host the *client* used, so behind a proxy that rewrites ``Host``
  this is what the signature check must see. ``X-Forwarded-Proto`` is not needed
  for that (the scheme is not part of any S3 signature).
- ``forwarded_https``: a trusted proxy says the client used HTTPS (SSE-C keys are
  accepted only over HTTPS, ``lampi.s3.sse``).
- ``host_candidates``: the hosts a signature may have been made for — the request
  host, the raw ``Host`` and the ``public_url``'s host (for proxies that rewrite
  ``Host`` without sending ``X-Forwarded-Host``).
- ``virtual_bucket``: the bucket of a virtual-hosted-style request
  (``<bucket>.<s3_domain>``), or None.
- ``on_s3_port``: the request came in on the S3-only port (``s3_port``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from lampi.core.models import Container
from lampi.core.storage import Storage
from lampi.http.context import SETTINGS
from lampi.http.peer import trusted_peer as _trusted_peer

VHOST_BUCKET = "lampi.s3.vhost_bucket"


def request_host(request: web.Request) -> str:
    if _trusted_peer(request):
        fwd = request.headers.get("X-Forwarded-Host", "")
        first = fwd.split(",", 1)[0].strip()
        if first:
            return first
    return request.headers.get("Host", "")


def forwarded_https(request: web.Request) -> bool:
    """The client reached a trusted proxy over HTTPS (its ``X-Forwarded-Proto``)."""
    if not _trusted_peer(request):
        return False
    proto = request.headers.get("X-Forwarded-Proto", "").split(",", 1)[0].strip().lower()
    return proto == "https"


def host_candidates(request: web.Request) -> list[str]:
    settings = request.app[SETTINGS]
    if not settings.trusted_proxies and not settings.public_url:  # the default: Host, nothing else
        host = request.headers.get("Host", "")
        return [host] if host else []
    hosts = [request_host(request), request.headers.get("Host", "")]
    public = settings.public_url
    if public:
        hosts.append(urlsplit(public).netloc)
    return [h for h in dict.fromkeys(hosts) if h]


def _hostname(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):  # IPv6 literal
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def virtual_bucket(request: web.Request) -> str | None:
    """``<bucket>`` of ``<bucket>.<s3_domain>[:port]``; None for any other host.
    The name is returned as sent (lower-cased, as DNS is case-insensitive); the
    S3 layer rejects names that are not valid buckets."""
    domain = request.app[SETTINGS].s3_domain
    if not domain:  # the default: no virtual hosts (asked up to three times a request)
        return None
    domain = domain.strip().lower().strip(".")
    if not domain:
        return None
    name = _hostname(request_host(request))
    suffix = "." + domain
    if name.endswith(suffix):
        return name[: -len(suffix)]
    return None


def on_s3_port(request: web.Request) -> bool:
    port = request.app[SETTINGS].s3_port
    if not port or request.transport is None:
        return False
    sockname = request.transport.get_extra_info("sockname")
    return bool(sockname) and sockname[1] == port


def split_tenant(per_project: bool, name: str) -> tuple[str | None, str]:
    """(tenant, bucket) of a bucket as a request names it. In the per-project namespace
    ``<project_id>:<bucket>`` names another project's bucket, as RGW's tenants
    (``tenant:bucket``): how anonymous callers (public buckets) and other projects
    (ACL grants) reach it. In the global namespace a name is the bucket's whole name."""
    if per_project and ":" in name:
        tenant, _, bucket = name.partition(":")
        return tenant, bucket
    return None, name


async def find_bucket(storage: Storage, name: str, project_id: str | None) -> Container | None:
    """The bucket ``name`` (as the request names it, see ``split_tenant``) means to a
    caller of ``project_id`` (None: anonymous)."""
    tenant, bucket = split_tenant(storage.per_project, name)
    return await storage.lookup(tenant or project_id, bucket)
