"""Who is on the other end of a request: the client's address and whether it came
over TLS, seen through the ``trusted_proxies`` (their ``X-Forwarded-*`` headers are
believed, nobody else's). Used for S3 virtual hosts and signatures (the host the client
used) and for bucket-policy conditions (``aws:SourceIp``, ``aws:SecureTransport``), by
S3 and Swift requests alike."""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

from lampi.http.context import SETTINGS


@functools.lru_cache(maxsize=16)
def _networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in spec.split(","):
        part = part.strip()
        if part:
            nets.append(ipaddress.ip_network(part, strict=False))
    return tuple(nets)


def _trusted(spec: str, addr: str) -> bool:
    try:
        a = ipaddress.ip_address(addr.strip())
        return any(a in net for net in _networks(spec))
    except ValueError:
        return False


def trusted_peer(request: web.Request) -> bool:
    """Is the TCP peer one of the ``trusted_proxies``?"""
    spec = request.app[SETTINGS].trusted_proxies
    if not spec or not request.remote:
        return False
    return _trusted(spec, request.remote)


def client_ip(request: web.Request) -> str:
    """The client's address: the peer's, or behind trusted proxies the right-most
    ``X-Forwarded-For`` entry that is not itself a trusted proxy."""
    peer = request.remote or ""
    if not trusted_peer(request):
        return peer
    spec = request.app[SETTINGS].trusted_proxies
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(spec, hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return hops[0] if hops else peer


def is_secure(request: web.Request) -> bool:
    """Did the client connect over TLS (to lampi, or to a trusted proxy that says so)?"""
    if request.secure:
        return True
    if trusted_peer(request):
        return request.headers.get("X-Forwarded-Proto", "").split(",", 1)[0].strip().lower() == "https"
    return False


def policy_env(request: web.Request, user_id: str = "", user_name: str = "") -> dict[str, list[str]]:
    """The request context keys bucket policies may test that every request has
    (``aws:*``); S3 adds its own (``lampi.s3.policy``)."""
    import time

    now = time.time()
    env = {
        "aws:sourceip": [client_ip(request)],
        "aws:securetransport": ["true" if is_secure(request) else "false"],
        "aws:currenttime": [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))],
        "aws:epochtime": [str(int(now))],
        "aws:principaltype": ["User" if user_id else "Anonymous"],
    }
    for key, header in (("aws:referer", "Referer"), ("aws:useragent", "User-Agent")):
        if header in request.headers:
            env[key] = [request.headers[header]]
    if user_id:
        env["aws:userid"] = [user_id]
    if user_name:
        env["aws:username"] = [user_name]
    return env
