"""Bucket policies: the JSON access-policy language of S3, parsed, validated and
evaluated. Protocol-neutral (no HTTP): the S3 adapter builds the request's context
(``lampi.s3.policy``), the shared access decision (``lampi.http.authz.decide``) asks the
bucket's policy for a verdict, for S3 and Swift requests alike.

Language (AWS's, as Ceph RGW — Allas's engine — implements it for buckets):

* ``Version`` 2012-10-17 (policy variables ``${aws:username}``...) or 2008-10-17;
  ``Id``; ``Statement``: one object or a list.
* Statement: ``Sid``, ``Effect`` Allow/Deny, ``Principal`` / ``NotPrincipal`` (one of
  them, NotPrincipal only with Deny, as AWS), ``Action`` / ``NotAction``, ``Resource``
  / ``NotResource``, ``Condition``.
* Principals: ``"*"``, ``{"AWS": "*"}``, ``{"AWS": "arn:aws:iam::<project>:root"}`` (every
  user of a project, by id or name; RGW's tenant), a bare project id or name (RGW's bare
  tenant), ``{"AWS": "arn:aws:iam::<project>:user/<user>"}`` (one user, by id or name;
  an empty project matches the user in any project), ``{"CanonicalUser": "<project id>"}``
  (lampi's canonical ids are project ids). Roles, federated and service principals are
  refused (MalformedPolicy), as RGW refuses what it cannot map.
* Actions ``s3:<Name>`` with ``*`` / ``?`` wildcards, case-insensitive, checked against
  the S3 action list; ``*``.
* Resources ``arn:aws:s3:::<bucket>`` and ``arn:aws:s3:::<bucket>/<key>`` with
  wildcards, case-sensitive; each must be able to name this bucket or its objects.
* Conditions: String(Not)Equals(IgnoreCase), String(Not)Like, Numeric*, Date*, Bool,
  BinaryEquals, (Not)IpAddress, Arn(Not)Equals/Like, Null; the ``...IfExists`` suffix
  and the ``ForAnyValue:`` / ``ForAllValues:`` qualifiers. Several operators, several
  keys: AND; several values of one key: OR (NOR for negated operators). A key missing
  from the request: false, except negated operators (true), ``...IfExists`` (true),
  ``ForAllValues`` (true) and ``Null``.

Evaluation: an explicit Deny wins, then an Allow; neither is "no opinion" (None) and
the caller falls back to ACLs, as S3 and RGW do.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from lampi.core import jsonbody

MAX_POLICY_BYTES = 20 * 1024  # AWS's limit for a bucket policy

# The S3 actions a bucket policy may name (AWS's list, as RGW's rgw_iam_policy keeps it).
S3_ACTIONS = (
    "AbortMultipartUpload", "BypassGovernanceRetention", "CreateBucket", "DeleteBucket", "DeleteBucketPolicy",
    "DeleteBucketWebsite", "DeleteObject", "DeleteObjectTagging", "DeleteObjectVersion",
    "DeleteObjectVersionTagging", "DeleteReplicationConfiguration", "GetAccelerateConfiguration",
    "GetBucketAcl", "GetBucketCORS", "GetBucketLocation", "GetBucketLogging", "GetBucketNotification",
    "GetBucketObjectLockConfiguration", "GetBucketOwnershipControls", "GetBucketPolicy",
    "GetBucketPolicyStatus", "GetBucketPublicAccessBlock", "GetBucketRequestPayment", "GetBucketTagging",
    "GetBucketVersioning", "GetBucketWebsite", "GetEncryptionConfiguration", "GetLifecycleConfiguration",
    "GetObject", "GetObjectAcl", "GetObjectAttributes", "GetObjectLegalHold", "GetObjectRetention",
    "GetObjectTagging", "GetObjectTorrent", "GetObjectVersion", "GetObjectVersionAcl",
    "GetObjectVersionAttributes", "GetObjectVersionTagging", "GetObjectVersionTorrent",
    "GetReplicationConfiguration", "ListAllMyBuckets", "ListBucket", "ListBucketMultipartUploads",
    "ListBucketVersions", "ListMultipartUploadParts", "PutAccelerateConfiguration", "PutBucketAcl",
    "PutBucketCORS", "PutBucketLogging", "PutBucketNotification", "PutBucketObjectLockConfiguration",
    "PutBucketOwnershipControls", "PutBucketPolicy", "PutBucketPublicAccessBlock", "PutBucketRequestPayment",
    "PutBucketTagging", "PutBucketVersioning", "PutBucketWebsite", "PutEncryptionConfiguration",
    "PutLifecycleConfiguration", "PutObject", "PutObjectAcl", "PutObjectLegalHold", "PutObjectRetention",
    "PutObjectTagging", "PutObjectVersionAcl", "PutObjectVersionTagging", "PutReplicationConfiguration",
    "RestoreObject",
)
_ACTIONS_LOWER = tuple("s3:" + a.lower() for a in S3_ACTIONS)

_STRING_OPS = {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
               "StringLike", "StringNotLike"}
_NUMERIC_OPS = {"NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
                "NumericGreaterThan", "NumericGreaterThanEquals"}
_DATE_OPS = {"DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan",
             "DateGreaterThanEquals"}
_ARN_OPS = {"ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike"}
OPERATORS = _STRING_OPS | _NUMERIC_OPS | _DATE_OPS | _ARN_OPS | {"Bool", "BinaryEquals", "IpAddress",
                                                                "NotIpAddress", "Null"}
# negated operators: "the key's value matches none of the values"; a missing key passes
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
            "StringNotLike": "StringLike", "NumericNotEquals": "NumericEquals", "DateNotEquals": "DateEquals",
            "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike", "NotIpAddress": "IpAddress"}

# keys whose exact value in an Allow limits it to known callers (AWS's rule for "is
# this policy public?", GetBucketPolicyStatus and BlockPublicPolicy)
_FIXING_KEYS = {"aws:sourceip", "aws:sourcearn", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceaccount",
                "aws:sourceowner", "aws:principalarn", "aws:principalaccount", "aws:principalorgid",
                "aws:userid", "aws:username", "s3:dataaccesspointarn", "s3:dataaccesspointaccount"}

Env = Mapping[str, list[str]]  # condition key (lower-case, tag keys as sent) → the request's values


class PolicyError(ValueError):
    """A policy document that is not valid (S3: 400 MalformedPolicy with this message)."""


@dataclass(frozen=True, slots=True)
class Who:
    """The caller as policies name it; all empty for a request without credentials."""

    project_id: str = ""
    project_name: str = ""
    user_id: str = ""
    user_name: str = ""

    @property
    def anonymous(self) -> bool:
        return not self.project_id


ANONYMOUS = Who()


# -- patterns ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _wild(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """``*`` any run of characters, ``?`` one; everything else literal."""
    out = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(out, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _wild(pattern, ignore_case).fullmatch(value) is not None


_VAR = re.compile(r"\$\{([^}]*)\}")


def _substitute(text: str, env: Env, enabled: bool) -> str | None:
    """Policy variables (Version 2012-10-17): ``${aws:username}`` etc. from the request,
    ``${*}``, ``${?}``, ``${$}`` as the literal characters. None when a variable has no
    value in the request (the element then matches nothing, as AWS)."""
    if not enabled or "${" not in text:
        return text
    missing = False

    def repl(m: re.Match[str]) -> str:
        nonlocal missing
        name = m.group(1)
        if name in ("*", "?", "$"):
            return "\x00" + name  # a literal, protected from the wildcard pass below
        vals = env.get(norm_key(name))
        if not vals:
            missing = True
            return ""
        return vals[0].replace("*", "\x00*").replace("?", "\x00?")

    out = _VAR.sub(repl, text)
    return None if missing else out


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    if "\x00" not in pattern:
        return wildcard_match(pattern, value, ignore_case)
    # literal * / ? (from ${*} or a variable's value): escape them for the matcher
    parts = re.split("(\x00.)", pattern)
    rx = "".join(re.escape(p[1]) if p.startswith("\x00") else _wild(p).pattern for p in parts if p)
    return re.fullmatch(rx, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _literal(pattern: str) -> str:
    return pattern.replace("\x00", "")


# -- principals -------------------------------------------------------------------------

_IAM_ARN = re.compile(r"^arn:aws:iam::([^:]*):(.+)$")


@dataclass(frozen=True, slots=True)
class PrincipalRef:
    kind: str  # "*", "project", "user"
    project: str = ""
    user: str = ""

    def matches(self, who: Who) -> bool:
        if self.kind == "*":
            return True
        if who.anonymous:
            return False
        if self.kind == "project":
            return self.project in (who.project_id, who.project_name)
        return (not self.project or self.project in (who.project_id, who.project_name)) \
            and self.user in (who.user_id, who.user_name)


def _principal_refs(value: object) -> list[PrincipalRef]:
    if value == "*":
        return [PrincipalRef("*")]
    if not isinstance(value, dict) or not value:
        raise PolicyError("Invalid principal in policy")
    refs: list[PrincipalRef] = []
    for kind, items in value.items():
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise PolicyError("Invalid principal in policy")
        for item in items:
            if kind == "AWS":
                refs.append(_aws_principal(item))
            elif kind == "CanonicalUser":
                if not item or "*" in item:
                    raise PolicyError("Invalid principal in policy")
                refs.append(PrincipalRef("project", project=item))
            else:  # Federated, Service: nothing lampi can map a caller to
                raise PolicyError("Invalid principal in policy")
    return refs


def _aws_principal(item: str) -> PrincipalRef:
    if item == "*":
        return PrincipalRef("*")
    m = _IAM_ARN.match(item)
    if m:
        account, resource = m.groups()
        if resource == "root" and account:
            return PrincipalRef("project", project=account)
        if resource.startswith("user/") and len(resource) > 5:
            return PrincipalRef("user", project=account, user=resource[5:].rsplit("/", 1)[-1])
        raise PolicyError("Invalid principal in policy")
    if item and not any(c in item for c in ":/*?"):
        return PrincipalRef("project", project=item)  # a bare project id or name (RGW's bare tenant)
    raise PolicyError("Invalid principal in policy")


# -- conditions -------------------------------------------------------------------------


def norm_key(key: str) -> str:
    """Condition keys are case-insensitive, except the tag key after ``.../``."""
    head, sep, tail = key.partition("/")
    return head.lower() + sep + tail


def _number(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _date(v: str) -> float | None:
    """ISO 8601 (UTC when no offset is given) or epoch seconds."""
    v = v.strip()
    n = _number(v)
    if n is not None:
        return n
    try:
        d = datetime.datetime.fromisoformat(v)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()


def _network(v: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(v.strip(), strict=False)
    except ValueError:
        return None


def _compare(op: str, have: str, want: str) -> bool:
    """The positive operator ``op``: does the request's value ``have`` match ``want``?"""
    if op == "StringEquals" or op == "ArnEquals" or op == "BinaryEquals":
        return have == _literal(want)
    if op == "StringEqualsIgnoreCase":
        return have.lower() == _literal(want).lower()
    if op == "StringLike" or op == "ArnLike":
        return _like(want, have)
    if op == "Bool":
        return have.lower() == want.lower()
    if op == "IpAddress":
        net = _network(want)
        try:
            addr = ipaddress.ip_address(have.strip())
        except ValueError:
            return False
        return net is not None and addr.version == net.version and addr in net
    if op in _NUMERIC_OPS or op in _DATE_OPS:
        conv = _number if op in _NUMERIC_OPS else _date
        a, b = conv(have), conv(want)
        if a is None or b is None:
            return False
        kind = op.removeprefix("Numeric").removeprefix("Date")
        return {"Equals": a == b, "LessThan": a < b, "LessThanEquals": a <= b, "GreaterThan": a > b,
                "GreaterThanEquals": a >= b}[kind]
    return False


@dataclass(frozen=True, slots=True)
class Condition:
    op: str  # the base operator, e.g. StringNotLike
    key: str  # normalised
    values: tuple[str, ...]
    if_exists: bool = False
    qualifier: str = ""  # "", "ForAnyValue", "ForAllValues"

    def holds(self, env: Env, variables: bool) -> bool:
        have = env.get(self.key)
        if self.op == "Null":
            want_missing = any(v.lower() == "true" for v in self.values)
            return (not have) == want_missing
        negated = self.op in _NEGATED
        if not have:
            if self.qualifier == "ForAllValues":
                return True
            return self.if_exists or negated
        base = _NEGATED.get(self.op, self.op)
        wants = [w for w in (_substitute(v, env, variables) for v in self.values) if w is not None]

        def hit(h: str) -> bool:
            return any(_compare(base, h, w) for w in wants)

        if self.qualifier == "ForAllValues":
            return all((not hit(h)) if negated else hit(h) for h in have)
        if self.qualifier == "ForAnyValue":
            return any((not hit(h)) if negated else hit(h) for h in have)
        matched = any(hit(h) for h in have)
        return not matched if negated else matched


def _scalar(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        return v
    raise PolicyError("Invalid Condition value")


def _conditions(block: object) -> list[Condition]:
    if not isinstance(block, dict):
        raise PolicyError("Invalid Condition block")
    out = []
    for raw_op, keys in block.items():
        op, qualifier, if_exists = raw_op, "", False
        for q in ("ForAnyValue:", "ForAllValues:"):
            if op.startswith(q):
                qualifier, op = q[:-1], op[len(q):]
        if op.endswith("IfExists") and op != "IfExists":
            if_exists, op = True, op[: -len("IfExists")]
        if op not in OPERATORS or (op == "Null" and (if_exists or qualifier)):
            raise PolicyError(f"Invalid Condition type : {raw_op}")
        if not isinstance(keys, dict) or not keys:
            raise PolicyError(f"Invalid Condition block for {raw_op}")
        for key, values in keys.items():
            if not isinstance(key, str) or ":" not in key or not key.split(":", 1)[1]:
                raise PolicyError(f"Policy has an invalid condition key: {key}")
            vals = values if isinstance(values, list) else [values]
            if not vals:
                raise PolicyError(f"Invalid Condition value for {key}")
            strs = tuple(_scalar(v) for v in vals)
            _check_values(op, key, strs)
            out.append(Condition(op, norm_key(key), strs, if_exists, qualifier))
    return out


def _check_values(op: str, key: str, values: tuple[str, ...]) -> None:
    base = _NEGATED.get(op, op)
    for v in values:
        if base == "IpAddress" and _network(v) is None:
            raise PolicyError(f"Invalid IP address or CIDR block for {key}: {v}")
        if base in _NUMERIC_OPS and _number(v) is None:
            raise PolicyError(f"Invalid numeric value for {key}: {v}")
        if base in _DATE_OPS and "${" not in v and _date(v) is None:
            raise PolicyError(f"Invalid date value for {key}: {v}")
        if base == "Bool" and v.lower() not in ("true", "false"):
            raise PolicyError(f"Invalid boolean value for {key}: {v}")
        if base == "Null" and v.lower() not in ("true", "false"):
            raise PolicyError(f"Invalid Null condition value for {key}: {v}")


# -- statements and policies ------------------------------------------------------------

_STATEMENT_KEYS = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource",
                   "Condition"}


def _strings(value: object, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise PolicyError(f"Policy has invalid {what}")
    return items  # type: ignore[return-value]


def _check_action(a: str) -> str:
    if a == "*":
        return a
    low = a.lower()
    if not low.startswith("s3:") or not any(wildcard_match(low, known) for known in _ACTIONS_LOWER):
        raise PolicyError("Policy has invalid action")
    return low


_S3_ARN = re.compile(r"^arn:aws:s3:([^:]*):([^:]*):(.+)$")


def _check_resource(r: str, bucket: str, owner: tuple[str, ...] | None) -> str:
    """A resource pattern, as ``<bucket>[/<key>]`` (the ARN prefix dropped); it must be
    able to name this bucket or one of its objects (AWS: "Policy has invalid resource").
    The ARN's account part may be empty, ``*`` or the owner project (id or name);
    ``owner`` None: not checked (a stored policy, checked when it was put)."""
    if r == "*":
        return "*"
    m = _S3_ARN.match(r)
    if not m:
        raise PolicyError("Policy has invalid resource")
    region, account, path = m.groups()
    if region not in ("", "*") or (owner is not None and account not in ("", "*", *owner)):
        raise PolicyError("Policy has invalid resource")
    head = path.split("/", 1)[0]
    star = head.find("*")
    if not (wildcard_match(path, bucket) or (wildcard_match(head, bucket) and "/" in path)
            or (star >= 0 and wildcard_match(head[:star] + "*", bucket))):
        raise PolicyError("Policy has invalid resource")
    return path


@dataclass(frozen=True, slots=True)
class Statement:
    effect: str
    principals: tuple[PrincipalRef, ...] | None
    not_principals: tuple[PrincipalRef, ...] | None
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    conditions: tuple[Condition, ...] = ()
    sid: str = ""

    def applies(self, action: str, resource: str, who: Who, env: Env, variables: bool) -> bool:
        if self.principals is not None and not any(p.matches(who) for p in self.principals):
            return False
        if self.not_principals is not None and any(p.matches(who) for p in self.not_principals):
            return False
        low = action.lower()
        if self.actions is not None and not any(a == "*" or wildcard_match(a, low) for a in self.actions):
            return False
        if self.not_actions is not None and any(a == "*" or wildcard_match(a, low) for a in self.not_actions):
            return False
        if self.resources is not None and not any(_res(r, resource, env, variables) for r in self.resources):
            return False
        if self.not_resources is not None and any(_res(r, resource, env, variables)
                                                  for r in self.not_resources):
            return False
        return all(c.holds(env, variables) for c in self.conditions)

    def is_public(self) -> bool:
        """An Allow to anyone that no condition pins to known callers (AWS's rule)."""
        if self.effect != "Allow" or self.principals is None:
            return False
        if not any(p.kind == "*" for p in self.principals):
            return False
        for c in self.conditions:
            if c.key not in _FIXING_KEYS or c.op in _NEGATED or c.qualifier or c.if_exists:
                continue
            if c.key == "aws:sourceip":
                nets = [_network(v) for v in c.values]
                if all(n is not None and n.prefixlen > 0 for n in nets):
                    return False
            elif not any("*" in v or "?" in v for v in c.values) or c.op in ("StringEquals", "ArnEquals"):
                return False
        return True


def _res(pattern: str, resource: str, env: Env, variables: bool) -> bool:
    if pattern == "*":
        return True
    p = _substitute(pattern, env, variables)
    return p is not None and _like(p, resource)


@dataclass(frozen=True)
class Policy:
    text: str
    statements: tuple[Statement, ...]
    version: str = "2008-10-17"
    condition_keys: frozenset[str] = field(default_factory=frozenset)

    @property
    def variables(self) -> bool:
        return self.version == "2012-10-17"

    def evaluate(self, action: str, resource: str, who: Who, env: Env) -> str | None:
        """"Deny", "Allow" or None (no statement applies) for ``who`` doing ``action``
        (``s3:GetObject``) on ``resource`` (``<bucket>`` or ``<bucket>/<key>``)."""
        allowed = False
        for s in self.statements:
            if s.applies(action, resource, who, env, self.variables):
                if s.effect == "Deny":
                    return "Deny"
                allowed = True
        return "Allow" if allowed else None

    def is_public(self) -> bool:
        return any(s.is_public() for s in self.statements)

    def needs(self, prefix: str) -> bool:
        """Does a condition look at a key starting with ``prefix`` (lower-case)?"""
        return any(k.lower().startswith(prefix) for k in self.condition_keys)


def parse(text: str | bytes, bucket: str, owner: tuple[str, ...] | None = None) -> Policy:
    """Parse and validate a bucket policy for ``bucket`` (owned by the project whose id
    and name are ``owner``); PolicyError with AWS's wording when it is not valid."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError("Policy exceeds the maximum allowed document size.")
    try:
        text = raw.decode("utf-8")
        doc = jsonbody.loads(text, max_depth=10)
    except (ValueError, UnicodeDecodeError):
        raise PolicyError("This policy contains invalid Json") from None
    if not isinstance(doc, dict):
        raise PolicyError("This policy contains invalid Json")
    for k in doc:
        if k not in ("Version", "Id", "Statement"):
            raise PolicyError(f"Unknown field {k}")
    version = doc.get("Version", "2008-10-17")
    if version not in ("2008-10-17", "2012-10-17"):
        raise PolicyError(f"Invalid policy version: {version}")
    if "Id" in doc and not isinstance(doc["Id"], str):
        raise PolicyError("Policy Id must be a string")
    raw_statements = doc.get("Statement")
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list) or not raw_statements:
        raise PolicyError("Missing required field Statement")
    statements, keys, sids = [], set(), set()
    for st in raw_statements:
        if not isinstance(st, dict):
            raise PolicyError("Statement must be an object")
        for k in st:
            if k not in _STATEMENT_KEYS:
                raise PolicyError(f"Unknown field {k}")
        sid = st.get("Sid", "")
        if not isinstance(sid, str):
            raise PolicyError("Statement Sid must be a string")
        if sid and sid in sids:
            raise PolicyError("Statement IDs (SID) in a single policy must be unique.")
        sids.add(sid)
        effect = st.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"Invalid effect: {effect}" if effect is not None else "Missing required field Effect")
        if ("Principal" in st) == ("NotPrincipal" in st):
            raise PolicyError("Missing required field Principal" if "Principal" not in st
                              else "Statement cannot have both Principal and NotPrincipal")
        if "NotPrincipal" in st and effect == "Allow":
            raise PolicyError("NotPrincipal is only supported with the Deny effect")
        if ("Action" in st) == ("NotAction" in st):
            raise PolicyError("Missing required field Action" if "Action" not in st
                              else "Statement cannot have both Action and NotAction")
        if ("Resource" in st) == ("NotResource" in st):
            raise PolicyError("Missing required field Resource" if "Resource" not in st
                              else "Statement cannot have both Resource and NotResource")

        def acts(name: str) -> tuple[str, ...] | None:
            return tuple(_check_action(a) for a in _strings(st[name], "action")) if name in st else None

        def ress(name: str) -> tuple[str, ...] | None:
            if name not in st:
                return None
            return tuple(_check_resource(r, bucket, owner) for r in _strings(st[name], "resource"))

        conds = tuple(_conditions(st["Condition"])) if "Condition" in st else ()
        keys.update(c.key for c in conds)
        statements.append(Statement(
            effect=effect,
            principals=tuple(_principal_refs(st["Principal"])) if "Principal" in st else None,
            not_principals=tuple(_principal_refs(st["NotPrincipal"])) if "NotPrincipal" in st else None,
            actions=acts("Action"), not_actions=acts("NotAction"),
            resources=ress("Resource"), not_resources=ress("NotResource"),
            conditions=conds, sid=sid,
        ))
    return Policy(text, tuple(statements), version, frozenset(keys))


# Stored policies are parsed once per worker and text (they are validated when put).
@functools.lru_cache(maxsize=1024)
def _cached(text: str, bucket: str) -> Policy | None:
    try:
        return parse(text, bucket)
    except PolicyError:
        return None


def stored(text: str | None, bucket: str) -> Policy | None:
    """The parsed form of a stored policy (None: none, or unreadable)."""
    if not text:
        return None
    return _cached(text, bucket)

