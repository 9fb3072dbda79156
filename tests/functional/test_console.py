"""The web console (issue 14) through HTTP: its listener, login and sessions, CSRF,
and that it can do nothing its user could not do with the APIs (another project's
member, a reader, an anonymous visitor). Browser-driven tests: test_console_browser.py."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import swiftclient
from prometheus_client.parser import text_string_to_metric_families

from tests.functional.conftest import LampiServer, free_port, lampi_cmd
from tests.functional.console_helpers import ConsoleUser, csrf_of, rc_password
from tests.functional.swift_helpers import new_account

METRICS_TOKEN = "console-metrics-Token-1"
SEGMENT = 1024 * 1024  # the console's segment size on csrv: a few-MiB file goes in several parts


@pytest.fixture(scope="module")
def csrv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    """A server with its console on a free port, two workers (sessions and CSRF tokens
    must hold whichever worker answers)."""
    srv = LampiServer(data_dir=tmp_path_factory.mktemp("console") / "data", port=free_port(), workers=2,
                      console_port=free_port(),
                      extra_args=["--metrics-token", METRICS_TOKEN, "--console-segment-size", str(SEGMENT)])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def admin(csrv: LampiServer) -> ConsoleUser:
    u = ConsoleUser(csrv)
    r = u.login("admin", rc_password(csrv))
    assert r.status_code == 200 and r.url.endswith("/buckets"), r.text
    return u


def admin_swift(srv: LampiServer) -> swiftclient.Connection:
    rc = srv.openrc()
    return swiftclient.Connection(authurl=srv.auth_url, user="admin", key=rc["OS_PASSWORD"], auth_version="3",
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": "admin"}, retries=0)


def name() -> str:
    return "c" + uuid.uuid4().hex[:12]


# -- the listener --------------------------------------------------------------------


def test_console_listener_banner_and_headers(csrv: LampiServer) -> None:
    assert f"Console:      http://127.0.0.1:{csrv.console_port}/" in csrv.log()
    r = requests.get(f"http://127.0.0.1:{csrv.console_port}/login", timeout=60)
    assert r.status_code == 200 and "<form" in r.text
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in r.text and "onclick" not in r.text  # no inline script anywhere
    js = requests.get(f"http://127.0.0.1:{csrv.console_port}/static/console.js", timeout=60)
    assert js.status_code == 200 and "XMLHttpRequest" in js.text
    # the API listener knows nothing of console paths: /login there is an S3 bucket name
    assert requests.get(f"{csrv.url}/login", timeout=60).status_code in (403, 404)


def _console_requests(base: str) -> dict[tuple[str, str], float]:
    """lampi_requests_total of the console's pages, by (operation, status), scraped on the
    console's own listener."""
    r = requests.get(base + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}", "Connection": "close"},
                     timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    out: dict[tuple[str, str], float] = {}
    for fam in text_string_to_metric_families(r.text):
        for sample in fam.samples:
            if sample.name == "lampi_requests_total" and sample.labels["api"] == "console":
                out[(sample.labels["operation"], sample.labels["status"])] = sample.value
    return out


def test_metrics_and_health_on_the_console_listener(csrv: LampiServer) -> None:
    base = f"http://127.0.0.1:{csrv.console_port}"
    # the ops routes of the metrics listener (lampi.gateway.ops), with the same token
    r = requests.get(base + "/metrics", timeout=60)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = requests.get(base + "/metrics", headers={"Authorization": "Bearer wrong"}, timeout=60)
    assert r.status_code == 401
    for path in ("/healthcheck", "/readyz"):
        r = requests.get(base + path, timeout=60)
        assert r.status_code == 200 and r.text.startswith("OK"), (path, r.text)
    # the console's own requests are counted, by page and status, whichever worker served them;
    # each worker writes its counts out every second: earlier requests (other tests') first
    time.sleep(2.5)
    before = _console_requests(base)
    sent = 7
    for _ in range(sent):
        assert requests.get(base + "/login", headers={"Connection": "close"}, timeout=60).status_code == 200
    assert requests.get(base + "/no-such-page", timeout=60).status_code == 404
    deadline = time.monotonic() + 60
    while True:
        after = _console_requests(base)
        got = after.get(("GET /login", "2xx"), 0) - before.get(("GET /login", "2xx"), 0)
        if got >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(2.5)  # every worker has written its counts out: nothing more arrives
    after = _console_requests(base)
    assert after.get(("GET /login", "2xx"), 0) - before.get(("GET /login", "2xx"), 0) == sent
    assert after.get(("GET other", "4xx"), 0) - before.get(("GET other", "4xx"), 0) == 1
    # and the metrics listener's paths are still not on the API listener: /metrics is a bucket there
    assert requests.get(f"{csrv.url}/metrics", timeout=60).status_code in (403, 404)


def test_console_off_by_port_zero(server: LampiServer) -> None:
    # the session server of every other test runs with --console-port 0: no console line
    assert "Console:" not in server.log()


def test_console_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run([*lampi_cmd(), "serve", "--port", str(free_port()), "--console-port", str(port),
                              "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} (the console" in res.stderr and "Traceback" not in res.stderr


# -- login and sessions --------------------------------------------------------------


def test_login_sets_a_strict_httponly_session_expiring_with_the_token(csrv: LampiServer) -> None:
    u = ConsoleUser(csrv)
    page = u.get("/login")
    r = u.http.post(u.base + "/login", data={"user": "admin", "password": rc_password(csrv), "domain": "Default",
                                             "csrf": csrf_of(page.text)}, allow_redirects=False, timeout=60)
    assert r.status_code == 303 and r.headers["Location"] == "/buckets"
    cookies = r.raw.headers.getlist("Set-Cookie")
    cookie = next(c for c in cookies if c.startswith("lampi_console="))
    low = cookie.lower()
    assert "httponly" in low and "samesite=strict" in low and "path=/" in low
    max_age = int(re.search(r"max-age=(\d+)", low).group(1))
    assert 8 * 3600 - 300 < max_age <= 8 * 3600  # the token's lifetime (token_ttl, 8 h)


def test_wrong_password_is_refused(csrv: LampiServer) -> None:
    u = ConsoleUser(csrv)
    r = u.login("admin", "not-the-password")
    assert r.status_code == 401 and "Wrong user name, password or domain" in r.text
    assert "lampi_console" not in u.http.cookies
    assert u.get("/buckets", allow_redirects=False).status_code == 303


def test_login_form_needs_its_csrf_token(csrv: LampiServer) -> None:
    u = ConsoleUser(csrv)
    u.get("/login")
    r = u.http.post(u.base + "/login", data={"user": "admin", "password": rc_password(csrv)}, timeout=60)
    assert r.status_code == 403
    r = u.http.post(u.base + "/login", data={"user": "admin", "password": rc_password(csrv), "csrf": "0" * 64},
                    timeout=60)
    assert r.status_code == 403


def test_project_picker_for_a_user_in_two_projects(csrv: LampiServer) -> None:
    acct = new_account(csrv)
    other = name()
    other_id = csrv.cli("project", "create", other).stdout.strip()
    csrv.cli("role", "grant", acct.user, other, "member")
    u = ConsoleUser(csrv)
    r = u.login(acct.user, acct.password)
    assert r.url.endswith("/projects") and acct.project in r.text and other in r.text
    u.csrf = csrf_of(r.text)
    r = u.post("/projects", {"project": other_id})
    assert r.status_code == 200 and r.url.endswith("/buckets")
    assert f'<span id="project-name">{other}</span>' in r.text


def test_forged_expired_or_revoked_session_goes_back_to_login(csrv: LampiServer, admin: ConsoleUser,
                                                              tmp_path: Path) -> None:
    forged = requests.get(admin.base + "/buckets", cookies={"lampi_console": "gAAAAAforged"},
                          allow_redirects=False, timeout=60)
    assert forged.status_code == 303 and forged.headers["Location"].startswith("/login")
    # a tampered token (one character changed) is no session either
    tok = admin.http.cookies["lampi_console"]
    bad = tok[:-5] + ("A" if tok[-5] != "A" else "B") + tok[-4:]
    r = requests.get(admin.base + "/buckets", cookies={"lampi_console": bad}, allow_redirects=False, timeout=60)
    assert r.status_code == 303 and r.headers["Location"].startswith("/login")
    # logging out revokes the token: the old cookie is no session any more
    assert admin.post("/logout").url.endswith("/login")
    r = requests.get(admin.base + "/buckets", cookies={"lampi_console": tok}, allow_redirects=False, timeout=60)
    assert r.status_code == 303 and r.headers["Location"] == "/login?expired=1"


def test_expired_session_goes_back_to_login(tmp_path: Path) -> None:
    srv = LampiServer(data_dir=tmp_path / "data", port=free_port(), console_port=free_port(),
                      extra_args=["--token-ttl", "3"])
    srv.start()
    try:
        u = ConsoleUser(srv)
        assert u.login("admin", rc_password(srv)).url.endswith("/buckets")
        tok = u.http.cookies["lampi_console"]
        time.sleep(4)
        r = requests.get(u.base + "/buckets", cookies={"lampi_console": tok}, allow_redirects=False, timeout=60)
        assert r.status_code == 303 and r.headers["Location"] == "/login?expired=1"
        assert "lampi_console=" in r.headers.get("Set-Cookie", "")  # and the cookie is cleared
    finally:
        srv.stop()


# -- CSRF ----------------------------------------------------------------------------


def test_state_changing_requests_need_the_session_csrf_token(csrv: LampiServer, admin: ConsoleUser) -> None:
    conn = admin_swift(csrv)
    b = name()
    assert admin.post("/buckets", {"bucket": b}, csrf=False).status_code == 403
    assert admin.post("/buckets", {"bucket": b, "csrf": "0" * 64}).status_code == 403
    # another session's token is no good either
    other = ConsoleUser(csrv)
    other.login("admin", rc_password(csrv))
    assert other.csrf != admin.csrf
    assert admin.post("/buckets", {"bucket": b, "csrf": other.csrf}).status_code == 403
    with pytest.raises(swiftclient.ClientException):
        conn.head_container(b)
    assert admin.post("/buckets", {"bucket": b}).status_code == 200
    conn.head_container(b)
    assert admin.upload(b, "x.txt", b"x", csrf="").status_code == 403
    assert admin.upload(b, "x.txt", b"x", csrf="f" * 64).status_code == 403
    for path, data in (("/bucket/delete", {"bucket": b, "confirm": "0"}), ("/bucket/public", {"bucket": b, "public": "1"}),
                       ("/bucket/share", {"bucket": b, "project": "p1"}), ("/keys", {}), ("/logout", {})):
        assert admin.post(path, data, csrf=False).status_code == 403, path
    assert conn.head_container(b).get("x-container-read") is None
    assert admin.get("/buckets").status_code == 200  # still logged in
    assert admin.post("/bucket/delete", {"bucket": b, "confirm": "0"}).url.endswith("/buckets")


# -- the same access as the APIs -----------------------------------------------------


def test_another_projects_member_reader_and_anonymous_get_no_more_than_the_api_gives(csrv: LampiServer,
                                                                                    admin: ConsoleUser) -> None:
    conn = admin_swift(csrv)
    b = name()
    admin.post("/buckets", {"bucket": b})
    assert admin.upload(b, "secret.txt", b"top secret", "text/plain").status_code == 201
    # B: a member of another project
    acct = new_account(csrv)
    ub = ConsoleUser(csrv)
    assert ub.login(acct.user, acct.password).url.endswith("/buckets")
    owner = conn.get_auth()[0].rsplit("AUTH_", 1)[1]
    assert ub.get("/bucket", params={"bucket": b, "owner": owner}).status_code == 403
    assert ub.get("/object", params={"bucket": b, "owner": owner, "name": "secret.txt"}).status_code == 403
    assert ub.get("/raw", params={"bucket": b, "owner": owner, "name": "secret.txt"}).status_code == 403
    assert ub.upload(b, "evil.txt", b"x", owner=owner).status_code == 403
    assert ub.post("/bucket/delete-objects", {"bucket": b, "owner": owner, "name": "secret.txt"}).status_code == 403
    assert ub.post("/bucket/public", {"bucket": b, "owner": owner, "public": "1"}).status_code == 403
    assert ub.post("/bucket/share", {"bucket": b, "owner": owner, "project": acct.project_id}).status_code == 403
    assert ub.post("/bucket/delete", {"bucket": b, "owner": owner, "confirm": "1"}).status_code == 403
    # without owner= the bucket name means B's own account: in the global namespace
    # Swift serves A's container there as a request to A's account, and refuses it
    assert ub.get("/bucket", params={"bucket": b}).status_code == 403
    assert conn.get_object(b, "secret.txt")[1] == b"top secret"
    assert "evil.txt" not in [o["name"] for o in conn.get_container(b)[1]]
    assert conn.head_container(b).get("x-container-read") is None
    # a reader of A's project: reads, but cannot write or delete
    reader = f"r{uuid.uuid4().hex[:8]}"
    csrv.cli("user", "create", reader, "--password", "pw-reader-1", "--project", "admin", "--role", "reader")
    ur = ConsoleUser(csrv)
    assert ur.login(reader, "pw-reader-1").url.endswith("/buckets")
    assert ur.get("/bucket", params={"bucket": b}).status_code == 200
    assert ur.get("/raw", params={"bucket": b, "name": "secret.txt"}).content == b"top secret"
    assert ur.upload(b, "r.txt", b"r").status_code == 403
    assert ur.post("/bucket/delete-objects", {"bucket": b, "name": "secret.txt"}).status_code == 403
    assert ur.post("/bucket/public", {"bucket": b, "public": "1"}).status_code == 403
    assert ur.post("/buckets", {"bucket": name()}).status_code == 403
    # anonymous: every page sends to the login page, every action is refused
    anon = requests.Session()
    r = anon.get(admin.base + "/bucket", params={"bucket": b}, allow_redirects=False, timeout=60)
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    r = anon.post(admin.base + "/bucket/delete-objects", data={"bucket": b, "name": "secret.txt"},
                  allow_redirects=False, timeout=60)
    assert r.status_code == 303
    r = anon.get(admin.base + "/raw", params={"bucket": b, "name": "secret.txt"}, allow_redirects=False, timeout=60)
    assert r.status_code == 303 and b"top secret" not in r.content
    assert conn.get_object(b, "secret.txt")[1] == b"top secret"


def test_sharing_shows_the_bucket_to_the_other_project_with_its_access(csrv: LampiServer, admin: ConsoleUser) -> None:
    conn = admin_swift(csrv)
    owner = conn.get_auth()[0].rsplit("AUTH_", 1)[1]
    b = name()
    admin.post("/buckets", {"bucket": b})
    admin.upload(b, "data.txt", b"shared data", "text/plain")
    acct = new_account(csrv)
    ub = ConsoleUser(csrv)
    ub.login(acct.user, acct.password)
    assert b not in ub.get("/buckets").text
    grant = f"{acct.project_id}:*"
    # View: the read ACL (list, read)
    r = admin.post("/bucket/share", {"bucket": b, "project": acct.project_id, "access": "view"})
    assert r.status_code == 200 and acct.project_id in r.text
    assert conn.head_container(b)["x-container-read"] == grant
    assert not conn.head_container(b).get("x-container-write")
    page = ub.get("/buckets").text.split('id="shared-with-me"', 1)[1]
    assert b in page and "View" in page
    assert ub.get("/raw", params={"bucket": b, "owner": owner, "name": "data.txt"}).content == b"shared data"
    assert ub.upload(b, "mine.txt", b"x", owner=owner).status_code == 403  # read only
    # Transfer: read and write
    admin.post("/bucket/share", {"bucket": b, "project": acct.project_id, "access": "transfer"})
    h = conn.head_container(b)
    assert h["x-container-read"] == grant and h["x-container-write"] == grant
    assert "Transfer" in ub.get("/buckets").text.split('id="shared-with-me"', 1)[1]
    assert ub.upload(b, "mine.txt", b"x", owner=owner).status_code == 201
    with pytest.raises(swiftclient.ClientException):
        conn.head_container(b + "_segments")  # no segments container made for Transfer
    # Collaborate: the segments container (made, as a-access does) is writable too
    admin.post("/bucket/share", {"bucket": b, "project": acct.project_id, "access": "collaborate"})
    seg = conn.head_container(b + "_segments")
    assert seg["x-container-read"] == grant and seg["x-container-write"] == grant
    page = admin.get("/bucket", params={"bucket": b}).text
    assert re.search(rf'<td class="grant">{acct.project_id}</td><td class="level">Collaborate</td>', page)
    shared = ub.get("/buckets").text.split('id="shared-with-me"', 1)[1]
    assert "Collaborate" in shared and b + "_segments" not in shared
    their = swiftclient.Connection(authurl=csrv.auth_url, user=acct.user, key=acct.password, auth_version="3",
                                   os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                               "project_name": acct.project}, retries=0)
    their.put_object(b + "_segments", "big/00001", b"segment")
    # the grantee cannot share further: Swift lets only owners change ACLs
    r = ub.post("/bucket/share", {"bucket": b, "owner": owner, "project": acct.project_id, "access": "view"})
    assert r.status_code == 403
    # back to View: write taken back on both
    admin.post("/bucket/share", {"bucket": b, "project": acct.project_id, "access": "view"})
    assert not conn.head_container(b).get("x-container-write")
    assert not conn.head_container(b + "_segments").get("x-container-write")
    # bad input: 400 with a message, nothing changed
    for bad in ({"project": "a:b", "access": "view"}, {"project": "", "access": "view"},
                {"project": acct.project_id, "access": "owner"}, {"project": owner, "access": "view"}):
        r = admin.post("/bucket/share", {"bucket": b, **bad})
        assert r.status_code == 400 and 'id="problem"' in r.text, (bad, r.status_code)
    assert conn.head_container(b)["x-container-read"] == grant
    # revoke: gone from both containers
    admin.post("/bucket/share", {"bucket": b, "project": acct.project_id, "remove": "1"})
    assert b not in ub.get("/buckets").text
    assert ub.get("/raw", params={"bucket": b, "owner": owner, "name": "data.txt"}).status_code == 403
    assert not conn.head_container(b).get("x-container-read")
    assert not conn.head_container(b + "_segments").get("x-container-read")


# -- XSS -----------------------------------------------------------------------------


XSS = "<img src=x onerror=alert(1)>"


def test_names_and_metadata_are_escaped(csrv: LampiServer, admin: ConsoleUser) -> None:
    conn = admin_swift(csrv)
    b = name()
    admin.post("/buckets", {"bucket": b})
    conn.put_object(b, f"dir/{XSS}.txt", b"<script>alert(2)</script>", content_type="text/plain",
                    headers={"X-Object-Meta-Note": XSS})
    conn.put_object(b, f"{XSS}.html", b"<script>alert(3)</script>", content_type="text/html")
    for page in (admin.get("/bucket", params={"bucket": b}).text,
                 admin.get("/bucket", params={"bucket": b, "prefix": "dir/"}).text,
                 admin.get("/object", params={"bucket": b, "name": f"dir/{XSS}.txt"}).text):
        assert XSS not in page and "<script>alert" not in page
    obj = admin.get("/object", params={"bucket": b, "name": f"dir/{XSS}.txt"}).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in obj and "&lt;script&gt;alert(2)" in obj
    # an HTML object is never served as HTML from the console's origin
    r = admin.get("/raw", params={"bucket": b, "name": f"{XSS}.html"})
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert r.headers["X-Content-Type-Options"] == "nosniff" and "sandbox" in r.headers["Content-Security-Policy"]


def test_ci_installs_chromium_and_a_missing_browser_fails_there(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.functional import test_console_browser as tb

    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text()
    assert "apt-get install -y chromium chromium-driver" in ci and "export LAMPI_REQUIRE_BROWSER=1" in ci
    monkeypatch.setenv("LAMPI_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception):
        tb._missing("no chromium")
    monkeypatch.delenv("LAMPI_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception):
        tb._missing("no chromium")


def _tar(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for n, data in files.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_browse_folders_breadcrumbs_filter_and_pages(csrv: LampiServer, admin: ConsoleUser) -> None:
    conn = admin_swift(csrv)
    b = name()
    conn.put_container(b)
    files = {f"logs/2026/f{i:03d}.txt": b"x" for i in range(101)}
    files.update({"logs/readme.txt": b"r", "top.txt": b"t", "other/a.txt": b"a"})
    url, token = conn.get_auth()
    r = requests.put(f"{url}/{b}", params={"extract-archive": "tar"}, data=_tar(files),
                     headers={"X-Auth-Token": token, "Accept": "application/json"}, timeout=120)
    assert r.status_code == 200 and r.json()["Number Files Created"] == 104, r.text
    top = admin.get("/bucket", params={"bucket": b}).text
    assert ">logs/<" in top and ">other/<" in top and ">top.txt<" in top and "104 object(s)" in top
    page = admin.get("/bucket", params={"bucket": b, "prefix": "logs/"}).text
    assert ">2026/<" in page and ">readme.txt<" in page
    p1 = admin.get("/bucket", params={"bucket": b, "prefix": "logs/2026/"}).text
    assert 'aria-label="Breadcrumbs"' in p1 and "prefix=logs%2F2026%2F" in p1 and "prefix=logs%2F\"" in p1
    assert p1.count('class="object-link"') == 100 and ">f099.txt<" in p1 and "f100.txt" not in p1
    nxt = re.search(r'id="next-page" href="([^"]+)"', p1).group(1).replace("&amp;", "&")
    p2 = admin.get(nxt).text
    assert p2.count('class="object-link"') == 1 and ">f100.txt<" in p2 and 'id="next-page"' not in p2
    filt = admin.get("/bucket", params={"bucket": b, "prefix": "logs/2026/", "filter": "f05"}).text
    assert filt.count('class="object-link"') == 10 and ">f050.txt<" in filt


def test_previews_and_downloads(csrv: LampiServer, admin: ConsoleUser) -> None:
    conn = admin_swift(csrv)
    b = name()
    conn.put_container(b)
    conn.put_object(b, "notes.txt", "hello, wörld\n".encode(), content_type="text/plain")
    conn.put_object(b, "t.csv", b"a,b\n1,2\n", content_type="text/csv")
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    conn.put_object(b, "doc.pdf", pdf, content_type="application/pdf")
    conn.put_object(b, "pic.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
                    content_type="image/svg+xml")
    text = admin.get("/object", params={"bucket": b, "name": "notes.txt"}).text
    assert '<pre id="preview-text">hello, wörld\n</pre>' in text
    csv_page = admin.get("/object", params={"bucket": b, "name": "t.csv"}).text
    assert '<th scope="col">a</th><th scope="col">b</th>' in csv_page and "<td>1</td><td>2</td>" in csv_page
    pdf_page = admin.get("/object", params={"bucket": b, "name": "doc.pdf"}).text
    assert 'id="preview-pdf"' in pdf_page and 'type="application/pdf"' in pdf_page
    r = admin.get("/raw", params={"bucket": b, "name": "doc.pdf"})
    assert r.content == pdf and r.headers["Content-Type"] == "application/pdf"
    assert r.headers["Content-Disposition"].startswith("inline") and "sandbox" not in r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in r.headers["Content-Security-Policy"]
    r = admin.get("/raw", params={"bucket": b, "name": "notes.txt", "download": "1"})
    assert r.headers["Content-Disposition"] == "attachment; filename*=UTF-8''notes.txt"
    assert r.content == "hello, wörld\n".encode()
    svg = admin.get("/raw", params={"bucket": b, "name": "pic.svg"})  # SVG can script: a download only
    assert svg.headers["Content-Type"] == "application/octet-stream"
    assert svg.headers["Content-Disposition"].startswith("attachment")


def test_usage_against_quotas(csrv: LampiServer) -> None:
    acct = new_account(csrv)
    csrv.cli("project", "set-quota", acct.project, "--bytes", "1000", "--containers", "4")
    u = ConsoleUser(csrv)
    u.login(acct.user, acct.password)
    u.post("/buckets", {"bucket": name()})
    b = name()
    u.post("/buckets", {"bucket": b})
    assert u.upload(b, "a.bin", b"x" * 250).status_code == 201
    page = u.get("/usage").text
    assert "250 B of 1000 B" in page and 'value="25"' in page and "2 of 4" in page
    r = u.upload(b, "big.bin", b"x" * 800)  # over the project's quota: the API's 413
    assert r.status_code == 413
    assert "big.bin" not in [o["name"] for o in acct.conn.get_container(b)[1]]


def test_per_project_namespace_public_link_and_sharing(tmp_path: Path) -> None:
    srv = LampiServer(data_dir=tmp_path / "data", port=free_port(), console_port=free_port(),
                      extra_args=["--bucket-namespace", "project"])
    srv.start()
    try:
        a, bacct = new_account(srv), new_account(srv)
        ua, ub = ConsoleUser(srv), ConsoleUser(srv)
        ua.login(a.user, a.password)
        ub.login(bacct.user, bacct.password)
        for u in (ua, ub):  # the same name in two projects
            assert u.post("/buckets", {"bucket": "data"}).status_code == 200
        ua.upload("data", "f.txt", b"from A", "text/plain")
        ub.upload("data", "f.txt", b"from B", "text/plain")
        page = ua.post("/bucket/public", {"bucket": "data", "public": "1"}).text
        link = re.search(r'id="public-link" href="([^"]+)"', page).group(1)
        assert link == f"{srv.url}/{a.project_id}:data/"
        assert requests.get(link + "f.txt", timeout=60).content == b"from A"
        ua.post("/bucket/share", {"bucket": "data", "project": bacct.project_id, "access": "read"})
        shared = ub.get("/buckets").text.split('id="shared-with-me"', 1)[1]
        assert f"owner={a.project_id}" in shared
        assert ub.get("/raw", params={"bucket": "data", "owner": a.project_id, "name": "f.txt"}).content == b"from A"
        assert ub.get("/raw", params={"bucket": "data", "name": "f.txt"}).content == b"from B"
    finally:
        srv.stop()


def test_edit_metadata_and_temp_url(csrv: LampiServer, admin: ConsoleUser) -> None:
    conn = admin_swift(csrv)
    b = name()
    admin.post("/buckets", {"bucket": b})
    admin.upload(b, "dir/r.txt", b"report", "text/plain")
    r = admin.post("/object/meta", {"bucket": b, "object": "dir/r.txt", "meta": "Owner: lab\nStage: raw\n"})
    assert r.status_code == 200 and "Stage: raw" in r.text
    h = conn.head_object(b, "dir/r.txt")
    assert h["x-object-meta-owner"] == "lab" and h["x-object-meta-stage"] == "raw"
    assert admin.post("/object/meta", {"bucket": b, "object": "dir/r.txt", "meta": "bad name: x"}).status_code == 400
    r = admin.post(f"/object/tempurl?bucket={b}&name=dir%2Fr.txt", {"seconds": "3600"})
    assert r.status_code == 200
    link = re.search(r'id="temp-url" href="([^"]+)"', r.text).group(1).replace("&amp;", "&")
    assert requests.get(link, timeout=60).content == b"report"
    assert requests.get(link.replace("dir/r.txt", "dir/other.txt"), timeout=60).status_code == 401
    assert requests.get(f"{csrv.url}/{b}/dir/r.txt", timeout=60).status_code == 403  # the bucket stays private
    # a reader cannot make one: it may not set the bucket's key, nor read it
    reader = f"r{uuid.uuid4().hex[:8]}"
    csrv.cli("user", "create", reader, "--password", "pw-reader-2", "--project", "admin", "--role", "reader")
    ur = ConsoleUser(csrv)
    ur.login(reader, "pw-reader-2")
    r = ur.post(f"/object/tempurl?bucket={b}&name=dir%2Fr.txt", {"seconds": "3600"})
    assert r.status_code == 403 and 'id="temp-url"' not in r.text


def test_copy_a_bucket_own_and_shared(csrv: LampiServer, admin: ConsoleUser) -> None:
    conn = admin_swift(csrv)
    owner = conn.get_auth()[0].rsplit("AUTH_", 1)[1]
    src, dst = name(), name()
    admin.post("/buckets", {"bucket": src})
    for n in ("a.txt", "d/b.txt"):
        admin.upload(src, n, n.encode(), "text/plain")
    r = admin.post("/bucket/copy", {"bucket": src, "dest": dst})
    assert r.status_code == 200 and r.url.endswith(f"bucket={dst}")
    assert sorted(o["name"] for o in conn.get_container(dst)[1]) == ["a.txt", "d/b.txt"]
    assert conn.get_object(dst, "d/b.txt")[1] == b"d/b.txt"
    assert admin.post("/bucket/copy", {"bucket": src, "dest": dst}).status_code == 409
    # another project: refused until the bucket is shared with it, then copied into its own
    acct = new_account(csrv)
    ub = ConsoleUser(csrv)
    ub.login(acct.user, acct.password)
    mine = name()
    assert ub.post("/bucket/copy", {"bucket": src, "owner": owner, "dest": mine}).status_code == 403
    admin.post("/bucket/share", {"bucket": src, "project": acct.project_id, "access": "read"})
    assert ub.post("/bucket/copy", {"bucket": src, "owner": owner, "dest": mine}).status_code == 200
    assert sorted(o["name"] for o in acct.conn.get_container(mine)[1]) == ["a.txt", "d/b.txt"]


# -- bucket tags ---------------------------------------------------------------------


def _keystone(srv: LampiServer, user: str, password: str, project: str) -> tuple[str, str, str]:
    """(token, user id, project id) of a password login scoped to ``project``."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
    r = requests.post(srv.url + "/v3/auth/tokens", json=body, timeout=60)
    assert r.status_code == 201, r.text
    tok = r.json()["token"]
    return r.headers["X-Subject-Token"], tok["user"]["id"], tok["project"]["id"]


def test_bucket_tags_round_trip_with_s3(csrv: LampiServer, admin: ConsoleUser) -> None:
    import boto3
    from botocore.exceptions import ClientError

    token, user_id, project_id = _keystone(csrv, "admin", rc_password(csrv), "admin")
    creds_url = f"{csrv.url}/v3/users/{user_id}/credentials/OS-EC2"

    def keys() -> set[str]:
        r = requests.get(creds_url, headers={"X-Auth-Token": token}, timeout=60)
        return {c["access"] for c in r.json()["credentials"]}

    before = keys()
    b = name()
    r = admin.post("/buckets", {"bucket": b, "tags": "project=alpha\r\nlabel=a+b=c @lab: x/y\n\nflag\n"})
    assert r.status_code == 200 and r.url.endswith(f"/bucket?bucket={b}"), r.text.split("<main", 1)[-1][:1000]
    assert keys() == before  # a credential made for the request is gone again
    made = requests.post(creds_url, headers={"X-Auth-Token": token}, json={"tenant_id": project_id},
                         timeout=60).json()["credential"]
    s3 = boto3.client("s3", endpoint_url=csrv.url, aws_access_key_id=made["access"],
                      aws_secret_access_key=made["secret"], region_name="us-east-1")
    tagset = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=b)["TagSet"]}
    assert tagset == {"project": "alpha", "label": "a+b=c @lab: x/y", "flag": ""}
    page = admin.get("/bucket/tags", params={"bucket": b})
    assert page.status_code == 200 and '<td class="tag-value">a+b=c @lab: x/y</td>' in page.text
    # S3 refuses markup in tags (its character set), and the console shows its message
    r = admin.post("/bucket/tags", {"bucket": b, "tags": "label=<img src=x onerror=alert(1)>"})
    assert r.status_code == 400 and "TagValue" in r.text and "<img src=x" not in r.text
    # edited in the console: S3 sees the new set; set by S3: the console shows it
    r = admin.post("/bucket/tags", {"bucket": b, "tags": "project=beta\nstage=raw"})
    assert r.status_code == 200 and '<td class="tag-value">beta</td>' in r.text
    assert {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=b)["TagSet"]} == {"project": "beta",
                                                                                           "stage": "raw"}
    s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [{"Key": "from-s3", "Value": "yes"}]})
    page = admin.get("/bucket/tags", params={"bucket": b}).text
    assert '<td class="tag-key">from-s3</td>' in page and "beta" not in page.split("<textarea", 1)[0]
    # bad tags: S3's refusal with its message, a 400; the tags stay as they were
    for bad in ("k" * 129 + "=v", "\n".join(f"k{i}=v" for i in range(51)), "a=1\na=2"):
        r = admin.post("/bucket/tags", {"bucket": b, "tags": bad})
        assert r.status_code == 400 and 'id="problem"' in r.text, (bad[:20], r.status_code, r.text[:500])
    assert s3.get_bucket_tagging(Bucket=b)["TagSet"] == [{"Key": "from-s3", "Value": "yes"}]
    r = admin.post("/buckets", {"bucket": name(), "tags": "x" * 129})
    assert r.status_code == 400 and "tags were refused" in r.text
    # an empty box removes them all
    assert admin.post("/bucket/tags", {"bucket": b, "tags": ""}).status_code == 200
    with pytest.raises(ClientError, match="NoSuchTagSet"):
        s3.get_bucket_tagging(Bucket=b)
    # the CSRF token is needed; another project's member sees none and sets none
    assert admin.post("/bucket/tags", {"bucket": b, "tags": "a=b"}, csrf=False).status_code == 403
    acct = new_account(csrv)
    other = ConsoleUser(csrv)
    other.login(acct.user, acct.password)
    assert other.get("/bucket/tags", params={"bucket": b, "owner": project_id}).status_code == 403
    assert other.post("/bucket/tags", {"bucket": b, "owner": project_id, "tags": "a=b"}).status_code == 403
    with pytest.raises(ClientError, match="NoSuchTagSet"):
        s3.get_bucket_tagging(Bucket=b)


# -- admin pages ---------------------------------------------------------------------


ADMIN_POSTS = ("/admin/projects", "/admin/projects/delete", "/admin/quota", "/admin/users", "/admin/users/delete",
               "/admin/roles/grant", "/admin/roles/revoke")


def test_admin_pages_are_for_the_cloud_admin_only(csrv: LampiServer, admin: ConsoleUser) -> None:
    acct = new_account(csrv)
    member = ConsoleUser(csrv)
    member.login(acct.user, acct.password)
    reader = f"r{uuid.uuid4().hex[:8]}"  # a reader of the admin project: not an admin
    csrv.cli("user", "create", reader, "--password", "pw-reader-2", "--project", "admin", "--role", "reader")
    ur = ConsoleUser(csrv)
    ur.login(reader, "pw-reader-2")
    victim = f"p{uuid.uuid4().hex[:8]}"
    for u in (member, ur):
        r = u.get("/admin")
        assert r.status_code == 403 and 'id="problem"' in r.text and 'id="admin-link"' not in r.text
        for path in ADMIN_POSTS:
            r = u.post(path, {"name": victim, "project": acct.project_id, "user": acct.user, "role": "admin",
                              "password": "x", "password2": "x", "bytes": "1"})
            assert r.status_code == 403, (path, r.status_code)
    assert victim not in csrv.cli("project", "list").stdout
    assert "admin@" not in csrv.cli("user", "list").stdout.split(acct.user, 1)[1].split("\n", 1)[0]
    # anonymous: to the login page
    r = requests.get(admin.base + "/admin", allow_redirects=False, timeout=60)
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert 'id="admin-link"' in admin.get("/buckets").text


def test_admin_creates_a_project_and_user_who_logs_in_with_swiftclient(csrv: LampiServer, admin: ConsoleUser) -> None:
    tag = uuid.uuid4().hex[:8]
    pname, uname, pw = f"ap{tag}", f"au{tag}", f"pw-{tag}-1"
    r = admin.post("/admin/projects", {"name": pname, "description": "made in the console"})
    assert r.status_code == 200 and pname in r.text
    pid = re.search(rf'<td class="project-name">{pname}</td><td class="project-id"><code>([0-9a-f]+)</code>',
                    r.text).group(1)
    r = admin.post("/admin/users", {"name": uname, "password": pw, "password2": pw, "project": pid, "role": "member"})
    assert r.status_code == 200 and f"member on {pname}" in r.text
    conn = swiftclient.Connection(authurl=csrv.auth_url, user=uname, key=pw, auth_version="3", retries=0,
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": pname})
    conn.put_container("made-by-admin")
    assert conn.get_auth()[0].endswith(f"AUTH_{pid}")
    # quotas, as `lampi project set-quota`: the API enforces them at once
    r = admin.post("/admin/quota", {"project": pid, "bytes": "10", "containers": "", "objects_per_container": ""})
    assert r.status_code == 200
    with pytest.raises(swiftclient.ClientException) as ei:
        conn.put_object("made-by-admin", "big", b"x" * 20)
    assert ei.value.http_status == 413
    assert json.loads(csrv.cli("project", "set-quota", pid, "--json").stdout)["bytes"] == 10  # as the CLI sees it
    admin.post("/admin/quota", {"project": pid, "bytes": "default"})
    conn.put_object("made-by-admin", "big", b"x" * 20)
    # role assignments: grant reader to another user, revoke member (the user's tokens end)
    r = admin.post("/admin/roles/revoke", {"user": uname, "project": pid, "role": "member"})
    assert r.status_code == 200 and f"member on {pname}" not in r.text
    with pytest.raises(swiftclient.ClientException):
        swiftclient.Connection(authurl=csrv.auth_url, user=uname, key=pw, auth_version="3", retries=0,
                               os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                           "project_name": pname}).get_account()
    r = admin.post("/admin/roles/grant", {"user": uname, "project": pid, "role": "reader"})
    assert r.status_code == 200 and f"reader on {pname}" in r.text
    # bad input: 4xx with a message, never a 500
    for path, data, status in (
            ("/admin/projects", {"name": ""}, 400), ("/admin/projects", {"name": "x" * 65}, 400),
            ("/admin/projects", {"name": pname}, 409),
            ("/admin/users", {"name": "u" + tag, "password": "a", "password2": "b"}, 400),
            ("/admin/users", {"name": "u" + tag, "password": "", "password2": ""}, 400),
            ("/admin/users", {"name": "u" + tag, "password": "a", "password2": "a", "project": pid,
                              "role": "no-such-role"}, 404),
            ("/admin/roles/grant", {"user": uname, "project": "no-such-project", "role": "member"}, 404),
            ("/admin/roles/grant", {"user": "", "project": pid, "role": "member"}, 400),
            ("/admin/quota", {"project": pid, "bytes": "ten"}, 400),
            ("/admin/quota", {"project": pid, "containers": "-1"}, 400),
            ("/admin/projects/delete", {"project": pid}, None),  # it has a container
            ("/admin/users/delete", {"user": "admin"}, 400)):
        r = admin.post(path, data)
        if status is None:
            assert 400 <= r.status_code < 500, (path, data, r.status_code)
        else:
            assert r.status_code == status, (path, data, r.status_code, r.text[-600:])
        assert 'id="problem"' in r.text
    assert admin.post("/admin/projects", {"name": "csrf-" + tag}, csrf=False).status_code == 403
    # deleting: the user, then the emptied project
    assert admin.post("/admin/users/delete", {"user": uname}).status_code == 200
    csrv.cli("user", "create", "cleaner" + tag, "--password", "pw-c", "--project", pid)
    cleaner = swiftclient.Connection(authurl=csrv.auth_url, user="cleaner" + tag, key="pw-c", auth_version="3",
                                     retries=0, os_options={"user_domain_name": "Default",
                                                            "project_domain_name": "Default", "project_name": pname})
    cleaner.delete_object("made-by-admin", "big")
    cleaner.delete_container("made-by-admin")
    r = admin.post("/admin/projects/delete", {"project": pid})
    assert r.status_code == 200 and pname not in r.text
    assert uname not in csrv.cli("user", "list").stdout


# -- segmented uploads ---------------------------------------------------------------


def test_segmented_upload_resumes_after_a_restart(csrv: LampiServer, admin: ConsoleUser) -> None:
    import boto3
    import hashlib
    import os

    b = name()
    admin.post("/buckets", {"bucket": b})
    acct = new_account(csrv)  # shared (View) before the first segment: its segments are readable by it too
    admin.post("/bucket/share", {"bucket": b, "project": acct.project_id, "access": "view"})
    data = os.urandom(3 * SEGMENT + SEGMENT // 2)  # 4 segments, the last one half
    ident = {"bucket": b, "name": "runs/data.bin", "size": str(len(data)), "mtime": "1764930000000"}

    def plan() -> dict:
        r = admin.get("/bucket/upload-plan", params=ident)
        assert r.status_code == 200, r.text
        return r.json()

    def send(i: int, body: bytes | None = None, csrf: str | None = None) -> requests.Response:
        part = data[i * SEGMENT:(i + 1) * SEGMENT] if body is None else body
        return admin.http.post(admin.base + "/bucket/upload-segment", params={**ident, "index": str(i)}, data=part,
                               headers={"X-CSRF-Token": admin.csrf if csrf is None else csrf,
                                        "Content-Type": "application/octet-stream"}, timeout=120)

    def complete() -> requests.Response:
        return admin.http.post(admin.base + "/bucket/upload-complete", params=ident, timeout=120,
                               headers={"X-CSRF-Token": admin.csrf, "X-Object-Content-Type": "application/x-test"})

    # small files go whole
    r = admin.get("/bucket/upload-plan", params={**ident, "size": str(SEGMENT)})
    assert r.json() == {"segmented": False}
    assert plan() == {"segmented": True, "segment_size": SEGMENT, "count": 4, "done": []}
    assert send(0).status_code == 201 and send(1).status_code == 201
    # refused: a wrong length, an index out of range, no CSRF token, bad sizes; nothing stored
    assert send(2, b"short").status_code == 400
    assert send(4, b"x").status_code == 400
    assert send(2, csrf="").status_code == 403
    for bad in ({"size": "-1"}, {"size": "x"}, {"mtime": ""}, {"name": ""}):
        r = admin.get("/bucket/upload-plan", params={**ident, **bad})
        assert r.status_code == 400 and r.json()["message"], bad
    r = complete()
    assert r.status_code == 409 and r.json()["missing"] == [2, 3]
    # the server restarts mid-upload: what was stored is still there, only the rest is sent
    csrv.stop()
    csrv.start()
    admin.login("admin", rc_password(csrv))
    assert plan()["done"] == [0, 1]
    assert send(2).status_code == 201 and send(3).status_code == 201
    r = complete()
    assert r.status_code == 201 and r.json()["segments"] == 4, r.text
    # the object's bytes, read with boto3
    token, user_id, project_id = _keystone(csrv, "admin", rc_password(csrv), "admin")
    made = requests.post(f"{csrv.url}/v3/users/{user_id}/credentials/OS-EC2", headers={"X-Auth-Token": token},
                         json={"tenant_id": project_id}, timeout=60).json()["credential"]
    s3 = boto3.client("s3", endpoint_url=csrv.url, aws_access_key_id=made["access"],
                      aws_secret_access_key=made["secret"], region_name="us-east-1")
    got = s3.get_object(Bucket=b, Key="runs/data.bin")
    body = got["Body"].read()
    assert len(body) == len(data) and hashlib.md5(body).digest() == hashlib.md5(data).digest()
    assert got["ContentType"] == "application/x-test"
    conn = admin_swift(csrv)
    segs = [o["name"] for o in conn.get_container(b + "_segments")[1]]
    assert segs == [f"runs/data.bin/slo/1764930000000/{len(data)}/{SEGMENT}/{i:08d}" for i in range(4)]
    assert "x-static-large-object" in conn.head_object(b, "runs/data.bin")
    their = swiftclient.Connection(preauthurl=conn.get_auth()[0], preauthtoken=acct.conn.get_auth()[1], retries=0)
    assert their.get_object(b, "runs/data.bin")[1] == data  # the grantee reads it whole
    # public: the segments container too, so the public link serves the whole object
    assert admin.post("/bucket/public", {"bucket": b, "public": "1"}).status_code == 200
    assert ".r:*" in conn.head_container(b + "_segments")["x-container-read"]
    anon = requests.get(f"{csrv.url}/{b}/runs/data.bin", timeout=120)
    assert anon.status_code == 200 and anon.content == data
    admin.post("/bucket/public", {"bucket": b, "public": "0"})
    assert ".r:*" not in conn.head_container(b + "_segments").get("x-container-read", "")


# -- deleting large objects: their segments go with them ---------------------------------


def _slo(conn: swiftclient.Connection, bucket: str, obj: str, parts: int) -> None:
    """An SLO as `swift upload --use-slo` makes it: segments in ``<bucket>_segments``."""
    seg = f"{bucket}_segments"
    conn.put_container(seg)
    manifest = []
    for i in range(parts):
        body = bytes([65 + i]) * 1024
        etag = conn.put_object(seg, f"{obj}/slo/{i:08d}", body)
        manifest.append({"path": f"/{seg}/{obj}/slo/{i:08d}", "etag": etag, "size_bytes": len(body)})
    conn.put_object(bucket, obj, json.dumps(manifest), query_string="multipart-manifest=put")


def test_deleting_large_objects_and_their_bucket_removes_their_segments(csrv: LampiServer,
                                                                        admin: ConsoleUser) -> None:
    conn = admin_swift(csrv)
    b = name()
    seg = f"{b}_segments"
    conn.put_container(b)
    _slo(conn, b, "big-one", 3)
    _slo(conn, b, "big-two", 2)
    conn.put_object(b, "plain.txt", b"plain")
    assert len(conn.get_container(seg)[1]) == 5
    # multi-select delete: the SLO with its segments, the plain object as it is
    r = admin.post("/bucket/delete-objects", {"bucket": b, "name": ["big-one", "plain.txt"]})
    assert r.status_code == 200, r.text[:500]
    assert [o["name"] for o in conn.get_container(b)[1]] == ["big-two"]
    assert sorted(o["name"] for o in conn.get_container(seg)[1]) == ["big-two/slo/00000000", "big-two/slo/00000001"]
    # the bucket, confirmed by its count: the remaining SLO's segments go too
    r = admin.post("/bucket/delete", {"bucket": b, "confirm": "1"})
    assert r.url.endswith("/buckets"), r.text[:500]
    with pytest.raises(swiftclient.ClientException) as exc:
        conn.head_container(b)
    assert exc.value.http_status == 404
    assert conn.get_container(seg)[1] == []

