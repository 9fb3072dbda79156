"""Helpers for the web console's tests: a console server and a requests-driven user."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import requests

from tests.functional.conftest import LampiServer


def rc_password(server: LampiServer) -> str:
    return server.openrc()["OS_PASSWORD"]


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:2000]
    return m.group(1)


@dataclass
class ConsoleUser:
    """One browser-like session (cookies kept) against the console of ``server``."""

    server: LampiServer  # or anything with a console_port (test_tls.TLSServer)
    http: requests.Session = field(default_factory=requests.Session)
    csrf: str = ""
    scheme: str = "http"
    host: str = "127.0.0.1"
    verify: bool | str = True  # per request: REQUESTS_CA_BUNDLE would override a Session's verify

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}:{self.server.console_port}"

    def get(self, path: str, **kw) -> requests.Response:  # noqa: ANN003
        return self.http.get(self.base + path, timeout=120, verify=self.verify, **kw)

    def post(self, path: str, data: dict | None = None, csrf: bool = True, **kw) -> requests.Response:  # noqa: ANN003
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf", self.csrf)
        return self.http.post(self.base + path, data=data, timeout=120, verify=self.verify, **kw)

    def login(self, user: str, password: str, domain: str = "Default", project: str | None = None) -> requests.Response:
        page = self.get("/login")
        r = self.http.post(self.base + "/login", data={"user": user, "password": password, "domain": domain,
                                                        "csrf": csrf_of(page.text)}, timeout=120,
                           verify=self.verify)
        if r.status_code == 200 and "/projects" in r.url and project is not None:
            self.csrf = csrf_of(r.text)
            r = self.post("/projects", {"project": project})
        if r.status_code == 200 and "csrf-token" in r.text:
            self.csrf = csrf_of(r.text)
        return r

    def upload(self, bucket: str, name: str, body: bytes, ctype: str = "application/octet-stream",
               owner: str | None = None, csrf: str | None = None) -> requests.Response:
        params = {"bucket": bucket, "name": name, **({"owner": owner} if owner else {})}
        headers = {"Content-Type": ctype}
        if csrf is None:
            csrf = self.csrf
        if csrf:
            headers["X-CSRF-Token"] = csrf
        return self.http.post(self.base + "/bucket/upload", params=params, data=body, headers=headers, timeout=120,
                              verify=self.verify)
