"""Console sessions: the cookie, CSRF tokens and the server key they are made with.

The session cookie holds the Keystone token (HttpOnly, SameSite=Strict, Max-Age up to
the token's expiry): the browser's scripts never see it and no other site's page can
make the browser send it. A state-changing request must also carry the CSRF token of
its session, HMAC-SHA256(server key, session token), compared in constant time. Before
login there is no session: the login form's token is bound to a random pre-session
cookie instead (login CSRF).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from aiohttp import web

COOKIE = "lampi_console"
PRE_COOKIE = "lampi_console_pre"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


def load_key(path: Path) -> bytes:
    """The console's server key (32 random bytes, made on first use, mode 0600). Every
    worker reads the same file; the first one to create it wins (an atomic link)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    os.unlink(tmp)
    return path.read_bytes()


def csrf_token(key: bytes, session: str) -> str:
    return hmac.new(key, b"csrf\x00" + session.encode(), hashlib.sha256).hexdigest()


def csrf_ok(key: bytes, session: str, sent: str | None) -> bool:
    if not session or not sent:
        return False
    return hmac.compare_digest(csrf_token(key, session).encode(), sent.encode("utf-8", "replace"))


def set_session(request: web.Request, resp: web.StreamResponse, token: str, expires_at: float) -> None:
    max_age = max(int(expires_at - time.time()), 0)
    resp.set_cookie(COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="Strict",
                    secure=request.secure)


def clear_session(resp: web.StreamResponse) -> None:
    resp.del_cookie(COOKIE, path="/")


def pre_session(request: web.Request, resp: web.StreamResponse) -> str:
    """The pre-session value the login form's CSRF token is bound to (made if missing)."""
    value = request.cookies.get(PRE_COOKIE, "")
    if len(value) != 43:
        value = secrets.token_urlsafe(32)
    resp.set_cookie(PRE_COOKIE, value, max_age=3600, path="/", httponly=True, samesite="Strict",
                    secure=request.secure)
    return value
