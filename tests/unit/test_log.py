"""The access line: written directly (``lampi.log._write_access``) when the logger tree is
as ``setup_logging`` left it, through ``logging`` otherwise, the same line either way."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import make_mocked_request

from lampi import log


@pytest.fixture
def json_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    log.setup_logging("info", "json")
    try:
        yield out
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        monkeypatch.setattr(log, "_json_handler", None)


def _line(out: io.StringIO) -> dict:
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    out.seek(0)
    out.truncate()
    return json.loads(lines[0])


def _ours_only() -> None:
    """The root's handlers as ``setup_logging`` left them (pytest adds its own to the root
    for each test phase)."""
    logging.root.handlers[:] = [h for h in logging.root.handlers if h is log._json_handler
                                or type(h) is logging.StreamHandler]


def _log_one(**kw: object) -> None:
    _ours_only()
    req = make_mocked_request("GET", "/v1/AUTH_p/c/o?temp_url_sig=abc&x=1", headers={"Host": "h.example"})
    token = log.trans_id_var.set("tx0123")
    try:
        log.access_log(req, 200, 0.0123, None, **kw)  # type: ignore[arg-type]
    finally:
        log.trans_id_var.reset(token)


def test_direct_line_is_the_line_logging_writes(json_log: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    _ours_only()
    assert log._direct(log._json_handler)  # type: ignore[arg-type]
    _log_one(project="p1", bucket="b")
    direct = _line(json_log)
    # the same through logging: the direct path declined (a filter that passes all)
    log.access.addFilter(lambda record: True)
    try:
        assert not log._direct(log._json_handler)  # type: ignore[arg-type]
        _log_one(project="p1", bucket="b")
        via_logging = _line(json_log)
    finally:
        log.access.filters.clear()
    assert list(direct) == list(via_logging)  # same keys, same order
    direct.pop("ts"), via_logging.pop("ts")
    assert direct == via_logging
    assert direct["msg"] == "GET /v1/AUTH_p/c/o 200" and direct["trans_id"] == "tx0123"
    assert "abc" not in json.dumps(direct)  # the signature redacted on both paths


def test_a_handler_of_its_own_gets_the_record(json_log: io.StringIO) -> None:
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    h = Keep()
    log.access.addHandler(h)
    try:
        _log_one()
    finally:
        log.access.removeHandler(h)
    assert len(got) == 1 and got[0].fields["status"] == 200  # type: ignore[attr-defined]
    assert json.loads(json_log.getvalue())["status"] == 200  # and still the root's line


def test_level_above_info_writes_nothing(json_log: io.StringIO) -> None:
    log.access.setLevel(logging.WARNING)
    try:
        _log_one()
    finally:
        log.access.setLevel(logging.NOTSET)
    assert json_log.getvalue() == ""


def test_console_format_goes_through_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    try:
        log.setup_logging("info", "console")
        assert log._json_handler is None
        _log_one()
        assert "[tx0123] GET /v1/AUTH_p/c/o 200" in out.getvalue()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
