"""Static and Dynamic Large Objects, as Swift's slo and dlo middlewares behave:
python-swiftclient, the `swift` CLI (`upload -S`, `--use-slo`), raw requests for bad
input, and Debian's rclone with a swift remote."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from swiftclient.exceptions import ClientException


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def slo_etag(etags: list[str]) -> str:
    return md5("".join(etags).encode())


@pytest.fixture
def cont(swift_conn, unique):  # noqa: ANN001, ANN201
    swift_conn.put_container(unique)
    swift_conn.put_container(unique + "_segments")
    return unique


def _segments(conn, cont: str, sizes: list[int], prefix: str = "seg") -> list[tuple[str, bytes, str]]:  # noqa: ANN001
    out = []
    for i, n in enumerate(sizes):
        data = os.urandom(n)
        name = f"{prefix}/{i:08d}"
        etag = conn.put_object(cont + "_segments", name, data)
        out.append((f"/{cont}_segments/{name}", data, etag))
    return out


def _manifest(segs: list[tuple[str, bytes, str]]) -> str:
    return json.dumps([{"path": p, "etag": e, "size_bytes": len(d)} for p, d, e in segs])


def _put_slo(conn, cont: str, name: str, segs, **kw) -> dict:  # noqa: ANN001
    rd: dict = {}
    conn.put_object(cont, name, _manifest(segs), query_string="multipart-manifest=put", response_dict=rd, **kw)
    return rd


def _raw(token_and_url, method: str, path: str, **kw) -> requests.Response:  # noqa: ANN001
    token, url = token_and_url
    headers = {"X-Auth-Token": token, **kw.pop("headers", {})}
    return requests.request(method, f"{url}/{path}", headers=headers, timeout=30, **kw)


# -- SLO -------------------------------------------------------------------------------------


def test_slo_get_head_ranges_listing_and_manifest_get(swift_conn, cont, token_and_url) -> None:  # noqa: ANN001
    segs = _segments(swift_conn, cont, [100_000, 100_000, 50_000])
    whole = b"".join(d for _p, d, _e in segs)
    etag = slo_etag([e for _p, _d, e in segs])
    rd = _put_slo(swift_conn, cont, "big.bin", segs)
    assert rd["status"] == 201
    assert rd["headers"]["etag"] == f'"{etag}"'

    headers, body = swift_conn.get_object(cont, "big.bin")
    assert body == whole
    assert headers["etag"] == f'"{etag}"'
    assert headers["x-static-large-object"] == "True"
    assert int(headers["content-length"]) == len(whole)
    h = swift_conn.head_object(cont, "big.bin")
    assert int(h["content-length"]) == len(whole) and h["etag"] == f'"{etag}"'

    # a range across the first segment boundary, and a multi-range
    r = _raw(token_and_url, "GET", f"{cont}/big.bin", headers={"Range": "bytes=99990-100009"})
    assert r.status_code == 206 and r.content == whole[99990:100010]
    assert r.headers["Content-Range"] == f"bytes 99990-100009/{len(whole)}"
    r = _raw(token_and_url, "GET", f"{cont}/big.bin", headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == whole[-5:]
    r = _raw(token_and_url, "GET", f"{cont}/big.bin", headers={"Range": "bytes=0-1,249998-"})
    assert r.status_code == 206 and r.headers["Content-Type"].startswith("multipart/byteranges")
    assert whole[:2] in r.content and whole[-2:] in r.content
    r = _raw(token_and_url, "GET", f"{cont}/big.bin", headers={"Range": f"bytes={len(whole)}-"})
    assert r.status_code == 416

    # conditionals compare against the SLO ETag
    assert _raw(token_and_url, "GET", f"{cont}/big.bin", headers={"If-None-Match": f'"{etag}"'}).status_code == 304
    assert _raw(token_and_url, "GET", f"{cont}/big.bin", headers={"If-Match": '"nope"'}).status_code == 412
    assert _raw(token_and_url, "GET", f"{cont}/big.bin", headers={"If-Match": etag}).status_code == 200

    # multipart-manifest=get: the stored JSON; format=raw: the PUT-able form
    r = _raw(token_and_url, "GET", f"{cont}/big.bin?multipart-manifest=get")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json; charset=utf-8"
    stored = r.json()
    assert [(s["name"], s["hash"], s["bytes"]) for s in stored] == [(p, e, len(d)) for p, d, e in segs]
    assert r.headers["Etag"] == md5(r.content)
    raw = _raw(token_and_url, "GET", f"{cont}/big.bin?multipart-manifest=get&format=raw").json()
    assert raw == [{"path": p, "etag": e, "size_bytes": len(d)} for p, d, e in segs]
    # ... which can be PUT back as a manifest
    r = _raw(token_and_url, "PUT", f"{cont}/again.bin?multipart-manifest=put", data=json.dumps(raw))
    assert r.status_code == 201, r.text
    assert swift_conn.get_object(cont, "again.bin")[1] == whole

    # listing: total bytes, the manifest's MD5 as hash and the SLO ETag as slo_etag;
    # the container's bytes-used counts the manifest JSON, not the total
    _h, listing = swift_conn.get_container(cont)
    item = next(i for i in listing if i["name"] == "big.bin")
    assert item["bytes"] == len(whole)
    assert item["hash"] == md5(_raw(token_and_url, "GET", f"{cont}/big.bin?multipart-manifest=get").content)
    assert item["slo_etag"] == f'"{etag}"'
    ch = swift_conn.head_container(cont)
    assert int(ch["x-container-bytes-used"]) < 10_000


def test_slo_nested_and_ranged_segments(swift_conn, cont) -> None:  # noqa: ANN001
    segs = _segments(swift_conn, cont, [1000, 2000])
    _put_slo(swift_conn, cont, "inner", segs)
    inner = swift_conn.head_object(cont, "inner")
    inner_data = b"".join(d for _p, d, _e in segs)
    extra = _segments(swift_conn, cont, [500], prefix="x")
    manifest = [
        {"path": f"/{cont}/inner", "etag": inner["etag"].strip('"'), "size_bytes": 3000},
        {"path": extra[0][0], "range": "100-199"},
        {"path": f"/{cont}/inner", "range": "-10"},
    ]
    swift_conn.put_object(cont, "outer", json.dumps(manifest), query_string="multipart-manifest=put")
    _h, body = swift_conn.get_object(cont, "outer")
    assert body == inner_data + extra[0][1][100:200] + inner_data[-10:]
    stored = json.loads(swift_conn.get_object(cont, "outer", query_string="multipart-manifest=get")[1])
    assert stored[0]["sub_slo"] is True and stored[1]["range"] == "100-199" and stored[2]["range"] == "2990-2999"
    expect = md5((inner["etag"].strip('"') + f"{extra[0][2]}:100-199;" + f"{inner['etag'].strip(chr(34))}:2990-2999;").encode())
    assert swift_conn.head_object(cont, "outer")["etag"] == f'"{expect}"'
    # a range inside the nested manifest only
    _h, part = swift_conn.get_object(cont, "outer", headers={"Range": "bytes=999-1001"})
    assert part == inner_data[999:1002]


def test_slo_heartbeat(swift_conn, cont, token_and_url) -> None:  # noqa: ANN001
    segs = _segments(swift_conn, cont, [10, 10])
    r = _raw(token_and_url, "PUT", f"{cont}/hb?multipart-manifest=put&heartbeat=on", data=_manifest(segs))
    assert r.status_code == 202
    assert "Response Status: 201 Created" in r.text and "Errors:" in r.text
    assert f'Etag: "{slo_etag([e for _p, _d, e in segs])}"' in r.text
    bad = json.dumps([{"path": segs[0][0], "etag": "0" * 32}])
    r = _raw(token_and_url, "PUT", f"{cont}/hb2?multipart-manifest=put&heartbeat=on", data=bad,
             headers={"Accept": "application/json"})
    assert r.status_code == 202
    out = json.loads(r.text)
    assert out["Response Status"] == "400 Bad Request"
    assert out["Errors"] == [[segs[0][0], "Etag Mismatch"]]
    assert _raw(token_and_url, "HEAD", f"{cont}/hb2").status_code == 404


@pytest.mark.parametrize(
    "case",
    ["etag", "size", "missing", "json", "not_list", "too_many", "range", "range_unknown_size", "keys", "self",
     "empty_middle", "client_etag"],
)
def test_slo_bad_manifests_store_nothing(swift_conn, cont, token_and_url, case) -> None:  # noqa: ANN001
    segs = _segments(swift_conn, cont, [10, 10])
    p0, d0, e0 = segs[0]
    swift_conn.put_object(cont, "target", b"original")
    good = [{"path": p, "etag": e, "size_bytes": len(d)} for p, d, e in segs]
    status, expect = 400, None
    headers: dict[str, str] = {}
    if case == "etag":
        body = json.dumps([dict(good[0], etag="0" * 32), good[1]])
        expect = f"Errors:\n{p0}, Etag Mismatch\n"
    elif case == "size":
        body = json.dumps([dict(good[0], size_bytes=11), good[1]])
        expect = f"Errors:\n{p0}, Size Mismatch\n"
    elif case == "missing":
        body = json.dumps([good[0], {"path": f"/{cont}_segments/nope", "etag": e0, "size_bytes": 10}])
        expect = f"Errors:\n/{cont}_segments/nope, 404 Not Found\n"
    elif case == "json":
        body, expect = "[{not json", "Manifest must be valid JSON.\n"
    elif case == "not_list":
        body, expect = json.dumps({"path": p0}), "Manifest must be a list.\n"
    elif case == "too_many":
        body = json.dumps([{"path": p0}] * 1001)
        status, expect = 413, "Number of object-backed segments must be <= 1000"
    elif case == "range":
        body = json.dumps([dict(good[0], range="10-20")])
        expect = "Index 0: unsatisfiable range\n"
    elif case == "range_unknown_size":
        body = json.dumps([{"path": p0, "range": "50-60"}])
        expect = f"Errors:\n{p0}, Unsatisfiable Range\n"
    elif case == "keys":
        body = json.dumps([dict(good[0], colour="red")])
        expect = 'Index 0: extraneous keys "colour"\n'
    elif case == "self":
        body = json.dumps([{"path": f"/{cont}/target"}, good[0]])
        expect = "Index 0: manifest must not include itself as a segment\n"
    elif case == "empty_middle":
        swift_conn.put_object(cont + "_segments", "empty", b"")
        body = json.dumps([{"path": f"/{cont}_segments/empty"}, good[0]])
        expect = f"/{cont}_segments/empty, Too small; each segment must be at least 1 byte.\n"
    else:  # client ETag that is not the SLO ETag
        body, status = json.dumps(good), 422
        headers = {"ETag": "0" * 32}
    r = _raw(token_and_url, "PUT", f"{cont}/target?multipart-manifest=put", data=body, headers=headers)
    assert r.status_code == status, r.text
    if expect:
        assert expect in r.text
    # nothing stored: the previous object is untouched
    assert swift_conn.get_object(cont, "target")[1] == b"original"
    assert swift_conn.head_object(cont, "target").get("x-static-large-object") is None


def test_slo_reserved_header_and_copy_from_refused(swift_conn, cont, token_and_url) -> None:  # noqa: ANN001
    r = _raw(token_and_url, "PUT", f"{cont}/x", data=b"[]", headers={"X-Static-Large-Object": "True"})
    assert r.status_code == 400 and "reserved header" in r.text
    # Swift's copy middleware reads the source first (404 when missing), then slo refuses
    r = _raw(token_and_url, "PUT", f"{cont}/x?multipart-manifest=put", data=b"",
             headers={"X-Copy-From": f"{cont}/y"})
    assert r.status_code == 404
    swift_conn.put_object(cont, "y", b"[]")
    r = _raw(token_and_url, "PUT", f"{cont}/x?multipart-manifest=put", data=b"",
             headers={"X-Copy-From": f"{cont}/y"})
    assert r.status_code == 405
    r = _raw(token_and_url, "PUT", f"{cont}/x", data=b"", headers={"X-Object-Manifest": "noprefix"})
    assert r.status_code == 400 and "container/prefix" in r.text


def test_slo_delete_overwrite_and_multipart_delete(swift_conn, cont, token_and_url) -> None:  # noqa: ANN001
    segs = _segments(swift_conn, cont, [10, 10, 10])
    _put_slo(swift_conn, cont, "m", segs)
    # a plain DELETE removes only the manifest
    swift_conn.delete_object(cont, "m")
    assert len(swift_conn.get_container(cont + "_segments")[1]) == 3
    # overwriting a manifest with a plain object leaves the segments
    _put_slo(swift_conn, cont, "m", segs)
    swift_conn.put_object(cont, "m", b"plain")
    h, body = swift_conn.get_object(cont, "m")
    assert body == b"plain" and "x-static-large-object" not in h
    assert len(swift_conn.get_container(cont + "_segments")[1]) == 3
    # multipart-manifest=delete removes segments, then the manifest
    _put_slo(swift_conn, cont, "m", segs)
    r = _raw(token_and_url, "DELETE", f"{cont}/m?multipart-manifest=delete", headers={"Accept": "application/json"})
    assert r.status_code == 200
    out = r.json()
    assert out["Number Deleted"] == 4 and out["Response Status"] == "200 OK" and out["Errors"] == []
    assert swift_conn.get_container(cont + "_segments")[1] == []
    assert _raw(token_and_url, "HEAD", f"{cont}/m").status_code == 404
    # on a plain object: Swift's "Not an SLO manifest", nothing deleted
    swift_conn.put_object(cont, "plain", b"x")
    r = _raw(token_and_url, "DELETE", f"{cont}/plain?multipart-manifest=delete")
    assert r.status_code == 200 and "Response Status: 400 Bad Request" in r.text
    assert f"/{cont}/plain, Not an SLO manifest" in r.text
    assert swift_conn.get_object(cont, "plain")[1] == b"x"


def test_slo_multipart_delete_xml_has_declaration(swift_conn, cont, token_and_url) -> None:  # noqa: ANN001
    """SLO answers ?multipart-manifest=delete through bulk's delete iterator: an XML
    answer opens with the XML declaration, and parses."""
    import xml.etree.ElementTree as ET

    segs = _segments(swift_conn, cont, [10, 10])
    _put_slo(swift_conn, cont, "m", segs)
    r = _raw(token_and_url, "DELETE", f"{cont}/m?multipart-manifest=delete", headers={"Accept": "application/xml"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/xml")
    assert r.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<delete>'), r.content
    root = ET.fromstring(r.content)
    assert root.tag == "delete" and root.findtext("number_deleted") == "3"
    assert root.findtext("response_status") == "200 OK" and list(root.find("errors")) == []
    assert swift_conn.get_container(cont + "_segments")[1] == []


def test_slo_missing_segment_at_read(swift_conn, cont, token_and_url) -> None:  # noqa: ANN001
    segs = _segments(swift_conn, cont, [300_000, 300_000])
    _put_slo(swift_conn, cont, "m", segs)
    swift_conn.delete_object(cont + "_segments", "seg/00000001")
    # the first segment is readable: the body is cut short, never completed
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        _raw(token_and_url, "GET", f"{cont}/m")
    swift_conn.delete_object(cont + "_segments", "seg/00000000")
    r = _raw(token_and_url, "GET", f"{cont}/m")
    assert r.status_code == 409


def test_copy_large_objects(swift_conn, cont, token_and_url) -> None:  # noqa: ANN001
    segs = _segments(swift_conn, cont, [1000, 1000])
    whole = b"".join(d for _p, d, _e in segs)
    _put_slo(swift_conn, cont, "slo", segs)
    # default: the data, into a plain object
    swift_conn.copy_object(cont, "slo", f"/{cont}/plain-copy")
    h, body = swift_conn.get_object(cont, "plain-copy")
    assert body == whole and h["etag"] == md5(whole) and "x-static-large-object" not in h
    # ?multipart-manifest=get: the manifest itself
    r = _raw(token_and_url, "COPY", f"{cont}/slo?multipart-manifest=get", headers={"Destination": f"{cont}/slo-copy"})
    assert r.status_code == 201
    h, body = swift_conn.get_object(cont, "slo-copy")
    assert body == whole and h["x-static-large-object"] == "True"
    # DLO: data by default; the manifest (header kept) with multipart-manifest=get
    swift_conn.put_object(cont, "dlo", b"", headers={"X-Object-Manifest": f"{cont}_segments/seg/"})
    swift_conn.put_object(cont, "dlo-copy", None, headers={"X-Copy-From": f"{cont}/dlo"})
    h, body = swift_conn.get_object(cont, "dlo-copy")
    assert body == whole and "x-object-manifest" not in h
    r = _raw(token_and_url, "PUT", f"{cont}/dlo-copy2?multipart-manifest=get", data=b"",
             headers={"X-Copy-From": f"{cont}/dlo"})
    assert r.status_code == 201
    h, body = swift_conn.get_object(cont, "dlo-copy2")
    assert body == whole and h["x-object-manifest"] == f"{cont}_segments/seg/"


# -- DLO --------------------------------------------------------------------------------------


def test_dlo_get_head_ranges_live_listing(swift_conn, cont, token_and_url) -> None:  # noqa: ANN001
    segs = _segments(swift_conn, cont, [1000, 2000], prefix="d")
    swift_conn.put_object(cont, "dlo", b"", headers={"X-Object-Manifest": f"{cont}_segments/d/"})
    whole = b"".join(d for _p, d, _e in segs)
    h, body = swift_conn.get_object(cont, "dlo")
    assert body == whole
    assert h["etag"] == f'"{slo_etag([e for _p, _d, e in segs])}"'
    assert h["x-object-manifest"] == f"{cont}_segments/d/"
    assert int(swift_conn.head_object(cont, "dlo")["content-length"]) == 3000
    r = _raw(token_and_url, "GET", f"{cont}/dlo", headers={"Range": "bytes=995-1004"})
    assert r.status_code == 206 and r.content == whole[995:1005]
    # listing shows the manifest's own 0 bytes (Swift)
    item = next(i for i in swift_conn.get_container(cont)[1] if i["name"] == "dlo")
    assert item["bytes"] == 0
    # segments are read live: one more appears at once
    more = os.urandom(10)
    swift_conn.put_object(cont + "_segments", "d/00000002", more)
    assert swift_conn.get_object(cont, "dlo")[1] == whole + more
    # multipart-manifest=get: the manifest object itself
    h, body = swift_conn.get_object(cont, "dlo", query_string="multipart-manifest=get")
    assert body == b"" and h["x-object-manifest"] == f"{cont}_segments/d/"


def test_info_advertises_slo_and_dlo(server) -> None:  # noqa: ANN001
    info = requests.get(f"{server.url}/info", timeout=10).json()
    assert info["slo"]["max_manifest_segments"] == 1000
    assert info["slo"]["max_manifest_size"] == 8 * 1024 * 1024
    assert info["slo"]["min_segment_size"] == 1
    assert "dlo" in info


def test_fsck_accepts_manifests(server, swift_conn, cont) -> None:  # noqa: ANN001
    segs = _segments(swift_conn, cont, [100, 100])
    _put_slo(swift_conn, cont, "m", segs)
    out = server.cli("fsck", "--dry-run", "--json", check=False)
    report = json.loads(out.stdout)
    assert not [m for m in report["size_mismatches"] if m["container"] == cont], report


# -- the swift CLI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> tuple[Path, str]:  # noqa: ANN001
    p = tmp_path_factory.mktemp("lo") / "big.dat"
    data = os.urandom(50 * 1024 * 1024)
    p.write_bytes(data)
    return p, md5(data)


def _swift(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["swift", *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


@pytest.mark.parametrize("slo", [False, True], ids=["dlo", "slo"])
def test_swift_cli_segmented_upload_download(openrc_env, swift_conn, unique, big_file, tmp_path, slo) -> None:  # noqa: ANN001
    path, digest = big_file
    env = openrc_env
    # swiftclient makes an SLO by default when /info advertises slo; --use-dlo forces a DLO
    args = ["upload", unique, "big.dat", "-S", "10M", "--use-slo" if slo else "--use-dlo"]
    r = _swift(env, *args, cwd=path.parent)
    assert r.returncode == 0, r.stderr
    segs = swift_conn.get_container(unique + "_segments")[1]
    assert len(segs) == 5 and all(s["bytes"] == 10 * 1024 * 1024 for s in segs)
    st = _swift(env, "stat", unique, "big.dat")
    assert st.returncode == 0, st.stderr
    if slo:
        assert "X-Static-Large-Object: True" in st.stdout, st.stdout
        assert "Manifest:" not in st.stdout
    else:
        assert f"Manifest: {unique}_segments/big.dat/" in st.stdout, st.stdout
    assert f"Content Length: {50 * 1024 * 1024}" in st.stdout
    d = _swift(env, "download", unique, "big.dat", "-o", str(tmp_path / "out.dat"))
    assert d.returncode == 0, d.stderr
    assert md5((tmp_path / "out.dat").read_bytes()) == digest
    # uploading again over the manifest: the CLI deletes the old segments itself
    r = _swift(env, *args, cwd=path.parent)
    assert r.returncode == 0, r.stderr
    assert len(swift_conn.get_container(unique + "_segments")[1]) == 5
    # `swift delete` removes the manifest and its segments
    r = _swift(env, "delete", unique, "big.dat")
    assert r.returncode == 0, r.stderr
    assert swift_conn.get_container(unique + "_segments")[1] == []
    assert swift_conn.get_container(unique)[1] == []


# -- rclone --------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed (apt-get install rclone)")
def test_rclone_swift_remote(openrc_env, swift_conn, unique, tmp_path) -> None:  # noqa: ANN001
    env = dict(openrc_env, RCLONE_CONFIG_MYSWIFT_TYPE="swift", RCLONE_CONFIG_MYSWIFT_ENV_AUTH="true",
               RCLONE_CONFIG="/dev/null")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    big = os.urandom(12 * 1024 * 1024)
    (src / "big.bin").write_bytes(big)
    (src / "small.txt").write_bytes(b"hello\n")
    (src / "sub" / "x.txt").write_bytes(b"x" * 1000)

    def rclone(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["rclone", *args, "--swift-chunk-size", "5M", "-q"], env=env, capture_output=True,
                              text=True, timeout=120, check=False)

    r = rclone("copy", str(src), f"myswift:{unique}")
    assert r.returncode == 0, r.stderr
    # the 12 MB file went up as segments (rclone 1.60's default: a DLO) in <container>_segments
    h = swift_conn.head_object(unique, "big.bin")
    assert int(h["content-length"]) == len(big)
    assert "x-object-manifest" in h or h.get("x-static-large-object") == "True"
    assert len(swift_conn.get_container(unique + "_segments")[1]) == 3
    assert swift_conn.get_object(unique, "big.bin")[1] == big
    r = rclone("lsf", "-R", f"myswift:{unique}")
    assert r.returncode == 0 and sorted(r.stdout.split()) == ["big.bin", "small.txt", "sub/", "sub/x.txt"]
    r = rclone("check", str(src), f"myswift:{unique}")
    assert r.returncode == 0, r.stderr
    # sync: a change and a removal
    (src / "small.txt").write_bytes(b"changed\n")
    (src / "sub" / "x.txt").unlink()
    r = rclone("sync", str(src), f"myswift:{unique}")
    assert r.returncode == 0, r.stderr
    assert swift_conn.get_object(unique, "small.txt")[1] == b"changed\n"
    assert sorted(o["name"] for o in swift_conn.get_container(unique)[1]) == ["big.bin", "small.txt"]
    r = rclone("check", str(src), f"myswift:{unique}")
    assert r.returncode == 0, r.stderr
    # download round trip
    r = rclone("copy", f"myswift:{unique}/big.bin", str(tmp_path / "dl"))
    assert r.returncode == 0 and (tmp_path / "dl" / "big.bin").read_bytes() == big
    r = rclone("delete", f"myswift:{unique}")
    assert r.returncode == 0, r.stderr
    assert swift_conn.get_container(unique)[1] == []
    assert swift_conn.get_container(unique + "_segments")[1] == []
    with pytest.raises(ClientException):
        swift_conn.head_object(unique, "big.bin")
