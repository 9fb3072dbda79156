"""The web console (issue 14) through HTTP: its listener, login and sessions, CSRF,
and that it can do nothing its user could not do with the APIs (another project's
member, a reader, an anonymous visitor). Browser-driven tests: test_console_browser.py."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import swiftclient

from tests.functional.conftest import LampiServer, free_port, lampi_cmd
from tests.functional.console_helpers import ConsoleUser, csrf_of, rc_password
from tests.functional.swift_helpers import new_account


@pytest.fixture(scope="module")
def csrv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    """A server with its console on a free port, two workers (sessions and CSRF tokens
    must hold whichever worker answers)."""
    srv = LampiServer(data_dir=tmp_path_factory.mktemp("console") / "data", port=free_port(), workers=2,
                      console_port=free_port())
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
    r = admin.post("/bucket/share", {"bucket": b, "project": acct.project_id, "access": "read"})
    assert r.status_code == 200 and acct.project_id in r.text
    assert conn.head_container(b)["x-container-read"] == f"{acct.project_id}:*"
    page = ub.get("/buckets").text
    assert b in page.split('id="shared-with-me"', 1)[1]
    assert ub.get("/raw", params={"bucket": b, "owner": owner, "name": "data.txt"}).content == b"shared data"
    assert ub.upload(b, "mine.txt", b"x", owner=owner).status_code == 403  # read only
    admin.post("/bucket/share", {"bucket": b, "project": acct.project_id, "access": "readwrite"})
    assert ub.upload(b, "mine.txt", b"x", owner=owner).status_code == 201
    admin.post("/bucket/share", {"bucket": b, "project": acct.project_id, "remove": "1"})
    assert b not in ub.get("/buckets").text
    assert ub.get("/raw", params={"bucket": b, "owner": owner, "name": "data.txt"}).status_code == 403


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
