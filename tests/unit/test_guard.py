"""Connection guard and log hygiene: what a rejected request may say in the log, the
log throttle, the credential scrubber, the connection cap and the fd limit."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)

from lampi.config import load_settings
from lampi.gateway.guard import Limits, connection_cap, describe_parse_error, fix_request_line, head_end, safe_connections
from lampi.log import JSONFormatter, Throttle, redact_query, scrub

SECRET = "S3cr3tV4lue"


@pytest.mark.parametrize(("exc", "reason"), [
    # the C parser (llhttp): a reason, then the offending bytes
    (BadHttpMessage(f"Invalid header value char:\n\n  b'X-Auth-Token: {SECRET}\\x01'\n        ^"),
     "Invalid header value char"),
    (BadStatusLine(error=f"Bad status line:\n  Invalid HTTP version:\n\n  b'GET /o?temp_url_sig={SECRET} HTTP/9.9'"),
     "Bad status line: Invalid HTTP version"),
    (InvalidURLError(f"Invalid char in url query:\n\n  b'GET /x?password={SECRET}\\x00 HTTP/1.1'\n   ^"),
     "Invalid char in url query"),
    # the pure-Python parser: the raw URL is the whole message, or the bytes are quoted
    (InvalidURLError(f"/b/k?X-Amz-Signature={SECRET}"), "Invalid URL"),
    (InvalidURLError(SECRET), "Invalid URL"),
    (InvalidHeader(f"Authorization: AWS {SECRET}".encode()), "Invalid HTTP header"),
    (LineTooLong(f"X-Auth-Token: {SECRET}".encode(), 8190), "Got more than 8190 bytes when reading"),
    (BadStatusLine(f"GET /?token={SECRET} HTTP/1.1"), "Bad status line"),
    (BadHttpMethod("\x16\x03\x01"), "Received HTTPS traffic on an HTTP port"),
    (BadHttpMessage("Duplicate 'Content-Length' header found."), "Duplicate"),
    (BadHttpMessage(""), "Malformed request"),
])
def test_parse_error_reason_never_quotes_the_request(exc: Exception, reason: str) -> None:
    got = describe_parse_error(exc)
    assert got == reason
    assert SECRET not in got


def test_scrub_removes_credentials_from_free_text() -> None:
    texts = [
        f"b'X-Auth-Token: {SECRET}\\x01'",
        f"Authorization: AWS4-HMAC-SHA256 Credential=AKIA/{SECRET}, SignedHeaders=host, Signature={SECRET}",
        f"{{'x-amz-security-token': '{SECRET}', 'Host': 'x'}}",
        f"<CIMultiDictProxy('Host': 'x', 'X-Storage-Token': '{SECRET}')>",
        f"Cookie: session={SECRET}; other={SECRET}",
        f"GET /c/o?temp_url_sig={SECRET}&temp_url_expires=1",
        f"GET /b/k?X-Amz-Signature={SECRET}&X-Amz-Credential=AKIA%2F{SECRET}&x-amz-security-token={SECRET}",
        f"password={SECRET} token={SECRET}",
        f'{{"password": "{SECRET}", "name": "admin"}}',
        f"X-Container-Meta-Temp-URL-Key: {SECRET}",
        f"KeyError('gAAAAABn{SECRET}xyzxyzxyzxyzxyzxyzxyz_-')",  # a Fernet token, anywhere
    ]
    for text in texts:
        out = scrub(text)
        assert SECRET not in out, (text, out)
        assert "REDACTED" in out
    assert scrub("GET /healthcheck 200 host=x") == "GET /healthcheck 200 host=x"


def test_formatter_scrubs_messages_and_tracebacks_of_any_logger() -> None:
    try:
        raise ValueError(f"bad header X-Auth-Token: {SECRET}")
    except ValueError:
        rec = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling %s", (
            f"GET /o?temp_url_sig={SECRET}",), sys.exc_info())
    line = JSONFormatter().format(rec)
    assert SECRET not in line
    assert "REDACTED" in line


def test_redact_query_covers_tokens_in_queries() -> None:
    q = redact_query(f"X-Auth-Token={SECRET}&temp_url_sig={SECRET}&X-Amz-Signature={SECRET}&format=json")
    assert SECRET not in q and "format=json" in q


def test_throttle_lets_a_burst_through_then_counts() -> None:
    t = Throttle(burst=3, window=0.2)
    assert [t.allow() for _ in range(5)] == [0, 0, 0, None, None]
    time.sleep(0.25)
    assert t.allow() == 2  # the two held back are reported with the next line
    assert t.allow() == 0


def test_connection_cap_follows_the_fd_limit() -> None:
    assert safe_connections(256) == 96
    assert safe_connections(1024) == 480
    assert safe_connections(1 << 20) == 10_000  # memory, not descriptors, bounds it then
    assert connection_cap(0, 1024) == 480
    assert connection_cap(100, 1024) == 100  # set explicitly: as set
    assert connection_cap(5000, 256) == 5000  # honoured, with a warning


def test_limits_from_settings_and_tick() -> None:
    s = load_settings(environ={"LAMPI_HEADER_TIMEOUT": "2", "LAMPI_BODY_TIMEOUT": "30",
                               "LAMPI_KEEPALIVE_TIMEOUT": "5", "LAMPI_MAX_CONNECTIONS": "7"})
    lim = Limits.of(s)
    assert lim == Limits(2.0, 30.0, 5.0, 7)
    assert lim.tick == 0.5  # a quarter of the shortest timeout
    d = Limits.of(load_settings(environ={}))
    assert (d.header_timeout, d.body_timeout, d.keepalive_timeout, d.max_connections) == (20.0, 60.0, 75.0, 0)
    assert d.tick == 1.0


def test_settings_from_toml_and_flags(tmp_path) -> None:  # noqa: ANN001
    cfg = tmp_path / "lampi.toml"
    cfg.write_text("header_timeout = 3\nbody-timeout = 4.5\nkeepalive_timeout = 6\nmax_connections = 9\n")
    s = load_settings({"max_connections": 11}, config_file=str(cfg), environ={})
    assert (s.header_timeout, s.body_timeout, s.keepalive_timeout, s.max_connections) == (3.0, 4.5, 6.0, 11)
    help_text = subprocess.run([sys.executable, "-m", "lampi", "serve", "--help"], capture_output=True,
                               text=True, check=True).stdout
    for flag in ("--header-timeout", "--body-timeout", "--keepalive-timeout", "--max-connections"):
        assert flag in help_text


def test_soft_fd_limit_is_raised_to_the_hard_limit() -> None:
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (100, 300));"
            "from lampi.gateway.guard import raise_fd_limit; n = raise_fd_limit();"
            "print(n, *resource.getrlimit(resource.RLIMIT_NOFILE))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["300", "300", "300"]


@pytest.mark.parametrize(("line", "fixed"), [
    (b"GET /v1/a/c HTTP/1.1\r", b"GET /v1/a/c HTTP/1.1\r"),  # the common case, untouched
    (b"PUT /v1/a/\xe2\x98\x83 HTTP/1.1\r", b"PUT /v1/a/%E2%98%83 HTTP/1.1\r"),  # raw UTF-8
    (b"PUT /v1/a/\x83\x98\xe2 HTTP/1.1", b"PUT /v1/a/%83%98%E2 HTTP/1.1"),  # not UTF-8: the API says so
    (b"GET /info asdf HTTP/1.1\r", b"GET /info%20asdf HTTP/1.1\r"),  # eventlet's target
    (b"LICK /v1/a HTTP/1.1\r", b"UNLINK /v1/a HTTP/1.1\r"),  # unknown method: the API's 405
    (b"get / HTTP/1.1\r", b"UNLINK / HTTP/1.1\r"),
    (b"\x16\x03\x01\x02\x00", b"\x16\x03\x01\x02\x00"),  # not a request line: left to the parser
    (b"GET /x\x00y HTTP/1.1\r", b"GET /x\x00y HTTP/1.1\r"),
])
def test_fix_request_line(line: bytes, fixed: bytes) -> None:
    assert fix_request_line(line) == fixed


def test_head_end() -> None:
    assert head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody") == len(b"GET / HTTP/1.1\r\nA: b\r\n\r\n")
    assert head_end(b"GET / HTTP/1.1\nA: b\n\nbody") == len(b"GET / HTTP/1.1\nA: b\n\n")
    assert head_end(b"GET / HTTP/1.1\r\nA: b\r\n") == -1


def test_workers_run_on_uvloop() -> None:
    """uvloop is a dependency (pyproject.toml): the loop a worker gets is uvloop's; with it
    unimportable (a platform it does not build on), asyncio's own."""
    import uvloop

    from lampi.gateway.guard import new_loop

    loop = new_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    code = ("import sys, asyncio; sys.modules['uvloop'] = None\n"
            "from lampi.gateway.guard import new_loop\n"
            "loop = new_loop(); print(isinstance(loop, asyncio.SelectorEventLoop)); loop.close()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True"
