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
    c.put_object(unique, "401error.html", b"<h1>who?</h1>", content_type="text/html")
    c.put_object(unique, "docs/index.html", b"<h1>docs</h1>", content_type="text/html")
    c.put_object(unique, "docs/a.txt", b"A")
    base = f"{acct.url}/{unique}"
    # the container's root is a listing-level read: anonymous callers need .rlistings,
    # also for its index page (Swift's staticweb asks its auth for the container)
    r = requests.get(base + "/", timeout=10)
    assert r.status_code == 401 and r.text == "<h1>who?</h1>"
    c.post_container(unique, {"X-Container-Read": ".r:*,.rlistings"})
    r = requests.get(base, allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"] == f"{base}/"  # absolute, as swob makes it
    r = requests.get(base + "/", timeout=10)
    assert r.status_code == 200 and r.text == "<h1>home</h1>"
    r = requests.get(base + "/docs", allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"] == f"{base}/docs/"
    assert requests.get(base + "/docs/", timeout=10).text == "<h1>docs</h1>"
    assert requests.get(base + "/docs/a.txt", timeout=10).content == b"A"
    r = requests.get(base + "/missing.html", timeout=10)
    assert r.status_code == 404 and r.text == "<h1>lost</h1>"
    # the owner (no X-Web-Mode) gets the plain API
    r = requests.get(base, headers={"X-Auth-Token": acct.token}, timeout=10)
    assert r.status_code == 200 and "index.html" in r.text.split()


def test_static_web_listings(acct, unique: str) -> None:  # noqa: ANN001
    """Swift's listing page: subdirs first, links relative to the page (``./name``, dots
    %-encoded), the parent link, the CSS path per level, directory markers."""
    c = acct.conn
    c.put_container(unique, headers={"X-Container-Read": ".r:*,.rlistings", "X-Container-Meta-Web-Listings": "true",
                                     "X-Container-Meta-Web-Listings-CSS": "style.css"})
    c.put_object(unique, "a/b.txt", b"B")
    c.put_object(unique, "a/", b"", content_type="application/directory")
    c.put_object(unique, "top.txt", b"T" * 3000)
    r = requests.get(f"{acct.url}/{unique}/", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/html; charset=UTF-8"
    body = r.text
    from urllib.parse import urlsplit

    # the path as requested (the catalog's URL is Allas's /swift/v1/AUTH_<id>)
    label = f"{urlsplit(acct.url).path}/{unique}/"
    assert "/v1/AUTH_" in label
    assert body.startswith(f"<!DOCTYPE html>\n<html>\n <head>\n  <title>Listing of {label}</title>")
    assert '<a href="./a/">a/</a>' in body and '<a href="./top%2Etxt">top.txt</a>' in body
    assert body.index('href="./a/"') < body.index('href="./top%2Etxt"')
    assert '<td class="colsize">3Ki</td>' in body and 'type-text type-plain' in body
    assert 'href="style.css"' in body and 'href="../"' not in body
    r = requests.get(f"{acct.url}/{unique}/a/", timeout=10)  # a directory marker: listed, not served
    assert r.status_code == 200 and '<a href="./b%2Etxt">b.txt</a>' in r.text and 'href="../"' in r.text
    assert 'href="../style.css"' in r.text
    r = requests.get(f"{acct.url}/{unique}/a", allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"] == f"{acct.url}/{unique}/a/"
    # X-Web-Mode: the owner sees the site too
    r = requests.get(f"{acct.url}/{unique}/", headers={"X-Auth-Token": acct.token, "X-Web-Mode": "true"},
                     timeout=10)
    assert r.status_code == 200 and '<a href="./a/">a/</a>' in r.text
    # listings need .rlistings: without it, 401
    c.post_container(unique, {"X-Container-Read": ".r:*"})
    assert requests.get(f"{acct.url}/{unique}/", timeout=10).status_code == 401
    assert requests.get(f"{acct.url}/{unique}/top.txt", timeout=10).status_code == 200


def test_static_web_through_a_prefix_tempurl(acct, unique: str) -> None:  # noqa: ANN001
    """A prefix TempURL opens a private container's listings (the links carry its
    parameters on, the parent link only above the prefix); without listings on, the
    container's root is no TempURL's."""
    import time
    from urllib.parse import urlsplit

    from swiftclient.utils import generate_temp_url

    c = acct.conn
    c.put_container(unique, headers={"X-Container-Meta-Web-Listings": "true",
                                     "X-Container-Meta-Temp-URL-Key": "ckey"})
    c.put_object(unique, "dir/obj", b"o")
    c.put_object(unique, "dir/sub/x", b"x")
    # signed over the /v1 form of the path (swiftclient takes the segment after
    # /v1/<account>/ for the container; lampi accepts it under /swift/v1, as RGW)
    path = urlsplit(acct.url).path.removeprefix("/swift") + f"/{unique}/"
    expires = int(time.time()) + 600
    signed = generate_temp_url(path, expires, "ckey", "GET", prefix=True, absolute=True)
    query = signed.split("?", 1)[1]
    sig = dict(p.split("=", 1) for p in query.split("&"))["temp_url_sig"]
    base = f"{acct.url}/{unique}"
    assert requests.get(f"{base}/dir/", timeout=10).status_code == 401
    r = requests.get(f"{base}/dir/?{query}", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Disposition"] == "inline"
    qs = f"?temp_url_prefix=&amp;temp_url_expires={expires}&amp;temp_url_sig={sig}"
    assert f'<a href="./obj{qs}">obj</a>' in r.text and f'<a href="./sub/{qs}">sub/</a>' in r.text
    assert f'<a href="../{qs}">../</a>' in r.text
    r = requests.get(f"{base}?{query}", allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"] == f"{base}/"
    r = requests.get(f"{base}/?{query}", timeout=10)
    assert r.status_code == 200 and 'href="../' not in r.text and f'<a href="./dir/{qs}">dir/</a>' in r.text
    assert requests.get(f"{base}/dir/obj?{query}", timeout=10).content == b"o"
    c.post_container(unique, {"X-Remove-Container-Meta-Web-Listings": "x"})
    assert requests.get(f"{base}/?{query}", timeout=10).status_code == 401
    assert requests.get(f"{base}/dir/?{query}", timeout=10).status_code == 404


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
