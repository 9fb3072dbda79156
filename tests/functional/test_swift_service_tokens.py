"""Service tokens, as Swift's keystoneauth has them (``reseller_prefix = AUTH, SERVICE``,
``SERVICE_service_roles = service``): a project's ``SERVICE_<project_id>`` account is a
second account of the project, reached only with the project's operator token in
``X-Auth-Token`` *and* a token carrying the ``service`` role in ``X-Service-Token``.
Checked with raw HTTP (what Swift's suite sends) and python-swiftclient."""

from __future__ import annotations

import uuid

import pytest
import requests
import swiftclient

from tests.functional.conftest import LampiServer
from tests.functional.test_admin_cli import fails


def _login(server: LampiServer, user: str, project: str) -> tuple[str, str]:
    conn = swiftclient.Connection(
        authurl=server.auth_url, user=user, key="pw", auth_version="3", retries=0,
        os_options={"user_domain_name": "Default", "project_domain_name": "Default", "project_name": project})
    return conn.get_auth()


@pytest.fixture(scope="module")
def accounts(server: LampiServer) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    out: dict[str, str] = {}
    for who, role in (("user", "member"), ("service", "service"), ("reader", "reader")):
        project = f"{who}{tag}"
        out[f"{who}_project"] = server.cli("project", "create", project).stdout.strip()
        server.cli("user", "create", f"{who}{tag}", "--password", "pw", "--project", project, "--role", role)
        url, out[who] = _login(server, f"{who}{tag}", project)
        out[f"{who}_url"] = url
    # a user with the reader role on the user's project
    server.cli("user", "create", f"r{tag}", "--password", "pw", "--project", f"user{tag}", "--role", "reader")
    out["reader_of_user"] = _login(server, f"r{tag}", f"user{tag}")[1]
    out["base"] = out["user_url"].rsplit("/", 1)[0]
    out["service_account"] = f"{out['base']}/SERVICE_{out['user_project']}"
    out["tag"] = tag
    return out


def _req(method: str, url: str, token: str | None = None, service: str | None = None,
         data: bytes | None = None) -> requests.Response:
    headers = {}
    if token:
        headers["X-Auth-Token"] = token
    if service:
        headers["X-Service-Token"] = service
    return requests.request(method, url, headers=headers, data=data, timeout=60)


def test_user_and_service_token_together_reach_the_service_account(accounts: dict[str, str]) -> None:
    acct, user, service = accounts["service_account"], accounts["user"], accounts["service"]
    c = f"{acct}/svc{accounts['tag']}"
    assert _req("HEAD", acct, user, service).status_code == 204
    assert _req("PUT", c, user, service).status_code == 201
    assert _req("PUT", f"{c}/o", user, service, b"service data").status_code == 201
    r = _req("GET", f"{c}/o", user, service)
    assert r.status_code == 200 and r.content == b"service data"
    assert _req("POST", f"{c}/o", user, service).status_code == 202
    listing = _req("GET", acct, user, service)
    assert listing.status_code == 200 and listing.text.split() == [f"svc{accounts['tag']}"]
    # swift_owner there: the operator sets ACLs on the service account's containers
    assert _req("POST", c, user, service).status_code == 204
    # the project's own AUTH_ account does not see the service account's containers
    assert f"svc{accounts['tag']}" not in _req("GET", accounts["user_url"], user).text.split()
    # account PUT and DELETE stay refused, as keystoneauth's (and allow_account_management=false)
    assert _req("PUT", acct, user, service).status_code // 100 == 4
    assert _req("DELETE", acct, user, service).status_code // 100 == 4
    assert _req("DELETE", f"{c}/o", user, service).status_code == 204
    assert _req("DELETE", c, user, service).status_code == 204


@pytest.mark.parametrize("who", ["user only", "service only", "service as both", "user as both",
                                 "reader with service", "service without auth token"])
def test_service_account_refuses_one_token(accounts: dict[str, str], who: str) -> None:
    user, service = accounts["user"], accounts["service"]
    token, svc = {
        "user only": (user, None),  # the project's operator alone: 403
        "service only": (service, None),  # the service user's own token: not the project's
        "service as both": (service, service),
        "user as both": (user, user),  # X-Service-Token without the service role
        "reader with service": (accounts["reader_of_user"], service),  # no operator role: reads only
        "service without auth token": (None, service),  # anonymous
    }[who]
    expected = 401 if token is None else 403
    acct = accounts["service_account"]
    for method, url in (("HEAD", acct), ("GET", acct), ("PUT", f"{acct}/x{accounts['tag']}"),
                        ("POST", acct)):
        got = _req(method, url, token, svc).status_code
        if who == "reader with service" and method in ("HEAD", "GET"):
            assert got in (200, 204), (method, url)  # the reader role reads, with the service token
        else:
            assert got == expected, (method, url)


def test_invalid_service_token_is_401(accounts: dict[str, str]) -> None:
    for url in (accounts["service_account"], accounts["user_url"]):
        assert _req("HEAD", url, accounts["user"], "not-a-token").status_code == 401


def test_service_token_changes_nothing_on_the_auth_account(accounts: dict[str, str]) -> None:
    assert _req("HEAD", accounts["user_url"], accounts["user"]).status_code == 204
    assert _req("HEAD", accounts["user_url"], accounts["user"], accounts["service"]).status_code == 204
    # the service user cannot reach the user's AUTH_ account with both tokens either
    assert _req("HEAD", accounts["user_url"], accounts["service"], accounts["service"]).status_code == 403


def test_swiftclient_service_token(server: LampiServer, accounts: dict[str, str]) -> None:
    """python-swiftclient's service user (``os_options`` service_username/service_key): it
    logs both users in (v1.0 auth here) and sends X-Service-Token beside X-Auth-Token."""
    tag = accounts["tag"]
    conn = swiftclient.Connection(
        authurl=f"{server.url}/auth/v1.0", user=f"user{tag}:user{tag}", key="pw", auth_version="1", retries=0,
        preauthurl=accounts["service_account"],
        os_options={"service_username": f"service{tag}:service{tag}", "service_key": "pw"})
    name = f"sc{accounts['tag']}"
    conn.put_container(name)
    conn.put_object(name, "o", b"via swiftclient")
    assert conn.get_object(name, "o")[1] == b"via swiftclient"
    alone = swiftclient.Connection(preauthurl=accounts["service_account"], preauthtoken=accounts["user"],
                                   retries=0)
    with pytest.raises(swiftclient.ClientException) as exc:
        alone.get_object(name, "o")
    assert exc.value.http_status == 403
    # the project cannot be deleted while its service account has containers
    fails(server.cli("project", "delete", accounts["user_project"], check=False), "container")
    conn.delete_object(name, "o")
    conn.delete_container(name)


def test_reseller_admin_reaches_service_accounts(server: LampiServer, accounts: dict[str, str]) -> None:
    """keystoneauth checks the reseller admin role first: no service token needed."""
    server.cli("user", "create", f"ra{accounts['tag']}", "--password", "pw", "--project",
               f"service{accounts['tag']}", "--role", "ResellerAdmin")
    _, token = _login(server, f"ra{accounts['tag']}", f"service{accounts['tag']}")
    assert _req("HEAD", accounts["service_account"], token).status_code == 204
    # a SERVICE_ account of no project is not made
    assert _req("HEAD", f"{accounts['base']}/SERVICE_{uuid.uuid4().hex}", token).status_code == 404
