"""FormPost: browser form uploads built as Swift's formpost docs describe, posted
with requests."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import new_account

KEY = "formkey"


@pytest.fixture(scope="module")
def acct(server: LampiServer):  # noqa: ANN201
    a = new_account(server)
    a.conn.post_account({"X-Account-Meta-Temp-URL-Key": KEY})
    return a


def form(path: str, redirect: str = "", max_file_size: int = 1024, max_file_count: int = 2,
         expires: int | None = None, key: str = KEY, digest=hashlib.sha1) -> dict[str, str]:  # noqa: ANN001
    expires = int(time.time() + 60) if expires is None else expires
    body = f"{path}\n{redirect}\n{max_file_size}\n{max_file_count}\n{expires}"
    sig = hmac.new(key.encode(), body.encode(), digest).hexdigest()
    return {"redirect": redirect, "max_file_size": str(max_file_size), "max_file_count": str(max_file_count),
            "expires": str(expires), "signature": sig}


def post(url: str, fields: dict[str, str], files: list[tuple[str, bytes]]) -> requests.Response:
    # the fields first, then the files, as browsers send a form in document order
    multipart = [(k, (None, v)) for k, v in fields.items()]
    multipart += [(f"file{i}", (name, data, "text/plain")) for i, (name, data) in enumerate(files)]
    return requests.post(url, files=multipart, allow_redirects=False, timeout=30)


def test_upload_with_redirect_and_without(server: LampiServer, acct, unique: str) -> None:  # noqa: ANN001
    acct.conn.put_container(unique)
    url = f"{acct.url}/{unique}/uploads/"
    path = urlsplit(url).path
    r = post(url, form(path, redirect="https://example.org/done"), [("a.txt", b"AAA"), ("b.txt", b"BB")])
    assert r.status_code == 303
    assert r.headers["Location"] == "https://example.org/done?status=201&message="
    assert acct.conn.get_object(unique, "uploads/a.txt")[1] == b"AAA"
    assert acct.conn.get_object(unique, "uploads/b.txt")[1] == b"BB"
    r = post(url, form(path, max_file_size=10, digest=hashlib.sha256), [("c.txt", b"C")])
    assert r.status_code == 201 and r.text == "201 Created"
    r = post(url, form(path, digest=hashlib.sha512), [("d.txt", b"D")])
    assert r.status_code == 201


def test_limits_and_signatures(server: LampiServer, acct, unique: str) -> None:  # noqa: ANN001
    acct.conn.put_container(unique)
    url = f"{acct.url}/{unique}/p/"
    path = urlsplit(url).path
    # too big: 400, and nothing of it is stored
    r = post(url, form(path, max_file_size=10), [("big.txt", b"x" * 100_000)])
    assert r.status_code == 400 and r.text == "FormPost: max_file_size exceeded"
    # too many: the first is stored, then 400 (Swift's behaviour), or a redirect saying so
    r = post(url, form(path, max_file_count=1, redirect="http://r/x?a=1"), [("one.txt", b"1"), ("two.txt", b"2")])
    assert r.status_code == 303
    assert r.headers["Location"] == "http://r/x?a=1&status=400&message=max%20file%20count%20exceeded"
    r = post(url, form(path, expires=int(time.time() - 1)), [("late.txt", b"x")])
    assert r.status_code == 401 and r.text == "FormPost: Form Expired"
    r = post(url, form(path, key="wrong"), [("bad.txt", b"x")])
    assert r.status_code == 401 and r.text == "FormPost: Invalid Signature"
    other_path = urlsplit(f"{acct.url}/{unique}/elsewhere/").path
    r = post(url, form(other_path), [("moved.txt", b"x")])  # signed for another prefix
    assert r.status_code == 401
    r = post(url, {**form(path), "max_file_size": "abc"}, [("nan.txt", b"x")])
    assert r.status_code == 400 and r.text == "FormPost: max_file_size not an integer"
    r = post(url, form(path), [])
    assert r.status_code == 400 and r.text == "400 Bad Request\r\nFormPost: No Files To Process"
    names = [o["name"] for o in acct.conn.get_container(unique)[1]]
    assert names == ["p/one.txt"]


def test_no_key_configured(server: LampiServer, unique: str) -> None:
    b = new_account(server)
    b.conn.put_container(unique)
    url = f"{b.url}/{unique}"
    r = post(url, form(urlsplit(url).path), [("x.txt", b"x")])
    assert r.status_code == 401 and "Invalid Signature" in r.text
    assert b.conn.get_container(unique)[1] == []


def test_a_body_cut_off_inside_the_file_stores_nothing(server: LampiServer, acct, unique: str) -> None:  # noqa: ANN001
    """A form whose body ends inside the file part (no closing boundary) is malformed:
    aiohttp ends such a part quietly, and the truncated file used to be stored."""
    acct.conn.put_container(unique)
    url = f"{acct.url}/{unique}/"
    fields = form(urlsplit(url).path)
    raw = b"".join(b'--XX\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v.encode())
                   for k, v in fields.items())
    raw += b'--XX\r\nContent-Disposition: form-data; name="file1"; filename="cut.txt"\r\n\r\nhalf of it'
    r = requests.post(url, data=raw, headers={"Content-Type": "multipart/form-data; boundary=XX"}, timeout=30)
    assert r.status_code == 400 and r.text.startswith("FormPost: "), r.text
    assert acct.conn.get_container(unique)[1] == []
