"""Keystone v3 identity as keystoneauth1, python-keystoneclient, swiftclient and
Allas's ``allas_conf`` (raw HTTP) use it, against a real ``lampi serve``.

Reference: https://docs.openstack.org/api-ref/identity/v3/ .
"""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pytest
import requests
import swiftclient
from keystoneauth1 import discover, session
from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1.identity import generic, v3
from keystoneclient.v3 import client as ks_client

from tests.functional.conftest import LampiServer, lampi_cmd


@dataclass
class Account:
    """A project with one user holding ``role`` on it, made with the admin CLI."""

    project: str
    project_id: str
    user: str
    user_id: str
    password: str


def make_account(server: LampiServer, role: str = "member", project: str | None = None) -> Account:
    tag = uuid.uuid4().hex[:10]
    pname = project or f"proj-{tag}"
    if project is None:
        pid = server.cli("project", "create", pname).stdout.strip()
    else:
        projects = json.loads(server.cli("project", "list", "--json").stdout)
        pid = next(p["id"] for p in projects if p["name"] == pname)
    uname, pw = f"user-{tag}", f"pw-{tag}-Secret!"
    uid = server.cli("user", "create", uname, "--password", pw, "--project", pname, "--role", role).stdout.strip()
    return Account(pname, pid, uname, uid, pw)


@pytest.fixture(scope="module")
def alice(server: LampiServer) -> Account:
    return make_account(server)


@pytest.fixture(scope="module")
def bob(server: LampiServer) -> Account:
    return make_account(server)


@pytest.fixture(scope="module")
def admin(server: LampiServer) -> Account:
    rc = server.openrc()
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": rc["OS_USERNAME"], "domain": {"name": "Default"}, "password": rc["OS_PASSWORD"]}}}}}
    r = requests.post(f"{server.auth_url}/auth/tokens", json=body, timeout=10)
    assert r.status_code == 201, r.text
    tok = r.json()["token"]
    return Account(rc["OS_PROJECT_NAME"], tok["project"]["id"], rc["OS_USERNAME"], tok["user"]["id"], rc["OS_PASSWORD"])


def password_body(user: dict, password: str, scope: dict | None = None) -> dict:
    user = dict(user, password=password)
    auth: dict = {"identity": {"methods": ["password"], "password": {"user": user}}}
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


def post_token(server: LampiServer, body: object, **kw) -> requests.Response:  # noqa: ANN003
    if isinstance(body, (dict, list)):
        return requests.post(f"{server.auth_url}/auth/tokens", json=body, timeout=10, **kw)
    return requests.post(f"{server.auth_url}/auth/tokens", data=body, timeout=10,
                         headers={"Content-Type": "application/json"}, **kw)


def scoped_token(server: LampiServer, acct: Account) -> str:
    r = post_token(server, password_body({"id": acct.user_id}, acct.password, {"project": {"id": acct.project_id}}))
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def assert_keystone_error(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == status
    assert isinstance(err["title"], str) and err["title"]
    assert isinstance(err["message"], str) and err["message"]
    return err


def parse_time(s: str) -> datetime:
    assert s.endswith("Z"), s
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")


# -- version discovery ----------------------------------------------------------------


def test_root_lists_versions_with_300(server: LampiServer) -> None:
    r = requests.get(server.url + "/", timeout=10)
    assert r.status_code == 300
    values = r.json()["versions"]["values"]
    v3doc = next(v for v in values if v["id"].startswith("v3"))
    assert v3doc["status"] == "stable"
    assert any(link["rel"] == "self" and link["href"].rstrip("/") == server.auth_url for link in v3doc["links"])
    assert {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"} in v3doc["media-types"]


def test_v3_version_document(server: LampiServer) -> None:
    r = requests.get(server.auth_url, timeout=10)
    assert r.status_code == 200
    doc = r.json()["version"]
    assert doc["id"].startswith("v3.") and doc["status"] == "stable"
    assert doc["links"][0]["href"].rstrip("/") == server.auth_url


def test_keystoneauth_discovery(server: LampiServer) -> None:
    sess = session.Session()
    for url in (server.url, server.auth_url):
        data = discover.get_version_data(sess, url)
        d = discover.Discover(sess, url)
        assert data and d.version_data()[0]["version"][0] == 3
        assert d.url_for((3, 0)).rstrip("/") == server.auth_url
    # the root has no v2: asking for it finds nothing
    assert discover.Discover(sess, server.url).url_for((2, 0)) is None


def test_generic_password_from_root_url_discovers_v3(server: LampiServer, alice: Account) -> None:
    """``generic.Password`` (what openstackclient builds) discovers v3 from ``/``."""
    auth = generic.Password(auth_url=server.url, username=alice.user, password=alice.password,
                            user_domain_name="Default", project_name=alice.project, project_domain_name="Default")
    sess = session.Session(auth=auth)
    assert sess.get_project_id() == alice.project_id
    # Allas's form of the object-store URL: <base>/swift/v1/AUTH_<project_id>
    assert sess.get_endpoint(service_type="object-store", interface="public") == \
        f"{server.url}/swift/v1/AUTH_{alice.project_id}"
    assert sess.get_api_major_version(service_type="identity", interface="public") == (3, 0)


# -- password authentication, the forms clients send ------------------------------------


@pytest.mark.parametrize("form", ["name+domain_name", "name+domain_id", "id"])
def test_keystoneauth_password_forms(server: LampiServer, alice: Account, form: str) -> None:
    kw: dict = {"auth_url": server.auth_url, "password": alice.password, "project_id": alice.project_id}
    if form == "id":
        kw["user_id"] = alice.user_id
    else:
        kw["username"] = alice.user
        kw["user_domain_name" if form == "name+domain_name" else "user_domain_id"] = (
            "Default" if form == "name+domain_name" else "default")
    sess = session.Session(auth=v3.Password(**kw))
    assert sess.get_user_id() == alice.user_id
    assert sess.get_project_id() == alice.project_id
    url = sess.get_endpoint(service_type="object-store", interface="public")
    assert url == f"{server.url}/swift/v1/AUTH_{alice.project_id}"
    # and the token works for Swift through swiftclient's session support
    conn = swiftclient.Connection(session=sess, retries=0)
    assert int(conn.head_account()["x-account-container-count"]) >= 0
    assert conn.url == url


def test_scope_by_project_name_and_domain(server: LampiServer, alice: Account) -> None:
    for dom in ({"name": "Default"}, {"id": "default"}):
        r = post_token(server, password_body({"name": alice.user, "domain": {"id": "default"}}, alice.password,
                                             {"project": {"name": alice.project, "domain": dom}}))
        assert r.status_code == 201, r.text
        assert r.json()["token"]["project"]["id"] == alice.project_id


def test_token_response_shape(server: LampiServer, alice: Account) -> None:
    before = time.time()
    r = post_token(server, password_body({"name": alice.user, "domain": {"name": "Default"}}, alice.password,
                                         {"project": {"name": alice.project, "domain": {"name": "Default"}}}))
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    token = r.headers["X-Subject-Token"]
    assert token and token not in r.text
    tok = r.json()["token"]
    assert tok["methods"] == ["password"]
    assert tok["user"]["id"] == alice.user_id and tok["user"]["name"] == alice.user
    assert tok["user"]["domain"] == {"id": "default", "name": "Default"}
    assert tok["project"] == {"id": alice.project_id, "name": alice.project, "domain": {"id": "default", "name": "Default"}}
    roles = {ro["name"] for ro in tok["roles"]}
    assert "member" in roles and "admin" not in roles
    assert all(ro["id"] for ro in tok["roles"])
    assert isinstance(tok["audit_ids"], list) and len(tok["audit_ids"]) == 1 and tok["audit_ids"][0]
    issued, expires = parse_time(tok["issued_at"]), parse_time(tok["expires_at"])
    # default lifetime 8 h, as Allas
    assert abs((expires - issued).total_seconds() - 8 * 3600) < 5
    assert abs(calendar.timegm(issued.timetuple()) - before) < 60
    catalog = {svc["type"]: svc for svc in tok["catalog"]}
    assert set(catalog) >= {"identity", "object-store"}
    for svc in catalog.values():
        assert {e["interface"] for e in svc["endpoints"]} == {"public", "internal", "admin"}
        assert all(e["region"] == "regionOne" and e["region_id"] == "regionOne" for e in svc["endpoints"])
        assert svc["id"] and all(e["id"] for e in svc["endpoints"])
    assert {e["url"] for e in catalog["object-store"]["endpoints"]} == {f"{server.url}/swift/v1/AUTH_{alice.project_id}"}
    assert {e["url"].rstrip("/") for e in catalog["identity"]["endpoints"]} == {server.auth_url}


def test_allas_conf_flow(server: LampiServer, alice: Account, unique: str) -> None:
    """allas_conf: unscoped with the user *name* in user.id, list projects, then scope."""
    raw = ('{"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"%s","password":"%s"}}}}}'
           % (alice.user, alice.password))
    r = post_token(server, raw)
    assert r.status_code == 201, r.text
    unscoped = r.headers["X-Subject-Token"]
    assert r.json()["token"]["user"]["id"] == alice.user_id
    r = requests.get(f"{server.auth_url}/auth/projects", headers={"X-Auth-Token": unscoped}, timeout=10)
    assert r.status_code == 200
    projects = r.json()["projects"]
    assert [p["name"] for p in projects] == [alice.project]
    assert projects[0]["id"] == alice.project_id and projects[0]["domain_id"] == "default"
    raw_scoped = ('{"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"%s","password":"%s"}}},'
                  '"scope":{"project":{"domain":{"id":"default"},"name":"%s"}}}}'
                  % (alice.user, alice.password, alice.project))
    r = post_token(server, raw_scoped)
    assert r.status_code == 201, r.text
    token = r.headers["X-Subject-Token"]
    # allas_conf picks the public object-store URL out of the catalog
    storage_url = next(e["url"] for svc in r.json()["token"]["catalog"] if svc["type"] == "object-store"
                       for e in svc["endpoints"] if e["interface"] == "public")
    # ... with allas_conf's own pattern (https://a3s.fi:443/swift/[A-Za-z0-9/_]*)
    assert re.fullmatch(re.escape(server.url) + r"/swift/[A-Za-z0-9/_]*", storage_url), storage_url
    assert storage_url == f"{server.url}/swift/v1/AUTH_{alice.project_id}"
    swiftclient.put_container(storage_url, token, unique)
    swiftclient.put_object(storage_url, token, unique, "o.txt", b"allas")
    # Swift's plain form, /v1/AUTH_<id>, serves the same account
    plain_url = storage_url.replace("/swift/v1/", "/v1/")
    _, body = swiftclient.get_object(plain_url, token, unique, "o.txt")
    assert body == b"allas"
    _, listing = swiftclient.get_container(plain_url, token, unique)
    assert [o["name"] for o in listing] == ["o.txt"]
    swiftclient.delete_object(plain_url, token, unique, "o.txt")
    swiftclient.delete_container(storage_url, token, unique)


def test_unscoped_token(server: LampiServer, server_admin_free_user: Account) -> None:
    u = server_admin_free_user
    r = post_token(server, password_body({"id": u.user_id}, u.password))
    assert r.status_code == 201, r.text
    tok = r.json()["token"]
    assert "project" not in tok and "roles" not in tok
    assert tok["catalog"] == []
    # an unscoped token does not open any Swift account
    r2 = requests.get(f"{server.url}/v1/AUTH_{u.project_id}", headers={"X-Auth-Token": r.headers["X-Subject-Token"]},
                      timeout=10)
    assert r2.status_code == 403


@pytest.fixture(scope="module")
def server_admin_free_user(server: LampiServer) -> Account:
    """A user with a role on a project but no default project (granted afterwards)."""
    tag = uuid.uuid4().hex[:10]
    pname, uname, pw = f"proj-{tag}", f"user-{tag}", f"pw-{tag}"
    pid = server.cli("project", "create", pname).stdout.strip()
    uid = server.cli("user", "create", uname, "--password", pw).stdout.strip()
    server.cli("role", "grant", uname, pname, "member")
    return Account(pname, pid, uname, uid, pw)


def test_explicit_unscoped_request_with_default_project(server: LampiServer, alice: Account) -> None:
    """``"scope": "unscoped"`` gives an unscoped token even with a default project."""
    r = post_token(server, password_body({"id": alice.user_id}, alice.password, "unscoped"))  # type: ignore[arg-type]
    assert r.status_code == 201, r.text
    assert "project" not in r.json()["token"]


def test_token_method_rescope_keeps_expiry(server: LampiServer, alice: Account) -> None:
    r = post_token(server, password_body({"id": alice.user_id}, alice.password, "unscoped"))  # type: ignore[arg-type]
    assert r.status_code == 201
    unscoped = r.headers["X-Subject-Token"]
    first = r.json()["token"]
    time.sleep(0.05)
    # keystoneauth's v3.Token plugin does the re-scoping
    sess = session.Session(auth=v3.Token(auth_url=server.auth_url, token=unscoped, project_name=alice.project,
                                         project_domain_name="Default"))
    assert sess.get_project_id() == alice.project_id
    rescoped = sess.get_token()
    assert rescoped != unscoped
    access = sess.auth.get_access(sess)
    assert access.expires == parse_time(first["expires_at"]).replace(tzinfo=access.expires.tzinfo)
    # the password token's method carried over, as Keystone's token plugin does
    assert sorted(access._data["token"]["methods"]) == ["password", "token"]
    # the audit chain links it to the original token (Keystone's audit_ids[1])
    assert access.audit_chain_id == first["audit_ids"][0]
    conn = swiftclient.Connection(session=sess, retries=0)
    conn.head_account()


def test_token_method_with_bad_token_is_401(server: LampiServer) -> None:
    body = {"auth": {"identity": {"methods": ["token"], "token": {"id": "gAAAAAforged"}}}}
    assert_keystone_error(post_token(server, body), 401)


# -- validation, revocation -----------------------------------------------------------------


def test_validate_head_and_revoke_raw(server: LampiServer, alice: Account) -> None:
    caller = scoped_token(server, alice)
    subject = scoped_token(server, alice)
    url = f"{server.auth_url}/auth/tokens"
    r = requests.get(url, headers={"X-Auth-Token": caller, "X-Subject-Token": subject}, timeout=10)
    assert r.status_code == 200
    assert r.headers["X-Subject-Token"] == subject
    tok = r.json()["token"]
    assert tok["project"]["id"] == alice.project_id and tok["user"]["id"] == alice.user_id
    assert {s["type"] for s in tok["catalog"]} >= {"object-store", "identity"}
    r = requests.get(url + "?nocatalog", headers={"X-Auth-Token": caller, "X-Subject-Token": subject}, timeout=10)
    assert r.status_code == 200 and "catalog" not in r.json()["token"]
    r = requests.head(url, headers={"X-Auth-Token": caller, "X-Subject-Token": subject}, timeout=10)
    assert r.status_code == 200
    # Swift accepts it before revocation ...
    swift_url = f"{server.url}/v1/AUTH_{alice.project_id}"
    assert requests.head(swift_url, headers={"X-Auth-Token": subject}, timeout=10).status_code == 204
    r = requests.delete(url, headers={"X-Auth-Token": caller, "X-Subject-Token": subject}, timeout=10)
    assert r.status_code == 204
    # ... and refuses it after
    r = requests.get(swift_url, headers={"X-Auth-Token": subject}, timeout=10)
    assert r.status_code == 401
    assert_keystone_error(
        requests.get(url, headers={"X-Auth-Token": caller, "X-Subject-Token": subject}, timeout=10), 404)
    assert requests.head(url, headers={"X-Auth-Token": caller, "X-Subject-Token": subject}, timeout=10).status_code == 404
    # the revoked token cannot authenticate identity calls either, nor be re-scoped
    assert_keystone_error(requests.get(f"{server.auth_url}/auth/projects", headers={"X-Auth-Token": subject}, timeout=10), 401)
    assert_keystone_error(post_token(server, {"auth": {"identity": {"methods": ["token"], "token": {"id": subject}},
                                                       "scope": {"project": {"id": alice.project_id}}}}), 401)
    # the caller's own token is unaffected
    assert requests.head(swift_url, headers={"X-Auth-Token": caller}, timeout=10).status_code == 204


def test_validate_needs_both_tokens(server: LampiServer, alice: Account) -> None:
    url = f"{server.auth_url}/auth/tokens"
    caller = scoped_token(server, alice)
    assert_keystone_error(requests.get(url, headers={"X-Subject-Token": caller}, timeout=10), 401)
    assert_keystone_error(requests.get(url, headers={"X-Auth-Token": caller}, timeout=10), 400)
    assert_keystone_error(requests.get(url, headers={"X-Auth-Token": caller, "X-Subject-Token": "garbage"}, timeout=10), 404)


def test_revoking_rescoped_parent_revokes_child(server: LampiServer, alice: Account) -> None:
    r = post_token(server, password_body({"id": alice.user_id}, alice.password, "unscoped"))  # type: ignore[arg-type]
    parent = r.headers["X-Subject-Token"]
    r = post_token(server, {"auth": {"identity": {"methods": ["token"], "token": {"id": parent}},
                                     "scope": {"project": {"id": alice.project_id}}}})
    assert r.status_code == 201, r.text
    child = r.headers["X-Subject-Token"]
    swift_url = f"{server.url}/v1/AUTH_{alice.project_id}"
    assert requests.head(swift_url, headers={"X-Auth-Token": child}, timeout=10).status_code == 204
    r = requests.delete(f"{server.auth_url}/auth/tokens", headers={"X-Auth-Token": parent, "X-Subject-Token": parent},
                        timeout=10)
    assert r.status_code == 204
    assert requests.head(swift_url, headers={"X-Auth-Token": child}, timeout=10).status_code == 401


def test_other_user_cannot_validate_or_revoke_my_token(server: LampiServer, alice: Account, bob: Account,
                                                       admin: Account) -> None:
    mine, theirs = scoped_token(server, alice), scoped_token(server, bob)
    url = f"{server.auth_url}/auth/tokens"
    for method in ("GET", "DELETE"):
        r = requests.request(method, url, headers={"X-Auth-Token": theirs, "X-Subject-Token": mine}, timeout=10)
        assert_keystone_error(r, 403)
    # the cloud admin may validate it
    admin_tok = scoped_token(server, admin)
    r = requests.get(url, headers={"X-Auth-Token": admin_tok, "X-Subject-Token": mine}, timeout=10)
    assert r.status_code == 200 and r.json()["token"]["user"]["id"] == alice.user_id
    assert requests.head(f"{server.url}/v1/AUTH_{alice.project_id}", headers={"X-Auth-Token": mine},
                         timeout=10).status_code == 204


def test_keystoneclient_tokens_and_projects(server: LampiServer, alice: Account) -> None:
    sess = session.Session(auth=v3.Password(auth_url=server.auth_url, username=alice.user, password=alice.password,
                                            user_domain_name="Default", project_name=alice.project,
                                            project_domain_name="Default"))
    ks = ks_client.Client(session=sess, interface="public")
    # GET /v3/auth/projects
    assert [p.id for p in ks.auth.projects()] == [alice.project_id]
    # GET /v3/users/{id}/projects
    assert [p.name for p in ks.projects.list(user=alice.user_id)] == [alice.project]
    # GET /v3/projects is for admins
    with pytest.raises(ksa_exc.Forbidden):
        ks.projects.list()
    # validate and revoke another token of mine
    other = scoped_token(server, alice)
    access = ks.tokens.validate(other)
    assert access.project_id == alice.project_id and access.user_id == alice.user_id
    assert "member" in access.role_names
    assert access.service_catalog.url_for(service_type="object-store", endpoint_type="public") == \
        f"{server.url}/swift/v1/AUTH_{alice.project_id}"
    ks.tokens.revoke_token(other)
    with pytest.raises(ksa_exc.NotFound):
        ks.tokens.validate(other)
    assert requests.get(f"{server.url}/v1/AUTH_{alice.project_id}", headers={"X-Auth-Token": other},
                        timeout=10).status_code == 401


def test_user_projects_of_someone_else_is_403(server: LampiServer, alice: Account, bob: Account) -> None:
    tok = scoped_token(server, alice)
    r = requests.get(f"{server.auth_url}/users/{bob.user_id}/projects", headers={"X-Auth-Token": tok}, timeout=10)
    assert_keystone_error(r, 403)
    r = requests.get(f"{server.auth_url}/projects", headers={"X-Auth-Token": tok}, timeout=10)
    assert_keystone_error(r, 403)


def test_admin_lists_all_projects(server: LampiServer, admin: Account, alice: Account, bob: Account) -> None:
    sess = session.Session(auth=v3.Password(auth_url=server.auth_url, username=admin.user, password=admin.password,
                                            user_domain_id="default", project_id=admin.project_id))
    ks = ks_client.Client(session=sess, interface="public")
    names = {p.name for p in ks.projects.list()}
    assert {admin.project, alice.project, bob.project} <= names
    assert [p.id for p in ks.projects.list(user=bob.user_id)] == [bob.project_id]
    assert [p.id for p in ks.projects.list(name=alice.project)] == [alice.project_id]


def test_nocatalog_on_post(server: LampiServer, alice: Account) -> None:
    """keystoneauth's ``include_catalog=False`` sends ``POST /v3/auth/tokens?nocatalog``."""
    auth = v3.Password(auth_url=server.auth_url, user_id=alice.user_id, password=alice.password,
                       project_id=alice.project_id, include_catalog=False)
    access = auth.get_access(session.Session())
    assert access.project_id == alice.project_id
    assert "catalog" not in access._data["token"]
    r = requests.post(f"{server.auth_url}/auth/tokens",
                      json=password_body({"id": alice.user_id}, alice.password), timeout=10)
    assert "catalog" in r.json()["token"]


# -- changes made with the admin CLI end the tokens they make stale, as Keystone's
# -- revocation events do

def swift_status(server: LampiServer, acct: Account, token: str) -> int:
    return requests.head(f"{server.url}/v1/AUTH_{acct.project_id}", headers={"X-Auth-Token": token},
                         timeout=10).status_code


def test_deleting_a_user_revokes_their_tokens(server: LampiServer) -> None:
    acct = make_account(server)
    token = scoped_token(server, acct)
    assert swift_status(server, acct, token) == 204
    server.cli("user", "delete", acct.user)
    assert swift_status(server, acct, token) == 401
    assert_keystone_error(requests.get(f"{server.auth_url}/auth/projects", headers={"X-Auth-Token": token},
                                       timeout=10), 401)


def test_revoking_a_role_revokes_tokens_on_that_project_only(server: LampiServer) -> None:
    acct = make_account(server)
    other = make_account(server)
    server.cli("role", "grant", acct.user, other.project, "member")
    there_acct = Account(other.project, other.project_id, acct.user, acct.user_id, acct.password)
    here, there = scoped_token(server, acct), scoped_token(server, there_acct)
    assert swift_status(server, acct, here) == 204 and swift_status(server, there_acct, there) == 204
    server.cli("role", "revoke", acct.user, acct.project, "member")
    assert swift_status(server, acct, here) == 401
    assert swift_status(server, there_acct, there) == 204
    # a new role, a new token: access again
    server.cli("role", "grant", acct.user, acct.project, "reader")
    fresh = scoped_token(server, acct)
    assert swift_status(server, acct, fresh) == 204
    assert requests.put(f"{server.url}/v1/AUTH_{acct.project_id}/c-{uuid.uuid4().hex[:8]}",
                        headers={"X-Auth-Token": fresh}, timeout=10).status_code == 403


def test_password_change_revokes_tokens(server: LampiServer) -> None:
    acct = make_account(server)
    token = scoped_token(server, acct)
    server.cli("user", "set-password", acct.user, "--password", "n3w-Password")
    assert swift_status(server, acct, token) == 401
    assert_keystone_error(post_token(server, password_body({"id": acct.user_id}, acct.password)), 401)
    acct.password = "n3w-Password"
    assert swift_status(server, acct, scoped_token(server, acct)) == 204


def test_deleting_a_project_revokes_tokens_scoped_to_it(server: LampiServer) -> None:
    acct = make_account(server)
    token = scoped_token(server, acct)
    unscoped = post_token(server, password_body({"id": acct.user_id}, acct.password, "unscoped"))  # type: ignore[arg-type]
    server.cli("project", "delete", acct.project)
    assert swift_status(server, acct, token) == 401
    # nothing can be created in the deleted project's account
    assert requests.put(f"{server.url}/v1/AUTH_{acct.project_id}/c-{uuid.uuid4().hex[:8]}",
                        headers={"X-Auth-Token": token}, timeout=10).status_code == 401
    # the user's unscoped token still works; the project is gone from its list
    r = requests.get(f"{server.auth_url}/auth/projects", headers={"X-Auth-Token": unscoped.headers["X-Subject-Token"]},
                     timeout=10)
    assert r.status_code == 200 and r.json()["projects"] == []


# -- errors --------------------------------------------------------------------------------


def test_bad_password_and_unknown_user_both_401(server: LampiServer, alice: Account) -> None:
    wrong = assert_keystone_error(
        post_token(server, password_body({"name": alice.user, "domain": {"name": "Default"}}, "wrong")), 401)
    unknown = assert_keystone_error(
        post_token(server, password_body({"name": "nosuchuser-" + alice.user, "domain": {"name": "Default"}},
                                         alice.password)), 401)
    # the same answer: the response does not tell which users exist
    assert wrong["message"] == unknown["message"]
    assert_keystone_error(post_token(server, password_body({"id": "0" * 32}, "x")), 401)
    assert_keystone_error(post_token(server, password_body({"id": alice.user_id}, "")), 401)
    assert_keystone_error(
        post_token(server, password_body({"name": alice.user, "domain": {"name": "NoSuchDomain"}}, alice.password)), 401)
    r = post_token(server, password_body({"name": alice.user, "domain": {"name": "Default"}}, "wrong"))
    assert r.headers.get("WWW-Authenticate", "").startswith("Keystone uri=")
    # keystoneauth turns it into Unauthorized
    sess = session.Session(auth=v3.Password(auth_url=server.auth_url, username=alice.user, password="wrong",
                                            user_domain_name="Default", project_name=alice.project,
                                            project_domain_name="Default"))
    with pytest.raises(ksa_exc.Unauthorized):
        sess.get_token()


def test_unknown_project_is_404(server: LampiServer, alice: Account) -> None:
    user = {"id": alice.user_id}
    assert_keystone_error(post_token(server, password_body(
        user, alice.password, {"project": {"name": "no-such-project", "domain": {"id": "default"}}})), 404)
    assert_keystone_error(post_token(server, password_body(user, alice.password, {"project": {"id": "f" * 32}})), 404)
    tok = scoped_token(server, alice)
    assert_keystone_error(requests.get(f"{server.auth_url}/projects/{'f' * 32}", headers={"X-Auth-Token": tok},
                                       timeout=10), 404)


def test_project_names_not_revealed_without_credentials(server: LampiServer, alice: Account) -> None:
    """Wrong password: the same 401 whether the requested project exists or not."""
    user = {"name": alice.user, "domain": {"name": "Default"}}
    known = assert_keystone_error(post_token(server, password_body(
        user, "wrong", {"project": {"name": alice.project, "domain": {"name": "Default"}}})), 401)
    unknown = assert_keystone_error(post_token(server, password_body(
        user, "wrong", {"project": {"name": "no-such-project", "domain": {"name": "Default"}}})), 401)
    assert known == unknown
    assert_keystone_error(post_token(server, password_body(user, "wrong", {"project": {"id": "f" * 32}})), 401)


def test_project_without_role_is_401(server: LampiServer, alice: Account, bob: Account) -> None:
    r = post_token(server, password_body({"id": alice.user_id}, alice.password, {"project": {"id": bob.project_id}}))
    assert_keystone_error(r, 401)


@pytest.mark.parametrize("body", [
    "{not json",
    "",
    "[]",
    "null",
    '"auth"',
    "\xff\xfe",
    '{"auth": {}}',
    '{"auth": "x"}',
    '{"auth": {"identity": {}}}',
    '{"auth": {"identity": {"methods": "password"}}}',
    '{"auth": {"identity": {"methods": []}}}',
    '{"auth": {"identity": {"methods": [1]}}}',
    '{"auth": {"identity": {"methods": ["password"]}}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {}}}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": "bob"}}}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "bob"}}}}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"password": "x"}}}}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": 7, "password": "x"}}}}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "u", "password": 7}}}}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u", "password": "x"}}}}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u", "domain": "d", "password": "x"}}}}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "u", "password": "x"}}}, "scope": 5}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "u", "password": "x"}}}, "scope": {"project": {"name": "p"}}}}',
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "u", "password": "x"}}}, "scope": {"project": {"id": 5}}}}',
    '{"auth": {"identity": {"methods": ["token"], "token": {}}}}',
    '{"auth": {"identity": {"methods": ["token"], "token": {"id": ["x"]}}}}',
])
def test_malformed_auth_body_is_400(server: LampiServer, body: str) -> None:
    assert_keystone_error(post_token(server, body.encode("latin-1")), 400)


def test_oversized_auth_body_is_rejected(server: LampiServer) -> None:
    body = '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "u", "password": "%s"}}}}}' % (
        "x" * 200_000)
    r = post_token(server, body)
    assert r.status_code in (400, 413)
    assert_keystone_error(r, r.status_code)


def test_unsupported_method_is_401(server: LampiServer) -> None:
    body = {"auth": {"identity": {"methods": ["totp"], "totp": {"user": {"id": "u", "passcode": "1"}}}}}
    assert_keystone_error(post_token(server, body), 401)


def test_identity_calls_need_a_token(server: LampiServer) -> None:
    for path in ("/auth/projects", "/projects", "/users/abc/projects"):
        assert_keystone_error(requests.get(server.auth_url + path, timeout=10), 401)
        assert_keystone_error(requests.get(server.auth_url + path, headers={"X-Auth-Token": "forged"}, timeout=10), 401)


def test_unknown_identity_path_is_404_and_wrong_method_405(server: LampiServer) -> None:
    assert_keystone_error(requests.get(server.auth_url + "/no/such/thing", timeout=10), 404)
    assert_keystone_error(requests.put(server.auth_url + "/auth/tokens", timeout=10), 405)


# -- tokens on the Swift API ---------------------------------------------------------------------


def test_forged_and_garbled_tokens_are_401_on_swift(server: LampiServer, alice: Account) -> None:
    good = scoped_token(server, alice)
    url = f"{server.url}/v1/AUTH_{alice.project_id}"
    mid = len(good) // 2
    garbled = good[:mid] + ("A" if good[mid] != "A" else "B") + good[mid + 1:]
    for bad in ("forged", "gAAAAA" + "x" * 150, garbled, good[:-4], good + "AAAA", "x" * 5000, "tøken"):
        r = requests.get(url, headers={"X-Auth-Token": bad.encode()}, timeout=10)
        assert r.status_code == 401, (bad[:20], r.status_code)
        assert "X-Trans-Id" in r.headers
    # the same bad tokens under /swift/v1 and on a container path
    r = requests.put(f"{server.url}/swift/v1/AUTH_{alice.project_id}/c-forged", headers={"X-Auth-Token": garbled},
                     timeout=10)
    assert r.status_code == 401
    assert requests.get(url, headers={"X-Auth-Token": good}, timeout=10).status_code in (200, 204)


def test_project_scope_enforced_on_swift(server: LampiServer, alice: Account, bob: Account, admin: Account,
                                         unique: str) -> None:
    a_tok = scoped_token(server, alice)
    bob_url = f"{server.url}/v1/AUTH_{bob.project_id}"
    assert requests.get(bob_url, headers={"X-Auth-Token": a_tok}, timeout=10).status_code == 403
    assert requests.put(f"{bob_url}/{unique}", headers={"X-Auth-Token": a_tok}, timeout=10).status_code == 403
    assert requests.get(bob_url, timeout=10).status_code == 401
    assert requests.put(f"{bob_url}/{unique}", timeout=10).status_code == 401
    # the cloud admin (admin role on the admin project) reaches every account
    adm = scoped_token(server, admin)
    r = requests.put(f"{bob_url}/{unique}", headers={"X-Auth-Token": adm}, timeout=10)
    assert r.status_code == 201
    b_tok = scoped_token(server, bob)
    r = requests.get(bob_url, headers={"X-Auth-Token": b_tok}, timeout=10)
    assert unique in r.text.split()
    assert requests.delete(f"{bob_url}/{unique}", headers={"X-Auth-Token": adm}, timeout=10).status_code == 204


def test_admin_role_on_ordinary_project_is_not_cloud_admin(server: LampiServer, bob: Account) -> None:
    padmin = make_account(server, role="admin")
    tok = scoped_token(server, padmin)
    assert requests.head(f"{server.url}/v1/AUTH_{padmin.project_id}", headers={"X-Auth-Token": tok},
                         timeout=10).status_code == 204
    assert requests.head(f"{server.url}/v1/AUTH_{bob.project_id}", headers={"X-Auth-Token": tok},
                         timeout=10).status_code == 403
    r = requests.get(f"{server.auth_url}/projects", headers={"X-Auth-Token": tok}, timeout=10)
    assert_keystone_error(r, 403)


def test_reader_can_read_but_not_write(server: LampiServer, alice: Account, unique: str) -> None:
    owner = scoped_token(server, alice)
    url = f"{server.url}/v1/AUTH_{alice.project_id}"
    assert requests.put(f"{url}/{unique}", headers={"X-Auth-Token": owner}, timeout=10).status_code == 201
    assert requests.put(f"{url}/{unique}/o", data=b"data", headers={"X-Auth-Token": owner}, timeout=10).status_code == 201
    reader = make_account(server, role="reader", project=alice.project)
    rtok = scoped_token(server, reader)
    r = requests.post(f"{server.auth_url}/auth/tokens", timeout=10, json=password_body(
        {"id": reader.user_id}, reader.password, {"project": {"id": alice.project_id}}))
    assert [ro["name"] for ro in r.json()["token"]["roles"]] == ["reader"]
    h = {"X-Auth-Token": rtok}
    assert requests.get(url, headers=h, timeout=10).status_code == 200
    assert requests.get(f"{url}/{unique}", headers=h, timeout=10).text.split() == ["o"]
    assert requests.get(f"{url}/{unique}/o", headers=h, timeout=10).content == b"data"
    assert requests.head(f"{url}/{unique}/o", headers=h, timeout=10).status_code == 200
    assert requests.put(f"{url}/{unique}/o", data=b"evil", headers=h, timeout=10).status_code == 403
    assert requests.put(f"{url}/{unique}/new", data=b"evil", headers=h, timeout=10).status_code == 403
    assert requests.post(f"{url}/{unique}/o", headers={**h, "X-Object-Meta-X": "y"}, timeout=10).status_code == 403
    assert requests.delete(f"{url}/{unique}/o", headers=h, timeout=10).status_code == 403
    assert requests.put(f"{url}/{unique}-2", headers=h, timeout=10).status_code == 403
    assert requests.post(url, headers={**h, "X-Account-Meta-X": "y"}, timeout=10).status_code == 403
    # nothing changed
    assert requests.get(f"{url}/{unique}/o", headers={"X-Auth-Token": owner}, timeout=10).content == b"data"
    assert requests.delete(f"{url}/{unique}/o", headers={"X-Auth-Token": owner}, timeout=10).status_code == 204
    assert requests.delete(f"{url}/{unique}", headers={"X-Auth-Token": owner}, timeout=10).status_code == 204


# -- dedicated servers -----------------------------------------------------------------------------


def test_expired_token(fresh_server: LampiServer) -> None:
    fresh_server.extra_args = ["--token-ttl", "2"]
    fresh_server.start()
    rc = fresh_server.openrc()
    r = post_token(fresh_server, password_body({"name": rc["OS_USERNAME"], "domain": {"id": "default"}},
                                               rc["OS_PASSWORD"],
                                               {"project": {"name": rc["OS_PROJECT_NAME"], "domain": {"id": "default"}}}))
    assert r.status_code == 201
    tok = r.json()["token"]
    assert 1 <= (parse_time(tok["expires_at"]) - parse_time(tok["issued_at"])).total_seconds() <= 2.5
    token = r.headers["X-Subject-Token"]
    url = f"{fresh_server.url}/v1/AUTH_{tok['project']['id']}"
    assert requests.head(url, headers={"X-Auth-Token": token}, timeout=10).status_code == 204
    time.sleep(2.2)
    assert requests.head(url, headers={"X-Auth-Token": token}, timeout=10).status_code == 401
    assert requests.get(url, headers={"X-Auth-Token": token}, timeout=10).status_code == 401
    assert_keystone_error(requests.get(f"{fresh_server.auth_url}/auth/projects", headers={"X-Auth-Token": token},
                                       timeout=10), 401)
    # an expired token cannot be re-scoped into a fresh one
    assert_keystone_error(post_token(fresh_server, {"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
                                                             "scope": {"project": {"id": tok["project"]["id"]}}}}), 401)


def test_revocation_honoured_by_all_workers(fresh_server: LampiServer) -> None:
    fresh_server.workers = 2
    fresh_server.start()
    rc = fresh_server.openrc()
    r = post_token(fresh_server, password_body({"name": rc["OS_USERNAME"], "domain": {"name": "Default"}},
                                               rc["OS_PASSWORD"],
                                               {"project": {"name": rc["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}))
    token, pid = r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]
    url = f"{fresh_server.url}/v1/AUTH_{pid}"

    def burst() -> list[int]:
        # concurrent requests, a new connection each, so both workers answer
        def one(_: int) -> int:
            return requests.head(url, headers={"X-Auth-Token": token, "Connection": "close"}, timeout=10).status_code

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(60)))

    def worker_pids(status: int) -> set[int]:
        pids = set()
        for line in fresh_server.log().splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                if rec.get("logger") == "lampi.access" and rec.get("method") == "HEAD" and rec.get("status") == status:
                    pids.add(rec["pid"])
        return pids

    # warm both workers first: each caches the revocation list
    assert burst() == [204] * 60
    assert len(worker_pids(204)) == 2, "both workers should have answered"
    r = requests.delete(f"{fresh_server.auth_url}/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token},
                        timeout=10)
    assert r.status_code == 204
    assert burst() == [401] * 60
    assert worker_pids(401) == worker_pids(204)


def test_secrets_never_logged(server: LampiServer, admin: Account, alice: Account) -> None:
    token = scoped_token(server, admin)
    a_tok = scoped_token(server, alice)
    hdr = {"X-Auth-Token": token}
    requests.get(f"{server.url}/v1/AUTH_{admin.project_id}", headers=hdr, timeout=10)
    requests.get(f"{server.auth_url}/auth/tokens", headers={**hdr, "X-Subject-Token": a_tok}, timeout=10)
    requests.delete(f"{server.auth_url}/auth/tokens", headers={**hdr, "X-Subject-Token": a_tok}, timeout=10)
    requests.get(f"{server.url}/v1/AUTH_{admin.project_id}", headers={"X-Auth-Token": a_tok}, timeout=10)
    # failures too: a wrong password next to the right one, a body that is not JSON
    post_token(server, password_body({"name": admin.user, "domain": {"name": "Default"}}, admin.password + "x"))
    post_token(server, '{"auth": {"identity": "%s' % admin.password)
    requests.get(f"{server.url}/auth/v1.0", headers={"X-Auth-User": f"{admin.project}:{admin.user}",
                                                     "X-Auth-Key": admin.password}, timeout=10)
    requests.get(f"{server.url}/v1/AUTH_{admin.project_id}?token={token}&password={admin.password}",
                 headers=hdr, timeout=10)
    time.sleep(0.2)
    log = server.log()
    assert log
    for secret in (admin.password, alice.password, token, a_tok, token[:40]):
        assert secret not in log


def test_storage_url_form_swift(fresh_server) -> None:  # noqa: ANN001
    """``storage_url_form = "swift"``: the catalog gives Swift's /v1/AUTH_<id> form (for
    tools that take its second path segment for the account); both forms are served."""
    fresh_server.extra_args = ["--storage-url-form", "swift"]
    fresh_server.start()
    rc = fresh_server.openrc()
    conn = swiftclient.Connection(authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": rc["OS_PROJECT_NAME"]}, auth_version="3", retries=0)
    url, token = conn.get_auth()
    assert re.fullmatch(re.escape(fresh_server.url) + r"/v1/AUTH_[0-9a-f]+", url), url
    conn.put_container("c")
    _, body = swiftclient.get_container(url.replace("/v1/", "/swift/v1/"), token, "c")
    assert body == []
    res = subprocess.run([*lampi_cmd(), "serve", "--storage-url-form", "tenant", "--data-dir",
                          str(fresh_server.data_dir)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "tenant" in res.stderr
