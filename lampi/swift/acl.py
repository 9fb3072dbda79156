"""Swift access control: container ACLs, account ACLs, privileged headers.

Syntax and decisions follow OpenStack Swift's keystoneauth + tempauth middlewares
(swift/common/middleware/acl.py ``clean_acl``/``referrer_allowed``, keystoneauth
``authorize``, tempauth's ``X-Account-Access-Control``). The protocol-neutral parts
(parsing cleaned ACLs, matching grantees, the anonymous-read decision) live in
``lampi.core.authz`` so S3 can see the same model.

The decision itself (roles, account and container ACLs, S3 grants and bucket policies,
in that order) is made by ``lampi.http.authz.decide``, the same for S3 requests;
``authorize`` asks it for a Swift request.
"""

from __future__ import annotations

import json

from aiohttp import web

from lampi.core import access, errors, jsonbody
from lampi.core.authz import ACCOUNT_ACL_LEVELS, READ_ACL_KEY, WRITE_ACL_KEY, Principal, parse_acl
from lampi.http.authz import decide

OWNER = "lampi.swift_owner"  # request key: True when the caller has swift_owner rights

# Swift's swift_owner_headers: hidden from (and ignored when sent by) non-owners.
PRIVILEGED_HEADERS = frozenset({
    "x-container-read", "x-container-write", "x-container-sync-key", "x-container-sync-to",
    "x-account-meta-temp-url-key", "x-account-meta-temp-url-key-2",
    "x-container-meta-temp-url-key", "x-container-meta-temp-url-key-2",
    "x-account-access-control",
})
# the same as metadata keys (lower-case, without the X-<kind>-Meta- prefix)
PRIVILEGED_META = frozenset({"temp-url-key", "temp-url-key-2"})


def clean_acl(name: str, value: str) -> str:
    """swift.common.middleware.acl.clean_acl; a bad ACL → InvalidArgument (400) with
    Swift's message."""
    name = name.lower()
    values = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if ":" not in raw:
            values.append(raw)
            continue
        first, second = (v.strip() for v in raw.split(":", 1))
        if not first or first[0] != ".":
            values.append(raw)
        elif first in (".r", ".ref", ".referer", ".referrer"):
            if "write" in name:
                raise errors.InvalidArgument(f"Referrers not allowed in write ACL: {raw!r}")
            negate = False
            if second and second[0] == "-":
                negate = True
                second = second[1:].strip()
            if second and second != "*" and second[0] == "*":
                second = second[1:].strip()
            if not second or second == ".":
                raise errors.InvalidArgument(
                    f"No host/domain value after referrer designation in ACL: {raw!r}")
            values.append(".r:%s%s" % ("-" if negate else "", second))
        else:
            raise errors.InvalidArgument(f"Unknown designator {first!r} in ACL: {raw!r}")
    return ",".join(values)


def clean_account_acl(value: str) -> str | None:
    """tempauth's checks of X-Account-Access-Control (``extract_acl_and_report_errors``):
    the value to store as it was sent (None: remove); a bad ACL → 400 with tempauth's
    message."""
    def bad(problem: str) -> errors.InvalidArgument:
        return errors.InvalidArgument(f"X-Account-Access-Control invalid: {problem}\n\nInput: {value}\n")

    if value == "":
        return None  # parse_acl(version=2) of '' is {}: valid, and an empty value removes it
    try:
        data = jsonbody.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise bad(f"Syntax error in input ({value!r})")
    for key in data:
        if key not in ACCOUNT_ACL_LEVELS:
            raise bad(f"Key {json.dumps(key)} not recognized")
    for key in ACCOUNT_ACL_LEVELS:
        if key not in data:
            continue
        if not isinstance(data[key], list):
            raise bad(f"Value for key {json.dumps(key)} must be a list")
        if not all(isinstance(g, str) for g in data[key]):
            raise bad(f"Elements of {json.dumps(key)} list must be strings")
    return value


def format_account_acl(stored: str | None) -> str | None:
    """The X-Account-Access-Control header for a stored ACL: Swift's format_acl(version=2)
    (compact, keys sorted, ASCII), or None when it grants nothing at all ({})."""
    if not stored:
        return None
    try:
        data = json.loads(stored)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data:
        return None
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"), sort_keys=True)


def block_public_acls(meta: dict[str, str], updates: dict[str, str | None]) -> None:
    """The bucket's S3 PublicAccessBlock (BlockPublicAcls) refuses a Swift ACL that
    grants the public (a referrer item, ``*:*``): 403, nothing changed."""
    if not (access.PAB_KEY in meta and access.public_access_block(meta)["BlockPublicAcls"]):
        return
    for key in (READ_ACL_KEY, WRITE_ACL_KEY):
        referrers, groups = parse_acl(updates.get(key))
        if any(r and not r.startswith("-") for r in referrers) or "*:*" in groups:
            raise errors.Forbidden("Public ACLs are blocked by the bucket's PublicAccessBlock.")


def container_acl_updates(request: web.Request) -> dict[str, str | None]:
    """X-Container-Read/-Write (and X-Remove-Container-Read/-Write) of a container
    PUT/POST, cleaned (400 on a bad ACL)."""
    out: dict[str, str | None] = {}
    for h, key in (("x-container-read", READ_ACL_KEY), ("x-container-write", WRITE_ACL_KEY)):
        if h in request.headers:
            out[key] = clean_acl(h, request.headers[h]) or None
        if "x-remove-" + h[2:] in request.headers:
            out[key] = None
    return out


async def authorize(
    request: web.Request, principal: Principal | None, project_id: str,
    container: str | None, obj: str | None,
) -> None:
    """Raise Unauthorized/Forbidden unless the request is allowed; sets
    ``request[OWNER]``."""
    request[OWNER] = False
    # COPY reads its source here; the destination is checked as a write where the
    # copy is made (lampi.swift.objects), as Swift's copy middleware splits it into a
    # GET of the source and a PUT of the destination, each authorized
    request[OWNER] = await decide(request, principal, project_id, container, obj,
                                  read=request.method in ("GET", "HEAD") or (request.method == "COPY" and bool(obj)))


def strip_privileged(headers: dict[str, str], owner: bool) -> dict[str, str]:
    """Remove swift_owner headers from a response for non-owners."""
    if owner:
        return headers
    return {k: v for k, v in headers.items() if k.lower() not in PRIVILEGED_HEADERS}
