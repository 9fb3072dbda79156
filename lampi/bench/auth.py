"""Credentials: Keystone v3 from OS_* variables, Swift v1 auth, or storage URL + token.

Synchronous (urllib): it runs once, before any load.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from lampi.bench.util import BenchError


@dataclass
class Credentials:
    storage_url: str  # for "s3": the S3 endpoint (path-style buckets under it)
    token: str
    method: str  # "v3", "v1", "token" or "s3"
    access: str = ""  # S3 (SigV4) key pair
    secret: str = ""
    region: str = "us-east-1"
    # the same account through other gateways (``--cluster 2``): their storage URLs / S3
    # endpoints; the small-object phases spread their connections over all of them
    mirrors: tuple[str, ...] = ()

    @property
    def api(self) -> str:
        return "s3" if self.method == "s3" else "swift"


def _request(url: str, method: str = "GET", headers: Mapping[str, str] | None = None,
             body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise BenchError(f"cannot reach {url}: {exc}") from None


def v1_auth(auth_url: str, user: str, key: str) -> Credentials:
    status, headers, body = _request(auth_url, headers={"X-Auth-User": user, "X-Auth-Key": key})
    h = {k.lower(): v for k, v in headers.items()}
    if status // 100 != 2 or "x-storage-url" not in h or "x-auth-token" not in h:
        raise BenchError(f"v1 auth at {auth_url} failed: {status} {body[:200]!r}")
    return Credentials(h["x-storage-url"], h["x-auth-token"], "v1")


def v3_auth(env: Mapping[str, str]) -> Credentials:
    auth_url = env["OS_AUTH_URL"].rstrip("/")
    if not auth_url.endswith("/v3"):
        auth_url += "/v3"
    user: dict[str, object] = {"password": env.get("OS_PASSWORD", "")}
    if env.get("OS_USER_ID"):
        user["id"] = env["OS_USER_ID"]
    else:
        user["name"] = env.get("OS_USERNAME", "")
        if env.get("OS_USER_DOMAIN_ID"):
            user["domain"] = {"id": env["OS_USER_DOMAIN_ID"]}
        else:
            user["domain"] = {"name": env.get("OS_USER_DOMAIN_NAME", "Default")}
    project: dict[str, object] = {}
    if env.get("OS_PROJECT_ID") or env.get("OS_TENANT_ID"):
        project["id"] = env.get("OS_PROJECT_ID") or env["OS_TENANT_ID"]
    else:
        project["name"] = env.get("OS_PROJECT_NAME") or env.get("OS_TENANT_NAME", "")
        if env.get("OS_PROJECT_DOMAIN_ID"):
            project["domain"] = {"id": env["OS_PROJECT_DOMAIN_ID"]}
        else:
            project["domain"] = {"name": env.get("OS_PROJECT_DOMAIN_NAME", "Default")}
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}},
                     "scope": {"project": project}}}
    status, headers, raw = _request(f"{auth_url}/auth/tokens", "POST",
                                    {"Content-Type": "application/json"}, json.dumps(body).encode())
    token = {k.lower(): v for k, v in headers.items()}.get("x-subject-token")
    if status != 201 or not token:
        raise BenchError(f"Keystone v3 login at {auth_url} failed: {status} {raw[:300]!r}")
    catalog = json.loads(raw).get("token", {}).get("catalog", [])
    interface = env.get("OS_INTERFACE", "public").replace("URL", "")
    region = env.get("OS_REGION_NAME")
    for svc in catalog:
        if svc.get("type") != "object-store":
            continue
        for ep in svc.get("endpoints", []):
            if ep.get("interface") == interface and (not region or ep.get("region") in (region, None)
                                                     or ep.get("region_id") == region):
                return Credentials(ep["url"], token, "v3")
    raise BenchError(f"no object-store endpoint (interface {interface}, region {region}) in the catalog")


def resolve(auth: str | None, user: str | None, key: str | None, storage_url: str | None,
            token: str | None, env: Mapping[str, str] | None = None) -> Credentials:
    """Pick the method as the ``swift`` CLI does: explicit URL+token, then v1 options, then OS_* (v3)."""
    env = os.environ if env is None else env
    storage_url = storage_url or env.get("OS_STORAGE_URL")
    token = token or env.get("OS_AUTH_TOKEN")
    if storage_url and token:
        return Credentials(storage_url.rstrip("/"), token, "token")
    auth = auth or env.get("ST_AUTH")
    if auth:
        user, key = user or env.get("ST_USER"), key or env.get("ST_KEY")
        if not (user and key):
            raise BenchError("v1 auth needs --user (-U) and --key (-K)")
        return v1_auth(auth, user, key)
    if env.get("OS_AUTH_URL"):
        return v3_auth(env)
    raise BenchError("no endpoint: set OS_* variables (eval \"$(lampi openrc)\"), or give -A/-U/-K, "
                     "or --storage-url and --token; or use --compare swift")


def parse_openrc(text: str) -> dict[str, str]:
    """The ``export K='v'`` lines of an RC file (as ``lampi openrc`` writes them) as a dict."""
    import shlex

    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            parts = shlex.split(v) if v else [""]
            env[k.strip()] = parts[0] if parts else ""
    return env


def s3_credentials(endpoint: str | None, access: str | None, secret: str | None, region: str | None = None,
                   env: Mapping[str, str] | None = None) -> Credentials:
    """S3 endpoint and SigV4 keys from options, else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."""
    env = os.environ if env is None else env
    access = access or env.get("AWS_ACCESS_KEY_ID")
    secret = secret or env.get("AWS_SECRET_ACCESS_KEY")
    if not endpoint:
        raise BenchError("S3 needs --s3-endpoint")
    if not (access and secret):
        raise BenchError("S3 needs --s3-access-key and --s3-secret-key (or AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY)")
    region = region or env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1"
    return Credentials(endpoint.rstrip("/"), "", "s3", access, secret, region)


def ec2_keys(env: Mapping[str, str]) -> tuple[str, str]:
    """Make an S3 key pair for the OS_* user in its project (Keystone's OS-EC2 API, as
    ``openstack ec2 credentials create`` does); returns (access, secret)."""
    auth_url = env["OS_AUTH_URL"].rstrip("/")
    if not auth_url.endswith("/v3"):
        auth_url += "/v3"
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": env.get("OS_USERNAME", ""), "password": env.get("OS_PASSWORD", ""),
        "domain": {"name": env.get("OS_USER_DOMAIN_NAME", "Default")}}}},
        "scope": {"project": {"name": env.get("OS_PROJECT_NAME", ""),
                              "domain": {"name": env.get("OS_PROJECT_DOMAIN_NAME", "Default")}}}}}
    status, headers, raw = _request(f"{auth_url}/auth/tokens", "POST", {"Content-Type": "application/json"},
                                    json.dumps(body).encode())
    token = {k.lower(): v for k, v in headers.items()}.get("x-subject-token")
    if status != 201 or not token:
        raise BenchError(f"Keystone v3 login at {auth_url} failed: {status} {raw[:300]!r}")
    tok = json.loads(raw)["token"]
    status, _, raw = _request(f"{auth_url}/users/{tok['user']['id']}/credentials/OS-EC2", "POST",
                              {"Content-Type": "application/json", "X-Auth-Token": token},
                              json.dumps({"tenant_id": tok["project"]["id"]}).encode())
    if status != 201:
        raise BenchError(f"creating EC2 credentials failed: {status} {raw[:300]!r}")
    cred = json.loads(raw)["credential"]
    return cred["access"], cred["secret"]
