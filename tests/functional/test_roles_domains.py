"""Roles and domains as Swift's keystoneauth and Keystone have them, made with the admin
CLI (``lampi role create|list|delete``, ``lampi domain create|list|delete``, ``--domain``)
and checked with real clients: python-swiftclient (Keystone v3 and v1.0 auth), the
``swift`` and ``openstack`` CLIs, raw HTTP for what they do not send.

What a role gives on a project's storage (lampi.core.authz): admin, member and
swiftoperator are operators (everything, ACLs included), reader reads, ResellerAdmin
reaches every account, any other role nothing beyond what ACLs grant.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
import requests
import swiftclient
from swiftclient.exceptions import ClientException

from tests.functional.conftest import LampiServer
from tests.functional.test_admin_cli import fails, no_traceback
from tests.functional.test_openstack_cli import oj, openstack


def connect(server: LampiServer, user: str, password: str, project: str, domain: str = "Default",
            v1: bool = False) -> swiftclient.Connection:
    if v1:
        return swiftclient.Connection(authurl=f"{server.url}/auth/v1.0", user=f"{project}:{user}", key=password,
                                      auth_version="1", retries=0)
    return swiftclient.Connection(
        authurl=server.auth_url, user=user, key=password, auth_version="3", retries=0,
        os_options={"user_domain_name": domain, "project_domain_name": domain, "project_name": project},
    )


def status(fn, *a, **kw) -> int:  # noqa: ANN001
    """The HTTP status of a swiftclient call (2xx: 200)."""
    try:
        fn(*a, **kw)
    except ClientException as exc:
        return exc.http_status or 0
    return 200


class Project:
    """A project with an owner (member role) and a container with an object."""

    def __init__(self, server: LampiServer) -> None:
        tag = uuid.uuid4().hex[:10]
        self.server = server
        self.name = f"p{tag}"
        self.id = server.cli("project", "create", self.name).stdout.strip()
        self.owner = f"o{tag}"
        server.cli("user", "create", self.owner, "--password", "pw", "--project", self.name, "--role", "member")
        self.conn = connect(server, self.owner, "pw", self.name)
        self.container = f"c{tag}"
        self.conn.put_container(self.container)
        self.conn.put_object(self.container, "obj", b"data")

    def user(self, role: str) -> tuple[str, swiftclient.Connection]:
        """A new user of the project with ``role`` only."""
        name = f"u{uuid.uuid4().hex[:10]}"
        self.server.cli("user", "create", name, "--password", "pw", "--project", self.name, "--role", role)
        return name, connect(self.server, name, "pw", self.name)


@pytest.fixture(scope="module")
def anotherrole(server: LampiServer) -> str:
    res = server.cli("role", "create", "anotherrole", check=False)
    assert res.returncode == 0 or "exists" in res.stderr, res.stderr
    return "anotherrole"


def test_role_create_list_delete(server: LampiServer) -> None:
    name = "r" + uuid.uuid4().hex[:8]
    rid = server.cli("role", "create", name).stdout.strip()
    assert len(rid) == 32
    listed = json.loads(server.cli("role", "list", "--json").stdout)
    names = [r["name"] for r in listed]
    # the built-in roles first, in this order, then the ones made with `role create`
    assert names[:6] == ["admin", "member", "reader", "service", "swiftoperator", "ResellerAdmin"]
    assert {"id": rid, "name": name, "builtin": False} in listed
    assert all(r["builtin"] for r in listed[:6])
    assert name in server.cli("role", "list").stdout
    # names are unique whatever their case; built-in ones cannot be made or deleted
    fails(server.cli("role", "create", name.upper(), check=False), "exists")
    fails(server.cli("role", "create", "Admin", check=False), "exists")
    fails(server.cli("role", "create", "", check=False), "role name")
    fails(server.cli("role", "delete", "member", check=False), "built in")
    fails(server.cli("role", "delete", "no-such-role", check=False), "could not find role")
    server.cli("role", "delete", name)
    assert name not in [r["name"] for r in json.loads(server.cli("role", "list", "--json").stdout)]


def test_unknown_role_is_one_line(server: LampiServer) -> None:
    p = Project(server)
    res = server.cli("role", "grant", p.owner, p.name, "no-such-role", check=False)
    fails(res, "could not find role: no-such-role", "reader", "lampi role create")
    assert len(res.stderr.strip().splitlines()) == 1


def test_custom_role_gives_no_storage_rights_beyond_acls(server: LampiServer, anotherrole: str) -> None:
    """keystoneauth: a role that is no operator role makes a project member with no
    rights of its own (the suite's user 3); ACLs grant it, by name, id or role."""
    p = Project(server)
    user, conn = p.user(anotherrole)
    # it logs in (scoped to the project, the role in its token) ...
    url, token = conn.get_auth()
    assert url.endswith(f"/AUTH_{p.id}")
    # ... and may do nothing there
    assert status(conn.head_account) == 403
    assert status(conn.get_container, p.container) == 403
    assert status(conn.get_object, p.container, "obj") == 403
    assert status(conn.put_container, "x" + p.container) == 403
    assert status(conn.put_object, p.container, "new", b"x") == 403
    # a read ACL naming the user, or the role (keystoneauth's role match in its own project)
    for grantee in (f"{p.name}:{user}", f"{p.id}:*", anotherrole, anotherrole.upper()):
        p.conn.post_container(p.container, {"X-Container-Read": grantee})
        assert conn.get_object(p.container, "obj")[1] == b"data", grantee
        assert status(conn.put_object, p.container, "new", b"x") == 403
        # reading through an ACL gives no swift_owner rights: ACLs stay hidden and unchangeable
        assert "x-container-read" not in conn.head_container(p.container)
        assert status(conn.post_container, p.container, {"X-Container-Read": ".r:*"}) == 403
    p.conn.post_container(p.container, {"X-Container-Write": anotherrole})
    conn.put_object(p.container, "new", b"x")
    assert p.conn.get_object(p.container, "new")[1] == b"x"
    assert p.conn.head_container(p.container)["x-container-read"] == anotherrole.upper()


def test_operator_and_reader_roles(server: LampiServer) -> None:
    p = Project(server)
    _, op = p.user("swiftoperator")  # keystoneauth's default operator role
    op.post_container(p.container, {"X-Container-Read": ".r:*"})  # an operator sets ACLs
    op.put_object(p.container, "by-operator", b"x")
    assert op.head_container(p.container)["x-container-read"] == ".r:*"
    _, rd = p.user("reader")
    assert rd.get_object(p.container, "obj")[1] == b"data"
    assert rd.head_account()["x-account-container-count"] == "1"
    assert "x-container-read" not in rd.head_container(p.container)  # no swift_owner rights
    assert status(rd.put_object, p.container, "r", b"x") == 403
    assert status(rd.post_container, p.container, {"X-Container-Read": ""}) == 403
    # as on Allas, a project member (the owner here) is an operator: it sets ACLs
    p.conn.post_container(p.container, {"X-Container-Read": ""})
    assert "x-container-read" not in p.conn.head_container(p.container)


def test_reseller_admin_reaches_every_account(server: LampiServer) -> None:
    """ResellerAdmin on its own project is owner of every account, with Keystone v3 and
    v1.0 auth (Swift's reseller admin: the suite's user 6)."""
    home, other = Project(server), Project(server)
    # an admin of another project reaches nothing of it (admin is no reseller role)
    adm, adm_conn = home.user("admin")
    url, token = adm_conn.get_auth()
    r = requests.get(url.rsplit("/", 1)[0] + f"/AUTH_{other.id}/{other.container}/obj",
                     headers={"X-Auth-Token": token})
    assert r.status_code == 403
    ra, _ = home.user("ResellerAdmin")
    for conn in (connect(server, ra, "pw", home.name), connect(server, ra, "pw", home.name, v1=True)):
        url, token = conn.get_auth()
        other_url = url.rsplit("/", 1)[0] + f"/AUTH_{other.id}"
        r = requests.get(f"{other_url}/{other.container}/obj", headers={"X-Auth-Token": token})
        assert r.status_code == 200 and r.content == b"data"
        assert requests.put(f"{other_url}/{other.container}/ra", data=b"y",
                            headers={"X-Auth-Token": token}).status_code == 201
        # swift_owner there: sees (and sets) the privileged headers
        assert requests.post(f"{other_url}/{other.container}", headers={
            "X-Auth-Token": token, "X-Container-Read": f"{home.id}:*"}).status_code == 204
        assert requests.head(f"{other_url}/{other.container}", headers={
            "X-Auth-Token": token}).headers["X-Container-Read"] == f"{home.id}:*"
    assert other.conn.get_object(other.container, "ra")[1] == b"y"


def test_reseller_admin_with_swift_cli_v1(server: LampiServer, unique: str) -> None:
    home, other = Project(server), Project(server)
    ra, _ = home.user("ResellerAdmin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    url = connect(server, ra, "pw", home.name, v1=True).get_auth()[0].rsplit("/", 1)[0] + f"/AUTH_{other.id}"
    base = ["swift", "-A", f"{server.url}/auth/v1.0", "-U", f"{home.name}:{ra}", "-K", "pw", "--os-storage-url", url]
    proc = subprocess.run([*base, "list"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split() == [other.container], proc.stderr
    proc = subprocess.run([*base, "post", "-m", "by:reseller", other.container], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert other.conn.head_container(other.container)["x-container-meta-by"] == "reseller"


def test_role_delete_ends_its_assignments_and_tokens(server: LampiServer) -> None:
    p = Project(server)
    role = "tmp" + uuid.uuid4().hex[:6]
    server.cli("role", "create", role)
    user, conn = p.user(role)
    url, token = conn.get_auth()
    assert requests.head(url, headers={"X-Auth-Token": token}).status_code == 403  # a valid token, no rights
    server.cli("role", "delete", role)
    assert requests.head(url, headers={"X-Auth-Token": token}).status_code == 401  # the token carried it
    users = json.loads(server.cli("user", "list", "--json").stdout)
    assert next(u for u in users if u["name"] == user)["roles"] == []


def test_domains_cli_login_and_names(server: LampiServer, unique: str) -> None:
    dom = "d" + unique
    did = server.cli("domain", "create", dom).stdout.strip()
    assert len(did) == 32
    assert {"id": did, "name": dom, "enabled": True} in json.loads(server.cli("domain", "list", "--json").stdout)
    fails(server.cli("domain", "create", dom, check=False), "exists")
    # a project and a user of the same names in Default and in the new domain
    for d in (None, dom):
        extra = ["--domain", d] if d else []
        server.cli("project", "create", unique, *extra)
        server.cli("user", "create", unique, "--password", f"pw-{d}", "--project", unique, "--role", "member", *extra)
    projects = [p for p in json.loads(server.cli("project", "list", "--json").stdout) if p["name"] == unique]
    assert sorted(p["domain_id"] for p in projects) == sorted(["default", did])
    users = [u for u in json.loads(server.cli("user", "list", "--json").stdout) if u["name"] == unique]
    assert sorted(u["domain_id"] for u in users) == sorted(["default", did])
    pid = next(p["id"] for p in projects if p["domain_id"] == did)
    # Keystone v3 login by names in the domain
    conn = connect(server, unique, f"pw-{dom}", unique, domain=dom)
    url = conn.get_auth()[0]
    assert url.endswith(f"/AUTH_{pid}")
    conn.put_container(unique)
    # keystoneauth's X-Account-Project-Domain-Id
    assert conn.head_account()["x-account-project-domain-id"] == did
    assert connect(server, unique, "pw-None", unique).head_account()["x-account-project-domain-id"] == "default"
    # the wrong domain's password does not log in
    assert status(connect(server, unique, "pw-None", unique, domain=dom).get_auth) in (0, 401)
    # admin commands name them with --domain
    server.cli("role", "grant", unique, unique, "reader", "--domain", dom)
    assert "reader" in [r["role"] for r in next(u for u in json.loads(server.cli("user", "list", "--json").stdout)
                                                  if u["domain_id"] == did)["roles"]]
    server.cli("user", "set-password", unique, "--password", "new", "--domain", dom)
    conn = connect(server, unique, "new", unique, domain=dom)
    conn.head_account()
    cred = json.loads(server.cli("credential", "create", unique, unique, "--domain", dom, "--json").stdout)
    assert cred["project_id"] == pid
    # a domain with projects or users is not deleted; Default never
    fails(server.cli("domain", "delete", dom, check=False), "project")
    fails(server.cli("domain", "delete", "Default", check=False), "default domain")
    fails(server.cli("project", "create", "x" + unique, "--domain", "no-such-domain", check=False),
          "could not find domain")
    fails(server.cli("user", "delete", unique, "--domain", "no-such-domain", check=False), "could not find domain")
    conn.delete_container(unique)
    server.cli("credential", "delete", cred["access"])
    server.cli("user", "delete", unique, "--domain", dom)
    server.cli("project", "delete", unique, "--domain", dom)
    server.cli("domain", "delete", dom)
    assert dom not in [d["name"] for d in json.loads(server.cli("domain", "list", "--json").stdout)]
    server.cli("user", "delete", unique)
    server.cli("project", "delete", unique)


def test_names_in_acls_only_for_the_default_domain(server: LampiServer, unique: str) -> None:
    """keystoneauth's _is_name_allowed_in_acl: a user of another domain is matched by ids,
    never by names (which another domain may repeat)."""
    dom = "n" + unique
    server.cli("domain", "create", dom)
    server.cli("project", "create", unique, "--domain", dom)
    server.cli("user", "create", unique, "--password", "pw", "--project", unique, "--role", "member", "--domain", dom)
    conn = connect(server, unique, "pw", unique, domain=dom)
    url, token = conn.get_auth()
    pid = url.rsplit("_", 1)[1]
    p = Project(server)
    target = f"{p.conn.get_auth()[0]}/{p.container}/obj"
    p.conn.post_container(p.container, {"X-Container-Read": f"{unique}:{unique}"})
    assert requests.get(target, headers={"X-Auth-Token": token}).status_code == 403
    p.conn.post_container(p.container, {"X-Container-Read": f"{pid}:*"})
    assert requests.get(target, headers={"X-Auth-Token": token}).status_code == 200


def test_openstack_lists_domains_and_roles(server: LampiServer, openrc_env: dict[str, str],
                                           anotherrole: str, unique: str) -> None:
    dom = "o" + unique
    did = server.cli("domain", "create", dom).stdout.strip()
    domains = oj(openrc_env, "domain", "list")
    assert {"ID": did, "Name": dom} in [{"ID": d["ID"], "Name": d["Name"]} for d in domains]
    assert oj(openrc_env, "domain", "show", dom)["id"] == did
    roles = {r["Name"] for r in oj(openrc_env, "role", "list")}
    assert {"admin", "member", "reader", "ResellerAdmin", anotherrole} <= roles
    assert oj(openrc_env, "role", "show", anotherrole)["name"] == anotherrole
    proc = openstack(openrc_env, "domain", "show", "no-such-domain", check=False)
    assert proc.returncode != 0
    no_traceback(proc)
    server.cli("domain", "delete", dom)


def test_keystone_api_unknown_role_and_domain_404(server: LampiServer, swift_conn) -> None:  # noqa: ANN001
    token = swift_conn.get_auth()[1]
    for path, what in (("/v3/roles/no-such-role", "role"), ("/v3/domains/no-such-domain", "domain")):
        r = requests.get(server.url + path, headers={"X-Auth-Token": token})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == 404 and what in r.json()["error"]["message"]
    roles = requests.get(f"{server.url}/v3/roles?name=ResellerAdmin", headers={"X-Auth-Token": token}).json()
    assert [r["name"] for r in roles["roles"]] == ["ResellerAdmin"]
    # a token's roles carry the same ids as /v3/roles
    body = requests.get(f"{server.url}/v3/auth/tokens", headers={"X-Auth-Token": token,
                                                                "X-Subject-Token": token}).json()
    ids = {r["id"] for r in requests.get(f"{server.url}/v3/roles", headers={"X-Auth-Token": token}).json()["roles"]}
    assert {r["id"] for r in body["token"]["roles"]} <= ids
