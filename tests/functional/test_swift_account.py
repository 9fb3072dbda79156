"""Swift account API: listings (text/json/xml, paging, prefix/delimiter/markers,
reverse), HEAD counters, POST metadata, /info. Behaviour as OpenStack Swift's."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import swiftclient
from swiftclient.exceptions import ClientException

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import Account, Raw, new_account

NAMES = ["alpha", "beta", "beta_2", "Gamma", "dir-a", "dir-b", "dir2", "zeta"]


@pytest.fixture(scope="module")
def acct(server: LampiServer) -> Account:
    """An account with a known set of containers (and one object in 'beta')."""
    a = new_account(server)
    for n in NAMES:
        a.conn.put_container(n)
    a.conn.put_object("beta", "o1", b"12345")
    return a


def _names(acct: Account) -> list[str]:
    return sorted(NAMES)  # byte order: "Gamma" sorts before "alpha"


def test_listing_text_json_xml_by_format_and_accept(acct: Account) -> None:
    raw = Raw(acct.token, acct.url)
    expected = _names(acct)
    r = raw("GET")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.text.splitlines() == expected

    for how in ({"params": {"format": "json"}}, {"headers": {"Accept": "application/json"}}):
        r = raw("GET", **how)  # type: ignore[arg-type]
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        items = r.json()
        assert [i["name"] for i in items] == expected
        beta = next(i for i in items if i["name"] == "beta")
        assert beta["count"] == 1 and beta["bytes"] == 5
        assert set(beta) == {"name", "count", "bytes", "last_modified", "storage_policy"}

    for how in ({"params": {"format": "xml"}}, {"headers": {"Accept": "application/xml"}}):
        r = raw("GET", **how)  # type: ignore[arg-type]
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/xml; charset=utf-8"
        assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
        root = ET.fromstring(r.content)
        assert root.tag == "account" and root.get("name") == "AUTH_" + acct.project_id
        assert [c.findtext("name") for c in root.findall("container")] == expected
        beta = next(c for c in root.findall("container") if c.findtext("name") == "beta")
        assert beta.findtext("count") == "1" and beta.findtext("bytes") == "5"

    # text/xml is answered as text/xml; q-values choose; format= beats Accept
    r = raw("GET", headers={"Accept": "text/xml"})
    assert r.headers["Content-Type"] == "text/xml; charset=utf-8"
    r = raw("GET", headers={"Accept": "application/json;q=0.2, application/xml;q=0.9"})
    assert r.headers["Content-Type"].startswith("application/xml")
    r = raw("GET", params={"format": "json"}, headers={"Accept": "application/xml"})
    assert r.headers["Content-Type"].startswith("application/json")
    # an unknown format= value means text, whatever Accept says (Swift's FORMAT2CONTENT_TYPE)
    r = raw("GET", params={"format": "yaml"}, headers={"Accept": "application/json"})
    assert r.headers["Content-Type"].startswith("text/plain")
    # nothing acceptable → 406; malformed Accept → 400
    r = raw("GET", headers={"Accept": "image/png"})
    assert r.status_code == 406
    r = raw("GET", headers={"Accept": "garbage"})
    assert r.status_code == 400 and r.text == "Invalid Accept header"


def test_listing_parameters(acct: Account) -> None:
    c = acct.conn
    names = lambda **kw: [x.get("name", x.get("subdir")) for x in c.get_account(**kw)[1]]  # noqa: E731
    everything = _names(acct)
    assert names() == everything
    assert names(prefix="beta") == ["beta", "beta_2"]
    assert names(marker="beta") == [n for n in everything if n > "beta"]
    assert names(end_marker="beta_2") == [n for n in everything if n < "beta_2"]
    assert names(marker="alpha", end_marker="dir2") == ["beta", "beta_2", "dir-a", "dir-b"]
    assert names(limit=3) == everything[:3]
    assert names(prefix="dir", delimiter="-") == ["dir-", "dir2"]
    assert names(delimiter="_") == ["Gamma", "alpha", "beta", "beta_", "dir-a", "dir-b", "dir2", "zeta"]
    assert c.get_account(delimiter="_")[1][3] == {"subdir": "beta_"}

    raw = Raw(acct.token, acct.url)
    r = raw("GET", params={"reverse": "true"})
    assert r.text.splitlines() == everything[::-1]
    r = raw("GET", params={"reverse": "true", "marker": "dir-a", "limit": "2"})
    assert r.text.splitlines() == ["beta_2", "beta"]
    r = raw("GET", params={"reverse": "true", "marker": "dir2", "end_marker": "beta"})
    assert r.text.splitlines() == ["dir-b", "dir-a", "beta_2"]
    r = raw("GET", params={"prefix": "nothing-here"})
    assert r.status_code == 204 and r.text == ""
    r = raw("GET", params={"prefix": "nothing-here", "format": "json"})
    assert r.status_code == 200 and r.json() == []


def test_limit_bounds(acct: Account) -> None:
    raw = Raw(acct.token, acct.url)
    r = raw("GET", params={"limit": "10001"})
    assert r.status_code == 412
    assert r.text == "Maximum limit is 10000"
    r = raw("GET", params={"limit": "10000"})
    assert r.status_code == 200 and len(r.text.splitlines()) == len(NAMES)
    r = raw("GET", params={"limit": "0"})
    assert r.status_code == 204


def test_paging_25_containers(server: LampiServer) -> None:
    a = new_account(server)
    names = sorted(f"page-{i:02d}" for i in range(25))
    for n in names:
        a.conn.put_container(n)
    raw = Raw(a.token, a.url)
    seen: list[str] = []
    marker = ""
    pages = 0
    while True:
        r = raw("GET", params={"limit": "10", "marker": marker, "format": "json"})
        page = [x["name"] for x in r.json()]
        if not page:
            break
        pages += 1
        assert len(page) == min(10, 25 - len(seen)), "pages are full until the end"
        seen += page
        marker = page[-1]
    assert pages == 3 and seen == names
    # swiftclient's own paging (limit is a page size; full_listing follows markers)
    _, listing = a.conn.get_account(limit=10, full_listing=True)
    assert [x["name"] for x in listing] == names
    _, listing = a.conn.get_account(limit=10)
    assert [x["name"] for x in listing] == names[:10]


def test_head_counters_exact(server: LampiServer) -> None:
    a = new_account(server)
    h = a.conn.head_account()
    assert h["x-account-container-count"] == "0"
    assert h["x-account-object-count"] == "0"
    assert h["x-account-bytes-used"] == "0"
    a.conn.put_container("c1")
    a.conn.put_container("c2")
    a.conn.put_object("c1", "a", b"x" * 10)
    a.conn.put_object("c1", "b", b"x" * 7)
    a.conn.put_object("c2", "a", b"x" * 100)
    a.conn.put_object("c1", "a", b"x" * 3)  # overwrite: 10 → 3
    h = a.conn.head_account()
    assert (h["x-account-container-count"], h["x-account-object-count"], h["x-account-bytes-used"]) == ("2", "3", "110")
    a.conn.delete_object("c2", "a")
    a.conn.delete_container("c2")
    h = a.conn.head_account()
    assert (h["x-account-container-count"], h["x-account-object-count"], h["x-account-bytes-used"]) == ("1", "2", "10")
    raw = Raw(a.token, a.url)
    r = raw("HEAD")
    assert r.status_code == 204
    assert "X-Timestamp" in r.headers
    # GET carries the same counters
    r = raw("GET")
    assert r.headers["X-Account-Object-Count"] == "2" and r.headers["X-Account-Bytes-Used"] == "10"


def test_post_account_metadata(server: LampiServer) -> None:
    a = new_account(server)
    a.conn.post_account({"X-Account-Meta-Color": "blue", "X-Account-Meta-Size": "xl"})
    h = a.conn.head_account()
    assert h["x-account-meta-color"] == "blue" and h["x-account-meta-size"] == "xl"
    a.conn.post_account({"X-Remove-Account-Meta-Color": "x", "X-Account-Meta-Size": "s"})
    h = a.conn.head_account()
    assert "x-account-meta-color" not in h and h["x-account-meta-size"] == "s"
    a.conn.post_account({"X-Account-Meta-Size": ""})  # an empty value removes too
    assert "x-account-meta-size" not in a.conn.head_account()
    raw = Raw(a.token, a.url)
    r = raw("POST", headers={"X-Account-Meta-" + "k" * 129: "v"})
    assert r.status_code == 400
    assert r.text == "Metadata name too long: x-account-meta-K" + "k" * 128  # swob title-cases
    r = raw("POST", headers={"X-Account-Meta-Big": "v" * 257})
    assert r.status_code == 400 and r.text == "Metadata value longer than 256: x-account-meta-Big"
    assert r.headers["Content-Type"].startswith("text/plain")
    r = raw("POST", headers={f"X-Account-Meta-K{i}": "v" for i in range(91)})
    assert r.status_code == 400 and r.text == "Too many metadata items; max 90"
    assert not any(k.startswith("x-account-meta-") for k in a.conn.head_account())


def test_other_accounts_are_forbidden(server: LampiServer, acct: Account) -> None:
    other = new_account(server)
    raw = Raw(other.token, acct.url)
    assert raw("GET").status_code == 403
    assert raw("HEAD").status_code == 403
    r = Raw("bogus-token", acct.url)("GET")
    assert r.status_code == 401


def test_info_lists_limits(server: LampiServer, swift_conn: swiftclient.Connection) -> None:
    caps = swift_conn.get_capabilities()
    s = caps["swift"]
    assert s["max_file_size"] == 5 * 1024**3
    assert s["max_meta_count"] == 90
    assert s["max_meta_name_length"] == 128
    assert s["max_meta_value_length"] == 256
    assert s["max_meta_overall_size"] == 4096
    assert s["max_object_name_length"] == 1024
    assert s["max_container_name_length"] == 256
    assert s["container_listing_limit"] == 10000
    assert s["account_listing_limit"] == 10000
    import requests

    r = requests.get(server.url + "/info", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert json.loads(r.text)["swift"] == s
    assert r.headers.get("X-Trans-Id")


def test_swiftclient_account_errors(acct: Account) -> None:
    with pytest.raises(ClientException) as ei:
        acct.conn.get_account(limit=10001)
    assert ei.value.http_status == 412
