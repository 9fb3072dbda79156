"""Connection guard: what a worker does against slow, idle, hostile and broken clients.

aiohttp by itself closes a connection that never completes its request only when its
keep-alive timer runs out (an hour), accepts connections until the process runs out of
file descriptors, then logs every failed ``accept`` (asyncio's loop retries them in a
tight burst), and logs each request its parser rejects with a traceback and the raw
bytes — headers with tokens included. So one client holding a few hundred half-sent
requests (Slowloris) could stop a worker. Here each worker has:

``header_timeout``
    A request's head (request line and headers) must be complete within this many
    seconds: of the connection's opening for its first request, of the head's first
    byte on a kept-alive connection. Trickling bytes does not extend it. An unfinished
    head gets ``408`` and the connection is closed (silently if nothing was sent).
``body_timeout``
    A handler waiting this long for request body bytes that do not come has the body
    cut: ``BodyTimeout`` is raised in the handler's read, an upload in progress is
    aborted as if the client had gone (nothing stored changes), and the outer
    middleware answers ``408`` in the request's protocol and closes the connection.
``keepalive_timeout``
    An idle kept-alive connection (no byte of a next request) is closed after this long
    (aiohttp's own keep-alive timer).
``max_connections``
    Connections per worker. One more closes the connection that has waited longest for
    a request (kept-alive idle or an unfinished head); when every connection has a
    request in progress the newcomer gets ``503`` and is closed at once. Unless set,
    the cap is derived from the open-file limit (``RLIMIT_NOFILE``, whose soft limit
    ``raise_fd_limit`` raises to the hard limit at start), leaving room for the blob
    files and databases requests need, so a worker does not run out of descriptors.

Each request head is also looked at before aiohttp's parser sees it (``HeadFixer``):
bytes beyond ASCII in the request target (a raw UTF-8 or broken name, which Swift
takes as sent and llhttp refuses as "Invalid char in url path") are %-encoded, so the
API answers them (a valid name works, an invalid one gets Swift's 412); and the head
is fed apart from what follows it in the same read, so bytes a client sends after a
head that announced no body (``Content-Length`` missing) become a request of their own
— refused afterwards — instead of taking the first request down with them. When the
parser rejects bytes that arrive while a request's body is being read (a broken chunk),
that body read fails at once rather than waiting for bytes that never come.

When ``accept`` fails anyway (descriptors used up elsewhere), asyncio's default loop
retries once a second (``_SelectorLoop``: one accept per wake-up, not a burst of
failing ones) and the idle connections are shed; uvloop (libuv) drops the pending
connections and carries on. Every line about such clients — rejected requests,
timeouts, the cap, accept errors, errors of aiohttp's protocol and of the event
loop — goes through a ``Throttle`` and is one line without traceback; tracebacks only
at log level debug. Rejected requests are described by the parser's reason only,
never by the bytes received (see ``describe_parse_error``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, InvalidURLError
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from lampi import metrics
from lampi.config import Settings
from lampi.store.meta import arrival
from lampi.http.context import BODY_TIMEOUT, TRANS_ID
from lampi.log import Throttle, scrub

try:  # imported here, by the supervisor, so that the workers it forks share it
    import uvloop
except ImportError:  # a platform uvloop does not build on (Windows): asyncio's default loop
    uvloop = None  # type: ignore[assignment]

log = logging.getLogger("lampi.http")

# descriptors a worker keeps for itself: listening sockets, SQLite (meta.db, -wal, -shm,
# revocations.db) per thread, the event loop, pipes, logging, /dev/urandom ...
FD_RESERVE = 64
# a request in progress may hold a blob file (and a dup of its socket for sendfile)
# besides its socket: the derived cap leaves a second descriptor per connection
FDS_PER_CONNECTION = 2
# the derived cap stops here even with a huge fd limit: an idle connection still costs
# memory (aiohttp's protocol and buffers, some kB)
MAX_DERIVED_CONNECTIONS = 10_000

_RESPONSE_408 = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Length: 16\r\nConnection: close\r\n\r\nRequest Timeout\n")
_RESPONSE_503 = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Length: 34\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                 b"Server busy: too many connections\n")

# one per kind of line, per worker
_THROTTLES = {kind: Throttle(burst=10, window=10.0)
              for kind in ("malformed", "header", "body", "cap", "accept", "protocol", "loop")}


def _note(kind: str, level: int, msg: str, *args: Any, trans_id: str | None = None, **fields: Any) -> None:
    """Log one line about a client event, unless too many of its kind came lately."""
    dropped = _THROTTLES[kind].allow()
    if dropped is None or not log.isEnabledFor(level):
        return
    if dropped:
        fields["suppressed"] = dropped  # lines of this kind dropped since the last one
    log.log(level, msg, *args, extra={"fields": fields, "trans_id": trans_id})


@dataclass(frozen=True, slots=True)
class Limits:
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.header_timeout, settings.body_timeout, settings.keepalive_timeout,
                   settings.max_connections)

    @property
    def tick(self) -> float:
        """How often the timeouts are checked: a fraction of the shortest one, at most 1 s."""
        timeouts = [t for t in (self.header_timeout, self.body_timeout) if t > 0]
        return max(0.05, min([1.0, *(t / 4 for t in timeouts)]))


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard limit; return the soft limit now in
    force (0 where there is no such limit). systemd starts services with a soft limit
    of 1024 and a far higher hard limit, precisely so that servers raise it."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else 1 << 20
    for want in (target, 10240):  # macOS refuses more than OPEN_MAX with an infinite hard limit
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            return want
        except (ValueError, OSError):
            continue
    return soft


def safe_connections(nofile: int) -> int:
    """Connections one worker can hold with ``nofile`` descriptors and room to spare."""
    if nofile <= 0:
        return MAX_DERIVED_CONNECTIONS
    return max(8, min(MAX_DERIVED_CONNECTIONS, (nofile - FD_RESERVE) // FDS_PER_CONNECTION))


def connection_cap(requested: int, nofile: int) -> int:
    """The per-worker cap: ``requested`` if set (> 0), else derived from the fd limit."""
    safe = safe_connections(nofile)
    if requested <= 0:
        return safe
    if requested > safe:
        log.warning("max_connections %d is more than the open-file limit %d leaves room for (%d): "
                    "accept may fail with 'Too many open files'", requested, nofile, safe)
    return requested


_PARSE_REASONS = {
    "InvalidURLError": "Invalid URL",
    "LineTooLong": "Line too long",
    "InvalidHeader": "Invalid HTTP header",
    "BadHttpMethod": "Bad HTTP method",
    "BadStatusLine": "Bad status line",
}
_SAFE_REASON = re.compile(r"[A-Za-z][A-Za-z0-9 ,.()`_-]*")
_QUOTED = re.compile(r"\s*b?['\"]")


def describe_parse_error(exc: BaseException) -> str:
    """The parser's reason for rejecting a request, without the bytes it quotes.

    aiohttp's messages quote the offending line (``Invalid header value char:
    b'X-Auth-Token: ...'``, the request line with its query) or are the raw URL
    itself (``InvalidURLError`` of the pure-Python parser): keep only the leading
    words, up to the first quoted part, and only when they are plain words."""
    text = str(getattr(exc, "message", "") or "")
    if isinstance(exc, InvalidURLError) and "\n" not in text:
        text = ""  # the pure-Python parser's message is the URL itself
    parts: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        cut = _QUOTED.search(line)
        words = (line[: cut.start()] if cut else line).strip().rstrip(":").strip()
        if words and _SAFE_REASON.fullmatch(words):
            parts.append(words)
        if cut or not words or not _SAFE_REASON.fullmatch(words) or len(parts) == 2:
            break
    reason = ": ".join(parts)[:120]
    return reason or _PARSE_REASONS.get(type(exc).__name__, "Malformed request")


# A head longer than this is fed to the parser as it comes (it refuses heads beyond its
# own limits anyway); below it, a head is held until complete.
MAX_HELD_HEAD = 64 * 1024


def head_end(data: bytes) -> int:
    """Where the head at the start of ``data`` ends (after its blank line), or -1."""
    crlf = data.find(b"\n\r\n")
    lf = data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf + 3
    return lf + 2 if lf >= 0 else -1
_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (.+) (HTTP/[0-9]\.[0-9])\r?")


# the methods llhttp parses (HTTP ones); any other method token is a request lampi
# answers itself (405 from the Swift API, as Swift), not a parse error
KNOWN_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH "
    b"UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE "
    b"UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY PRI".split())
UNKNOWN_METHOD = b"UNLINK"  # what an unknown method is parsed as (no lampi API serves it)


def fix_request_line(line: bytes) -> bytes:
    """The request line made acceptable to llhttp, meaning the same: bytes beyond
    ASCII in the target %-encoded (what clients that send raw UTF-8 mean), spaces inside
    the target too (eventlet, Swift's server, takes the target as everything between
    the method and the version); a method llhttp does not know as ``UNKNOWN_METHOD``.
    Anything else is returned unchanged."""
    if line.isascii() and line.count(b" ") == 2 and line[: line.find(b" ")] in KNOWN_METHODS:
        return line
    m = _REQUEST_LINE.fullmatch(line)
    if m is None:
        return line
    method = m.group(1) if m.group(1) in KNOWN_METHODS else UNKNOWN_METHOD
    target = b"".join(b"%%%02X" % c if c >= 0x80 or c == 0x20 else bytes((c,)) for c in m.group(2))
    return method + b" " + target + b" " + m.group(3) + (b"\r" if line.endswith(b"\r") else b"")


class BodyTimeout(web.RequestPayloadError):
    """No request body byte arrived for ``body_timeout`` seconds (see module doc)."""


class GuardedHandler(RequestHandler):
    """aiohttp's protocol, timing each connection (see the module doc).

    ``_g_head_since``: when the head now awaited began (None while none is due: kept
    alive, no byte yet); ``_g_head_got``: some of it arrived; ``_g_busy``: a request is
    parsed and in progress; ``_g_rx``: when bytes last arrived; ``_g_body_waiter``: the
    body read seen waiting at the last sweep, since ``_g_body_wait_since``."""

    __slots__ = ("_g_server", "_g_head_since", "_g_head_got", "_g_busy", "_g_rx",
                 "_g_body_waiter", "_g_body_wait_since", "_g_held", "_g_pass", "_g_last_body", "_g_arrival")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        now = self._loop.time()
        self._g_server: GuardedServer | None = self._manager  # type: ignore[assignment]
        self._g_rx = now
        self._g_head_since: float | None = now  # a new connection owes its first head
        self._g_head_got = False
        self._g_busy = False
        self._g_body_waiter: Any = None
        self._g_body_wait_since = now
        self._g_held = b""  # the start of a head, held until the head is complete
        self._g_pass = False  # this head is too long to hold: feed it as it comes
        self._g_last_body: Any = None  # the body of the request handled last (lingering reads it)
        self._g_arrival = arrival.now()  # stamp of the bytes received last (lampi.store.meta.arrival)
        super().connection_made(transport)
        if self._g_server is not None:
            self._g_server.admit(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._g_last_body = None
        if self._g_server is not None:
            self._g_server.idle.pop(self, None)
            self._g_server.open -= 1
            self._g_server = None
            metrics.note_connection(-1)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        now = self._loop.time()
        self._g_rx = now
        # every byte of a request handled later arrived by now (aiohttp may parse
        # buffered bytes later, e.g. behind a declined upgrade): lampi.store.meta.arrival
        self._g_arrival = arrival.now()
        awaiting = not self._g_busy and (self._request_count == 0 or (
            self._waiter is not None and not self._waiter.done()))
        if awaiting:
            if self._g_head_since is None:  # first byte of a next request's head
                self._g_head_since = now
            self._g_head_got = True
        if (awaiting or self._g_held) and not self._g_pass and not (self._force_close or self._close):
            data = self._g_held + data
            end = head_end(data)
            if end < 0:
                if len(data) <= MAX_HELD_HEAD:
                    self._g_held = data  # the rest of the head is still to come
                    return
                self._g_held, self._g_pass = b"", True
                self._feed(data)
                return
            self._g_held = b""
            head, rest = data[:end], data[end:]
            line_end = head.find(b"\n")
            head = fix_request_line(head[:line_end]) + head[line_end:]
            if self._feed(head) and rest and not (self._force_close or self._close):
                self._feed(rest)  # a body, or a next request: after the head's own message
            return
        self._feed(data)

    def _feed(self, data: bytes) -> bool:
        """Hand ``data`` to aiohttp's protocol; False when its parser refused it."""
        count = self._request_count
        queued = len(self._messages)
        handling = self._g_busy
        super().data_received(data)
        if self._request_count != count:  # a head (or a parse error) is complete
            self._g_head_since = None
            self._g_head_got = False
            self._g_pass = False
            self._set_busy()
            if len(self._messages) > queued and isinstance(self._messages[-1][0], _ErrInfo):
                self._fail_bodies(handling)
                return False
        return True

    def _fail_bodies(self, handling: bool) -> None:
        """The parser refused what came after a head: a body being read will get no more
        bytes. A handler reading it (the request in progress, or one queued behind it) is
        told now instead of waiting for the body timeout; once handled, the connection is
        closed without waiting for the rest (aiohttp's lingering read, which would wait
        for it, is ended)."""
        self._lingering_time = 0.0
        payloads = [p for m, p in self._messages if not isinstance(m, _ErrInfo)]
        if self._current_request is not None:
            payloads.append(self._current_request.content)
        for payload in payloads:
            if not payload.is_eof() and payload.exception() is None:
                payload.set_exception(web.RequestPayloadError("malformed request body"))
        last = self._g_last_body
        if not handling and last is not None and not last.is_eof() and last.exception() is None:
            last.feed_eof()  # no handler reads it any more: the lingering read ends

    def _set_busy(self) -> None:
        self._g_busy = True
        if self._g_server is not None:
            self._g_server.idle.pop(self, None)

    async def _handle_request(self, *args: Any, **kwargs: Any) -> Any:
        self._set_busy()
        if args:
            self._g_last_body = getattr(args[0], "content", None)
            # taken when the request's last bytes (or later ones) were received, so
            # never before its head was complete: lampi.store.meta.arrival
            arrival.set_stamp(self._g_arrival)  # this task handles this request only (aiohttp)
        try:
            return await super()._handle_request(*args, **kwargs)
        finally:
            self._g_busy = False
            self._g_body_waiter = None
            if self._g_server is not None and not self._messages and self.transport is not None:
                self._g_server.idle[self] = None  # newest idle: the last to be shed

    def is_idle(self) -> bool:
        """Waiting for a request (kept alive or an unfinished head), not closing."""
        return not self._g_busy and not self._messages and not self._force_close and self.transport is not None

    def check(self, now: float, limits: Limits) -> None:
        """Apply the header and body timeouts (called every ``limits.tick`` seconds)."""
        if self._force_close or self.transport is None:
            return
        if self._g_busy or self._messages:
            if limits.body_timeout > 0:
                self._check_body(now, limits.body_timeout)
            return
        head = self._g_head_since
        if limits.header_timeout > 0 and head is not None and now - head > limits.header_timeout:
            _note("header", logging.INFO, "closed a connection from %s: request head not complete after %g s",
                  self._peer(), limits.header_timeout, status=408)
            if self._g_head_got:
                self.transport.write(_RESPONSE_408)
            self.force_close()

    def _check_body(self, now: float, timeout: float) -> None:
        request = self._current_request
        if request is None:
            return
        payload = request.content
        waiter = getattr(payload, "_waiter", None)  # set while a read waits for bytes
        if waiter is None or payload.is_eof():
            self._g_body_waiter = None
            return
        if waiter is not self._g_body_waiter:  # a new read began waiting
            self._g_body_waiter, self._g_body_wait_since = waiter, now
            return
        if now - max(self._g_rx, self._g_body_wait_since) > timeout:
            _note("body", logging.INFO, "request body from %s stalled for %g s: answering 408",
                  self._peer(), timeout, trans_id=request.get(TRANS_ID), status=408)
            request[BODY_TIMEOUT] = True
            self._lingering_time = 0.0  # do not wait for the rest of the body afterwards
            payload.set_exception(BodyTimeout(f"no request body received for {timeout:g} s"))

    def refuse(self) -> None:
        if self.transport is not None:
            self.transport.write(_RESPONSE_503)
        self.force_close()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return str(peer[0]) if isinstance(peer, tuple) else str(peer or "-")

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # a request the HTTP parser rejected: one line, the reason without the bytes,
        # and a response that does not echo them either
        reason = describe_parse_error(exc)
        _note("malformed", logging.INFO, "rejected a malformed request from %s: %s", self._peer(), reason,
              status=status, error=type(exc).__name__)
        if request.writer.output_size > 0:
            raise ConnectionError("response already sent")
        resp = web.Response(status=status, text=f"Bad Request: {reason}\n")
        resp.force_close()
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        detail = scrub(f"{type(exc).__name__}: {exc}") if isinstance(exc, BaseException) else ""
        dropped = _THROTTLES["protocol"].allow()
        if dropped is None:
            return
        fields: dict[str, Any] = {"error": detail[:300]}
        if dropped:
            fields["suppressed"] = dropped
        log.error(*args, exc_info=exc if log.isEnabledFor(logging.DEBUG) else None, extra={"fields": fields})


_SERVERS: weakref.WeakSet[GuardedServer] = weakref.WeakSet()


class GuardedServer(web.Server):
    """aiohttp's server (protocol factory) with the cap and the timeout sweep."""

    def __init__(self, handler: Any, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        # connections waiting for a request, the longest-waiting first
        self.idle: OrderedDict[GuardedHandler, None] = OrderedDict()
        self.open = 0  # connections made and not yet lost
        self._tick: asyncio.TimerHandle | None = self._loop.call_later(limits.tick, self._sweep)
        _SERVERS.add(self)

    def __call__(self) -> GuardedHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)

    def admit(self, new: GuardedHandler) -> None:
        self.open += 1
        metrics.note_connection(1)
        self.idle[new] = None
        if self.open <= self.limits.max_connections:
            return
        self.idle.pop(new, None)
        victim = self._longest_idle()
        self.idle[new] = None
        if victim is not None:
            _note("cap", logging.WARNING, "connection limit %d reached: closed the connection idle longest",
                  self.limits.max_connections)
            victim.force_close()
        else:
            _note("cap", logging.WARNING, "connection limit %d reached, every connection busy: "
                  "refused a connection (503)", self.limits.max_connections)
            new.refuse()

    def _longest_idle(self) -> GuardedHandler | None:
        while self.idle:
            h = next(iter(self.idle))
            if h.is_idle():
                return h
            self.idle.pop(h)  # closed or busy meanwhile
        return None

    def shed(self, share: float = 0.1) -> int:
        """Close the longest-idle tenth of the connections (at least one)."""
        n = max(1, int(len(self.idle) * share))
        closed = 0
        while closed < n:
            victim = self._longest_idle()
            if victim is None:
                break
            self.idle.pop(victim, None)
            victim.force_close()
            closed += 1
        return closed

    def _sweep(self) -> None:
        now = self._loop.time()
        for h in list(self._connections):
            if isinstance(h, GuardedHandler):
                h.check(now, self.limits)
        self._tick = self._loop.call_later(self.limits.tick, self._sweep)

    def pre_shutdown(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        super().pre_shutdown()


class GuardedRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a ``GuardedServer``."""

    def __init__(self, app: web.Application, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.keepalive_timeout, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return GuardedServer(base.request_handler, request_factory=base.request_factory,
                             handler_cancellation=base.handler_cancellation, loop=base._loop,
                             limits=self._limits, **base._kwargs)


_ACCEPT_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's error handler: accept failures shed idle connections and are one
    throttled line; anything else is logged by asyncio (scrubbed by the formatters),
    throttled too."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in _ACCEPT_ERRNOS and "accept" in str(context.get("message", "")):
        shed = sum(server.shed() for server in list(_SERVERS))
        _note("accept", logging.WARNING, "cannot accept connections: %s; closed %d idle connection(s), "
              "retrying in 1 s", exc.strerror or exc, shed)
        return
    if _THROTTLES["loop"].allow() is not None:
        loop.default_exception_handler(context)


class _SelectorLoop(asyncio.SelectorEventLoop):  # type: ignore[misc,valid-type]
    """asyncio's default loop accepting one connection per wake-up of the listening socket.

    Its ``_accept_connection`` goes on calling ``accept()`` after one failed with EMFILE,
    up to the backlog (128) times, each failure logged and each scheduling a retry that
    re-arms the socket — thousands of failing accepts and log lines a second. With one
    accept per call a failure removes the socket from the selector and schedules
    exactly one retry, a second later; a socket with more connections pending is simply
    ready again at the next iteration."""

    def _accept_connection(self, protocol_factory: Any, sock: Any, sslcontext: Any = None, server: Any = None,
                           backlog: int = 100, *args: Any, **kwargs: Any) -> None:
        super()._accept_connection(protocol_factory, sock, sslcontext, server, 1, *args, **kwargs)


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop (a dependency wherever it builds: 6-7.5% fewer instructions per small
    GET, HEAD and DELETE than asyncio's loop, docs/benchmarks.md session 17), else
    asyncio's default loop."""
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop() if uvloop is not None else _SelectorLoop()
    loop.set_exception_handler(_exception_handler)
    return loop
