"""Static web sites from public containers, and CORS (preflight and actual requests)."""

from __future__ import annotations

import pytest
import requests

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import new_account


@pytest.fixture(scope="module")
def acct(server: LampiServer):  # noqa: ANN201
    return new_account(server)


def test_static_web_site(acct, unique: str) -> None:  # noqa: ANN001
    c = acct.conn
    c.put_container(unique, headers={"X-Container-Read": ".r:*", "X-Container-Meta-Web-Index": "index.html",
                                     "X-Container-Meta-Web-Error": "error.html"})
    c.put_object(unique, "index.html", b"<h1>home</h1>", content_type="text/html")
    c.put_object(unique, "404error.html", b"<h1>lost</h1>", content_type="text/html")
    c.put_object(unique, "docs/index.html", b"<h1>docs</h1>", content_type="text/html")
    c.put_object(unique, "docs/a.txt", b"A")
    base = f"{acct.url}/{unique}"
    r = requests.get(base, allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"].endswith(f"/{unique}/")
    r = requests.get(base + "/", timeout=10)
    assert r.status_code == 200 and r.text == "<h1>home</h1>"
    r = requests.get(base + "/docs", allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"].endswith("/docs/")
    assert requests.get(base + "/docs/", timeout=10).text == "<h1>docs</h1>"
    assert requests.get(base + "/docs/a.txt", timeout=10).content == b"A"
    r = requests.get(base + "/missing.html", timeout=10)
    assert r.status_code == 404 and r.text == "<h1>lost</h1>"
    # the owner (no X-Web-Mode) gets the plain API
    r = requests.get(base, headers={"X-Auth-Token": acct.token}, timeout=10)
    assert r.status_code == 200 and "index.html" in r.text.split()


def test_static_web_listings(acct, unique: str) -> None:  # noqa: ANN001
    c = acct.conn
    c.put_container(unique, headers={"X-Container-Read": ".r:*,.rlistings", "X-Container-Meta-Web-Listings": "true",
                                     "X-Container-Meta-Web-Listings-CSS": "style.css"})
    c.put_object(unique, "a/b.txt", b"B")
    c.put_object(unique, "top.txt", b"T" * 3000)
    r = requests.get(f"{acct.url}/{unique}/", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert 'href="a/"' in r.text and 'href="top.txt"' in r.text and 'href="style.css"' in r.text
    r = requests.get(f"{acct.url}/{unique}/a/", timeout=10)
    assert r.status_code == 200 and 'href="b.txt"' in r.text and 'href="../"' in r.text
    assert 'href="../style.css"' in r.text
    # listings need .rlistings: without it, 401
    c.post_container(unique, {"X-Container-Read": ".r:*"})
    assert requests.get(f"{acct.url}/{unique}/", timeout=10).status_code == 401
    assert requests.get(f"{acct.url}/{unique}/top.txt", timeout=10).status_code == 200


def test_cors_preflight_and_actual(acct, unique: str) -> None:  # noqa: ANN001
    c = acct.conn
    c.put_container(unique, headers={"X-Container-Meta-Access-Control-Allow-Origin": "https://app.example.org",
                                     "X-Container-Meta-Access-Control-Max-Age": "600",
                                     "X-Container-Meta-Access-Control-Expose-Headers": "x-custom"})
    c.put_object(unique, "o", b"cors", headers={"X-Object-Meta-Color": "blue"})
    url = f"{acct.url}/{unique}/o"
    r = requests.options(url, headers={"Origin": "https://app.example.org",
                                       "Access-Control-Request-Method": "GET",
                                       "Access-Control-Request-Headers": "x-auth-token"}, timeout=10)
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert "GET" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Access-Control-Allow-Headers"] == "x-auth-token"
    r = requests.options(url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
                         timeout=10)
    assert r.status_code == 401
    r = requests.options(url, headers={"Origin": "https://app.example.org",
                                       "Access-Control-Request-Method": "PATCH"}, timeout=10)
    assert r.status_code == 401
    assert requests.options(url, timeout=10).status_code == 200  # not a CORS preflight
    # actual request: the object is private, so 401, but with the CORS headers
    r = requests.get(url, headers={"Origin": "https://app.example.org", "X-Auth-Token": acct.token}, timeout=10)
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    expose = r.headers["Access-Control-Expose-Headers"]
    assert "x-object-meta-color" in expose and "x-custom" in expose and "etag" in expose
    r = requests.get(url, headers={"Origin": "https://app.example.org"}, timeout=10)
    assert r.status_code == 401 and "Access-Control-Allow-Origin" in r.headers
    r = requests.get(url, headers={"Origin": "https://evil.example", "X-Auth-Token": acct.token}, timeout=10)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
