"""Versioning details as OpenStack Swift 2.38 has them (issue 11): ``X-Versions-Location``
shown as sent, ``?version-id=null`` DELETEs, COPY of a version, a TempURL carrying a
``version-id`` (ignored, as Swift's tempurl keeps only its own parameters)."""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

import pytest
import requests
from swiftclient import ClientException
from swiftclient.utils import generate_temp_url

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import Raw, new_account


@pytest.fixture(scope="module")
def acct(server: LampiServer):  # noqa: ANN201
    return new_account(server)


def test_versions_location_is_shown_as_sent(acct, unique: str) -> None:  # noqa: ANN001
    c = acct.conn
    archive = unique + "-vers ä"
    c.put_container(archive)
    c.put_container(unique, headers={"X-Versions-Location": quote(archive)})
    raw = Raw(acct.token, acct.url)
    assert raw("HEAD", f"/{unique}").headers["X-Versions-Location"] == quote(archive)  # swiftclient unquotes
    c.put_object(unique, "o", b"v1")
    c.put_object(unique, "o", b"v2")
    assert len(c.get_container(archive)[1]) == 1  # the quoted name still names the archive
    c.post_container(unique, {"X-History-Location": quote(archive, safe="ä")})
    assert raw("HEAD", f"/{unique}").headers["X-History-Location"] == quote(archive, safe="ä")


def test_delete_null_version_in_a_legacy_container(acct, unique: str) -> None:  # noqa: ANN001
    """``DELETE ?version-id=null`` where legacy versioned_writes (stack mode) is on is an
    ordinary DELETE: the previous version comes back."""
    c = acct.conn
    c.put_container(unique + "-v")
    c.put_container(unique, headers={"X-Versions-Location": unique + "-v"})
    for body in (b"version1", b"version2", b"version3"):
        c.put_object(unique, "o", body)
    c.delete_object(unique, "o", query_string="version-id=null")
    assert c.get_object(unique, "o")[1] == b"version2"


def test_delete_null_version_of_a_versioned_object(acct, unique: str) -> None:  # noqa: ANN001
    """In an object-versioned container, ``DELETE ?version-id=null`` removes what is current
    (the link to the newest version) and no version."""
    c = acct.conn
    c.put_container(unique, headers={"X-Versions-Enabled": "true"})
    c.put_object(unique, "o", b"version1")
    c.put_object(unique, "o", b"version2")
    c.delete_object(unique, "o", query_string="version-id=null")
    with pytest.raises(ClientException) as exc:
        c.get_object(unique, "o")
    assert exc.value.http_status == 404
    rows = Raw(acct.token, acct.url)("GET", f"/{unique}?versions").json()
    assert [(r["name"], r["is_latest"]) for r in rows] == [("o", False), ("o", False)]


def test_copy_a_version(acct, unique: str) -> None:  # noqa: ANN001
    """COPY ``?version-id=<id>`` copies that version (to a new version of the destination)."""
    c = acct.conn
    c.put_container(unique, headers={"X-Versions-Enabled": "true"})
    rd: dict = {}
    c.put_object(unique, "o", b"version1", content_type="text/v1", response_dict=rd)
    v1 = rd["headers"]["x-object-version-id"]
    c.put_object(unique, "o", b"version2")
    r = Raw(acct.token, acct.url)("COPY", f"/{unique}/o?version-id={v1}",
                                  headers={"Destination": f"{unique}/o"})
    assert r.status_code == 201, r.text
    v3 = r.headers["X-Object-Version-Id"]
    assert v3 not in (v1, "null")
    headers, body = c.get_object(unique, "o")
    assert body == b"version1" and headers["content-type"] == "text/v1"
    assert headers["x-object-version-id"] == v3
    r = Raw(acct.token, acct.url)("COPY", f"/{unique}/o?version-id=1.00000",
                                  headers={"Destination": f"{unique}/x"})
    assert r.status_code == 404


def test_tempurl_ignores_version_id(server: LampiServer, unique: str) -> None:
    """Swift's tempurl passes on only its own parameters: a ``version-id`` added to a
    temp URL is ignored and the current version served."""
    a = new_account(server)
    a.conn.post_account({"X-Account-Meta-Temp-URL-Key": "k"})
    a.conn.put_container(unique, headers={"X-Versions-Enabled": "true"})
    rd: dict = {}
    a.conn.put_object(unique, "o", b"version2", response_dict=rd)
    v2 = rd["headers"]["x-object-version-id"]
    a.conn.put_object(unique, "o", b"version3!!!")
    path = urlsplit(a.url).path + f"/{unique}/o"
    url = generate_temp_url(path, int(time.time()) + 600, "k", "GET")
    base = urlsplit(a.url)
    r = requests.get(f"{base.scheme}://{base.netloc}{url}&version-id={v2}", timeout=30)
    assert r.status_code == 200 and r.content == b"version3!!!"


def test_stack_delete_over_delete_markers(acct, unique: str) -> None:  # noqa: ANN001
    """Stack mode over history mode's delete markers, as Swift's legacy versioned_writes:
    a DELETE with a marker on top restores what lies below it, and with only another
    marker below just removes the top marker (204, not 404)."""
    c = acct.conn
    arch = unique + "-v"
    c.put_container(arch)
    c.put_container(unique, headers={"X-History-Location": arch})
    c.put_object(unique, "o", b"version1")
    c.put_object(unique, "o", b"version2")
    c.delete_object(unique, "o")
    with pytest.raises(ClientException) as exc:
        c.delete_object(unique, "o")  # nothing current: 404, a second marker all the same
    assert exc.value.http_status == 404
    assert int(c.head_container(arch)["x-container-object-count"]) == 4
    c.post_container(unique, {"X-Versions-Location": arch})
    c.delete_object(unique, "o")  # the top marker goes
    assert int(c.head_container(arch)["x-container-object-count"]) == 3
    assert int(c.head_container(unique)["x-container-object-count"]) == 0
    c.delete_object(unique, "o")  # the next marker goes and version2 comes back
    assert c.get_object(unique, "o")[1] == b"version2"
    assert int(c.head_container(arch)["x-container-object-count"]) == 1


def test_a_version_that_is_a_symlink(acct, unique: str) -> None:  # noqa: ANN001
    """GET ``?version-id`` of a version that is a symlink follows it (``?symlink=get``
    gives the link); COPY of it with ``symlink=get`` makes the link current again."""
    c = acct.conn
    c.put_container(unique, headers={"X-Versions-Enabled": "true"})
    c.put_object(unique, "target", b"target object data")
    rd: dict = {}
    c.put_object(unique, "link", b"", headers={"X-Symlink-Target": f"{unique}/target"}, response_dict=rd)
    link_vid = rd["headers"]["x-object-version-id"]
    c.put_object(unique, "link", b"this is not a symlink")
    headers, body = c.get_object(unique, "link", query_string=f"version-id={link_vid}")
    assert body == b"target object data" and headers["x-object-version-id"] == link_vid
    headers, body = c.get_object(unique, "link", query_string=f"version-id={link_vid}&symlink=get")
    assert body == b"" and headers["content-type"] == "application/symlink"
    raw = Raw(acct.token, acct.url)
    r = raw("COPY", f"/{unique}/link?version-id={link_vid}&symlink=get", headers={"Destination": f"{unique}/link"})
    assert r.status_code == 201, r.text
    assert c.get_object(unique, "link")[1] == b"target object data"
    assert c.head_object(unique, "link", query_string="symlink=get")["x-symlink-target"] == f"{unique}/target"
