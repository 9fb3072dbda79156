"""Swift's bulk middleware: ?bulk-delete (swiftclient's and the swift CLI's bulk path)
and ?extract-archive=tar|tar.gz|tar.bz2, with Swift's response formats."""

from __future__ import annotations

import io
import json
import tarfile
from urllib.parse import quote

import pytest
import requests
from swiftclient import ClientException

from tests.functional.conftest import LampiServer


def _tar(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _text_fields(body: str) -> dict[str, str]:
    out = {}
    for line in body.strip().splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            out[k] = v
    return out


# -- bulk delete -------------------------------------------------------------------------


def test_bulk_delete_json_with_swiftclient(swift_conn, unique: str) -> None:  # noqa: ANN001
    swift_conn.put_container(unique)
    swift_conn.put_container(unique + "-empty")
    for n in ("a", "b c", "dir/ü"):
        swift_conn.put_object(unique, n, b"x")
    swift_conn.put_container(unique + "-full")
    swift_conn.put_object(unique + "-full", "keep", b"keep")
    names = [f"/{unique}/a", f"/{unique}/b c", f"/{unique}/dir/ü", f"/{unique}/missing",
             f"/{unique}-empty", f"/{unique}-full"]
    body = b"".join(quote(n).encode() + b"\n" for n in names)
    headers, resp = swift_conn.post_account(headers={"Accept": "application/json", "Content-Type": "text/plain"},
                                            query_string="bulk-delete", data=body)
    assert headers["content-type"].startswith("application/json")
    result = json.loads(resp)
    assert result["Number Deleted"] == 4
    assert result["Number Not Found"] == 1
    assert result["Response Status"] == "409 Conflict"
    assert result["Errors"] == [[quote(f"/{unique}-full"), "409 Conflict"]]
    assert swift_conn.get_container(unique)[1] == []
    assert swift_conn.get_object(unique + "-full", "keep")[1] == b"keep"  # untouched
    with pytest.raises(ClientException):
        swift_conn.head_container(unique + "-empty")


def test_bulk_delete_text_and_xml(token_and_url, swift_conn, unique: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "o1", b"1")
    swift_conn.put_object(unique, "o2", b"2")
    r = requests.post(f"{url}?bulk-delete", headers={"X-Auth-Token": token, "Content-Type": "text/plain"},
                      data=f"{unique}/o1\n")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    f = _text_fields(r.text)
    assert f == {"Number Deleted": "1", "Number Not Found": "0", "Response Body": "",
                 "Response Status": "200 OK"}
    assert r.text.rstrip().endswith("Errors:")
    r = requests.delete(f"{url}?bulk-delete", headers={"X-Auth-Token": token, "Accept": "application/xml"},
                        data=f"/{unique}/o2\n/{unique}/o2\n")
    assert r.status_code == 200
    assert "<number_deleted>1</number_deleted>" in r.text
    assert "<number_not_found>1</number_not_found>" in r.text
    assert "<response_status>200 OK</response_status>" in r.text and r.text.rstrip().endswith("</delete>")


def test_bulk_xml_answers_parse_with_and_without_heartbeat(token_and_url, swift_conn, unique) -> None:  # noqa: ANN001
    """Swift's bulk sends the XML declaration first, keep-alive spaces after it and
    ``\r\n\r\n`` before the result: the body stays a valid XML document when a slow
    request (here: a request body paused past the 10 s heartbeat) gets heartbeats."""
    import threading
    import time
    import xml.etree.ElementTree as ET

    token, url = token_and_url
    decl = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    swift_conn.put_container(unique)
    for i in range(3):
        swift_conn.put_object(unique, f"o{i}", b"x")
    h = {"X-Auth-Token": token, "Accept": "application/xml"}
    # fast: the declaration, then the document
    r = requests.post(f"{url}?bulk-delete", headers={**h, "Content-Type": "text/plain"}, data=f"/{unique}/o0\n")
    assert r.status_code == 200 and r.content.startswith(decl + b"<delete>"), r.content
    assert ET.fromstring(r.content).findtext("number_deleted") == "1"

    def slow(first: bytes, rest: bytes):  # noqa: ANN202
        yield first
        time.sleep(10.8)  # past bulk's YIELD_FREQUENCY (10 s): at least one heartbeat space
        yield rest

    out: dict[str, requests.Response] = {}

    def delete() -> None:
        out["delete"] = requests.post(f"{url}?bulk-delete", headers={**h, "Content-Type": "text/plain"},
                                      data=slow(f"/{unique}/o1\n".encode(), f"/{unique}/o2\n".encode()), timeout=60)

    def extract() -> None:
        archive = _tar({"a.txt": b"a", "b.txt": b"b"})
        out["extract"] = requests.put(f"{url}/{unique}?extract-archive=tar", headers=h,
                                      data=slow(archive[:512], archive[512:]), timeout=60)

    threads = [threading.Thread(target=delete), threading.Thread(target=extract)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for kind, root_tag, counter, want in (("delete", "delete", "number_deleted", "2"),
                                          ("extract", "extract", "number_files_created", "2")):
        r = out[kind]
        assert r.status_code == 200, (kind, r.text)
        assert r.content.startswith(decl + b" "), (kind, r.content)  # heartbeat after the declaration
        assert b"\r\n\r\n<" + root_tag.encode() + b">" in r.content, (kind, r.content)
        root = ET.fromstring(r.content)
        assert root.tag == root_tag and root.findtext(counter) == want, (kind, r.content)
    assert sorted(o["name"] for o in swift_conn.get_container(unique)[1]) == ["a.txt", "b.txt"]


def test_bulk_delete_too_many_and_bad_input(token_and_url, swift_conn, unique: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "o", b"still here")
    h = {"X-Auth-Token": token, "Accept": "application/json"}
    body = (f"/{unique}/o\n" + "".join(f"/{unique}/n{i}\n" for i in range(10001))).encode()
    r = requests.post(f"{url}?bulk-delete", headers=h, data=body)
    assert r.status_code == 200
    res = r.json()
    assert res["Response Status"] == "413 Request Entity Too Large"
    assert res["Response Body"] == "Maximum Bulk Deletes: 10000 per request"
    assert res["Number Deleted"] == 0
    assert swift_conn.get_object(unique, "o")[1] == b"still here"  # nothing deleted
    # a JSON body is not accepted (only newline-separated names)
    r = requests.post(f"{url}?bulk-delete", headers={**h, "Content-Type": "application/json"},
                      data=json.dumps([f"/{unique}/o"]))
    assert r.json()["Response Status"] == "406 Not Acceptable"
    # nothing to delete
    r = requests.post(f"{url}?bulk-delete", headers=h, data=b"\n\n")
    assert r.json()["Response Status"] == "400 Bad Request"
    assert r.json()["Response Body"] == "Invalid bulk delete."
    # an over-long line
    r = requests.post(f"{url}?bulk-delete", headers=h, data=b"/" + b"x" * 5000)
    assert r.json()["Response Status"] == "400 Bad Request"
    assert r.json()["Response Body"] == "Invalid File Name"
    assert swift_conn.get_object(unique, "o")[1] == b"still here"


def test_swift_cli_delete_uses_bulk_delete(openrc_env, swift_conn, unique: str) -> None:  # noqa: ANN001
    from tests.functional.test_swift_cli import swift

    swift_conn.put_container(unique)
    for i in range(30):  # more than 2 * object threads: the CLI switches to bulk delete
        swift_conn.put_object(unique, f"obj{i:02d}", b"x")
    out = swift(openrc_env, "delete", unique, "--verbose")
    assert "obj29" in out.stdout
    with pytest.raises(ClientException) as exc:
        swift_conn.head_container(unique)
    assert exc.value.http_status == 404


def test_info_advertises_bulk(server: LampiServer) -> None:
    info = requests.get(f"{server.url}/info").json()
    assert info["bulk_delete"] == {"max_deletes_per_request": 10000, "max_failed_deletes": 1000}
    assert info["bulk_upload"] == {"max_containers_per_extraction": 10000, "max_failed_extractions": 1000}


# -- extract archive ---------------------------------------------------------------------


@pytest.mark.parametrize("kind,mode", [("tar", "w"), ("tar.gz", "w:gz"), ("tar.bz2", "w:bz2")])
def test_extract_archive_into_account(token_and_url, swift_conn, unique: str, kind: str, mode: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    files = {f"{unique}/a.txt": b"alpha", f"./{unique}/sub/b.bin": b"\x00" * 3000,
             f"{unique}-2/c": b"c", "toplevel.txt": b"ignored"}
    r = requests.put(f"{url}?extract-archive={kind}", headers={"X-Auth-Token": token, "Accept": "application/json"},
                     data=_tar(files, mode))
    assert r.status_code == 200, r.text
    res = r.json()
    assert res == {"Response Status": "201 Created", "Response Body": "", "Number Files Created": 3,
                   "Errors": []}
    assert swift_conn.get_object(unique, "a.txt")[1] == b"alpha"
    h, body = swift_conn.get_object(unique, "sub/b.bin")
    assert body == b"\x00" * 3000 and h["content-type"] == "application/octet-stream"
    assert swift_conn.get_object(unique + "-2", "c")[1] == b"c"
    assert swift_conn.get_object(unique, "a.txt")[0]["content-type"] == "text/plain"


def test_extract_archive_into_container_streamed_chunked(token_and_url, swift_conn, unique: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    swift_conn.put_container(unique)
    big = bytes(range(256)) * 4096  # 1 MiB
    data = _tar({"x/big": big, "y": b"why"}, "w:gz")

    def gen():  # noqa: ANN202 - chunked upload, no Content-Length
        for i in range(0, len(data), 7000):
            yield data[i:i + 7000]

    r = requests.put(f"{url}/{unique}?extract-archive=tar.gz", headers={"X-Auth-Token": token}, data=gen())
    assert r.status_code == 200
    f = _text_fields(r.text)
    assert f["Number Files Created"] == "2" and f["Response Status"] == "201 Created"
    assert swift_conn.get_object(unique, "x/big")[1] == big
    assert swift_conn.get_object(unique, "y")[1] == b"why"


def test_extract_archive_malformed_and_unsupported(token_and_url, swift_conn, unique: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "keep", b"keep")
    h = {"X-Auth-Token": token, "Accept": "application/json"}
    r = requests.put(f"{url}/{unique}?extract-archive=tar", headers=h, data=b"this is not a tar file" * 100)
    assert r.status_code == 200
    res = r.json()
    assert res["Response Status"] == "400 Bad Request"
    assert res["Response Body"].startswith("Invalid Tar File: ")
    assert res["Number Files Created"] == 0
    # a truncated archive: the partial member is not stored
    good = _tar({"part": b"p" * 20000})
    r = requests.put(f"{url}/{unique}?extract-archive=tar", headers=h, data=good[:5000])
    assert r.json()["Response Status"] == "400 Bad Request"
    with pytest.raises(ClientException):
        swift_conn.head_object(unique, "part")
    # gzip claimed, plain tar sent
    r = requests.put(f"{url}/{unique}?extract-archive=tar.gz", headers=h, data=good)
    assert r.json()["Response Status"] == "400 Bad Request"
    # no regular files
    r = requests.put(f"{url}/{unique}?extract-archive=tar", headers=h, data=_tar({}))
    assert r.json()["Response Body"] == "Invalid Tar File: No Valid Files"
    # an unknown format is a plain 400
    r = requests.put(f"{url}/{unique}?extract-archive=zip", headers=h, data=good)
    assert r.status_code == 400 and r.text == "Unsupported archive format"
    assert [o["name"] for o in swift_conn.get_container(unique)[1]] == ["keep"]


def test_extract_archive_per_item_errors(token_and_url, swift_conn, server: LampiServer, unique: str) -> None:  # noqa: ANN001
    from tests.functional.swift_helpers import new_account

    token, url = token_and_url
    other = new_account(server)
    other.conn.put_container(unique + "-theirs")
    long_name = "n" * 1100
    files = {f"{unique}/ok": b"ok", f"{unique}/{long_name}": b"x", f"{unique}-theirs/x": b"nope"}
    r = requests.put(f"{url}?extract-archive=tar", headers={"X-Auth-Token": token, "Accept": "application/json"},
                     data=_tar(files))
    res = r.json()
    assert res["Number Files Created"] == 1
    assert res["Response Status"] == "400 Bad Request"
    errs = {name: status for name, status in res["Errors"]}
    assert errs[quote(f"{unique}/{long_name}")] == "412 Precondition Failed"
    assert errs[quote(f"{unique}-theirs/x")] == "403 Forbidden"
    assert other.conn.get_container(unique + "-theirs")[1] == []
    assert swift_conn.get_object(unique, "ok")[1] == b"ok"
