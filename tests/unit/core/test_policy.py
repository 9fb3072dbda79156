"""The bucket-policy language (lampi.core.policy): validation with AWS's messages and
evaluation — principals, actions, resources, every condition operator family,
IfExists / ForAnyValue / ForAllValues / Null, policy variables, deny over allow, and
what counts as a public policy."""

from __future__ import annotations

import json

import pytest

from lampi.core.policy import ANONYMOUS, PolicyError, Who, parse

B = "bkt"
ALICE = Who(project_id="p1", project_name="proj-one", user_id="u1", user_name="alice")
BOB = Who(project_id="p2", project_name="proj-two", user_id="u2", user_name="bob")


def pol(*statements: dict, version: str = "2012-10-17") -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


def st(action="s3:GetObject", resource=f"arn:aws:s3:::{B}/*", principal="*", effect="Allow", **kw) -> dict:  # noqa: ANN001
    d = {"Effect": effect, "Principal": principal, "Action": action, "Resource": resource}
    d.update(kw)
    return d


def verdict(policy: str, action: str = "s3:GetObject", resource: str = f"{B}/k", who: Who = ALICE,
            env: dict | None = None) -> str | None:
    return parse(policy, B).evaluate(action, resource, who, env or {})


@pytest.mark.parametrize("doc, message", [
    ("not json", "invalid Json"),
    ("[]", "invalid Json"),
    ('{"Version": "2012-10-17"}', "Missing required field Statement"),
    (json.dumps({"Statement": [], "Version": "2012-10-17"}), "Missing required field Statement"),
    (json.dumps({"Version": "2020-01-01", "Statement": st()}), "Invalid policy version"),
    (json.dumps({"Versionx": "2012-10-17", "Statement": st()}), "Unknown field Versionx"),
    (pol(st(effect="Maybe")), "Invalid effect"),
    (pol({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}), "Missing required field Principal"),
    (pol(st(action="s3:FlyToMoon")), "invalid action"),
    (pol(st(action="iam:CreateUser")), "invalid action"),
    (pol(st(action=[])), "invalid action"),
    (pol(st(resource="arn:aws:s3:::other-bucket/*")), "invalid resource"),
    (pol(st(resource="arn:aws:ec2:::bkt")), "invalid resource"),
    (pol(st(principal={"AWS": "arn:aws:iam::p1:role/admin"})), "Invalid principal"),
    (pol(st(principal={"Federated": "cognito"})), "Invalid principal"),
    (pol(st(principal={"AWS": []})), "Invalid principal"),
    (json.dumps({"Statement": [{**st(), "NotPrincipal": {"AWS": "p2"}}]}), "both Principal and NotPrincipal"),
    (pol({"Effect": "Allow", "NotPrincipal": {"AWS": "p2"}, "Action": "s3:*", "Resource": "*"}),
     "NotPrincipal is only supported with the Deny effect"),
    (pol(st(Condition={"StringFancy": {"s3:prefix": "a"}})), "Invalid Condition type"),
    (pol(st(Condition={"IpAddress": {"aws:SourceIp": "not-an-ip"}})), "Invalid IP address"),
    (pol(st(Condition={"NumericLessThan": {"s3:max-keys": "ten"}})), "Invalid numeric value"),
    (pol(st(Condition={"StringEquals": {"nocolon": "x"}})), "invalid condition key"),
    (pol(st(Condition={"StringEquals": {"s3:prefix": {"nested": 1}}})), "Invalid Condition value"),
    (pol(st(Sid="a"), st(Sid="a")), "must be unique"),
    (pol(st(Bogus=1)), "Unknown field Bogus"),
    ("{" * 50 + "}" * 50, "invalid Json"),
    ('\ufeff{"Statement": []}'.encode("utf-16"), "invalid Json"),  # JSON, but not UTF-8
    (b'{"Version": "2012-10-17", "Statement": "\xff"}', "invalid Json"),
    (json.dumps({"Statement": [st()], "Version": "2012-10-17", "Id": "x" * 21000}), "maximum allowed document size"),
])
def test_invalid_policies_are_refused_with_a_message(doc: str, message: str) -> None:
    with pytest.raises(PolicyError) as exc:
        parse(doc, B, ("p1", "proj-one"))
    assert message.lower() in str(exc.value).lower()


def test_valid_forms_parse() -> None:
    parse(pol(st(resource=["arn:aws:s3:::*", "arn:aws:s3:::*/*"])), B)
    parse(pol(st(resource="arn:aws:s3:::b*/*")), B)
    parse(pol(st(resource=f"arn:aws:s3::proj-one:{B}/*")), B, ("p1", "proj-one"))
    with pytest.raises(PolicyError):
        parse(pol(st(resource=f"arn:aws:s3::someone-else:{B}/*")), B, ("p1", "proj-one"))
    parse(json.dumps({"Statement": st(action="*", principal={"AWS": ["*"]})}), B)  # one statement, 2008 version
    parse(pol(st(principal={"CanonicalUser": "p2"})), B)


def test_principals() -> None:
    for principal, who, hit in [
        ("*", ANONYMOUS, True), ({"AWS": "*"}, ANONYMOUS, True),
        ({"AWS": "arn:aws:iam::p1:root"}, ALICE, True), ({"AWS": "arn:aws:iam::proj-one:root"}, ALICE, True),
        ({"AWS": "arn:aws:iam::p1:root"}, BOB, False), ({"AWS": "arn:aws:iam::p1:root"}, ANONYMOUS, False),
        ({"AWS": "proj-two"}, BOB, True), ({"AWS": "p2"}, ALICE, False),
        ({"AWS": "arn:aws:iam::p1:user/alice"}, ALICE, True), ({"AWS": "arn:aws:iam::p1:user/u1"}, ALICE, True),
        ({"AWS": "arn:aws:iam::p2:user/alice"}, ALICE, False), ({"AWS": "arn:aws:iam:::user/bob"}, BOB, True),
        ({"CanonicalUser": "p2"}, BOB, True), ({"AWS": ["p2", "arn:aws:iam::p1:root"]}, ALICE, True),
    ]:
        assert (verdict(pol(st(principal=principal)), who=who) == "Allow") is hit, (principal, who)
    deny_all_but_bob = pol(st(action="s3:*"), {"Effect": "Deny", "NotPrincipal": {"AWS": "p2"},
                                               "Action": "s3:*", "Resource": "*"})
    assert verdict(deny_all_but_bob, who=BOB) == "Allow"
    assert verdict(deny_all_but_bob, who=ALICE) == "Deny"


def test_actions_and_resources() -> None:
    p = pol(st(action=["s3:Get*", "s3:ListBucket"], resource=[f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/pub/*"]))
    assert verdict(p, "s3:GetObject", f"{B}/pub/x") == "Allow"
    assert verdict(p, "s3:getobjecttagging", f"{B}/pub/x") == "Allow"  # actions are case-insensitive
    assert verdict(p, "s3:GetObject", f"{B}/Pub/x") is None  # resources are not
    assert verdict(p, "s3:PutObject", f"{B}/pub/x") is None
    assert verdict(p, "s3:ListBucket", B) == "Allow"
    assert verdict(p, "s3:GetObject", f"{B}/private") is None
    p = pol({"Effect": "Allow", "Principal": "*", "NotAction": "s3:Delete*", "NotResource": f"arn:aws:s3:::{B}/x"})
    assert verdict(p, "s3:GetObject", f"{B}/y") == "Allow"
    assert verdict(p, "s3:DeleteObject", f"{B}/y") is None
    assert verdict(p, "s3:GetObject", f"{B}/x") is None
    assert verdict(pol(st(resource=f"arn:aws:s3:::{B}/a?c")), resource=f"{B}/abc") == "Allow"
    assert verdict(pol(st(resource=f"arn:aws:s3:::{B}/a?c")), resource=f"{B}/abbc") is None


def test_deny_wins() -> None:
    p = pol(st(action="s3:*"), st(action="s3:GetObject", effect="Deny", resource=f"arn:aws:s3:::{B}/secret*"))
    assert verdict(p, resource=f"{B}/public") == "Allow"
    assert verdict(p, resource=f"{B}/secret.txt") == "Deny"


def cond(block: dict, env: dict, action: str = "s3:GetObject") -> str | None:
    return verdict(pol(st(action=action, Condition=block)), action, env=env)


def test_string_conditions() -> None:
    assert cond({"StringEquals": {"s3:prefix": ["a", "b"]}}, {"s3:prefix": ["b"]}) == "Allow"
    assert cond({"StringEquals": {"s3:prefix": "a"}}, {"s3:prefix": ["A"]}) is None
    assert cond({"StringEqualsIgnoreCase": {"s3:prefix": "a"}}, {"s3:prefix": ["A"]}) == "Allow"
    assert cond({"StringNotEquals": {"s3:prefix": ["a", "b"]}}, {"s3:prefix": ["c"]}) == "Allow"
    assert cond({"StringNotEquals": {"s3:prefix": ["a", "b"]}}, {"s3:prefix": ["b"]}) is None  # NOR
    assert cond({"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": ["home/x/y"]}) == "Allow"
    assert cond({"StringNotLike": {"s3:prefix": "home/*"}}, {"s3:prefix": ["tmp"]}) == "Allow"
    assert cond({"StringLike": {"aws:Referer": "http://www.example.com/*"}},
                {"aws:referer": ["http://example.com"]}) is None
    # missing key: positive false, negated true, IfExists true
    assert cond({"StringEquals": {"s3:prefix": "a"}}, {}) is None
    assert cond({"StringNotEquals": {"s3:prefix": "a"}}, {}) == "Allow"
    assert cond({"StringEqualsIfExists": {"s3:prefix": "a"}}, {}) == "Allow"
    assert cond({"StringEqualsIfExists": {"s3:prefix": "a"}}, {"s3:prefix": ["b"]}) is None
    # keys are case-insensitive, tag keys after "/" are not
    assert cond({"StringEquals": {"S3:ExistingObjectTag/security": "public"}},
                {"s3:existingobjecttag/security": ["public"]}) == "Allow"
    assert cond({"StringEquals": {"s3:ExistingObjectTag/Security": "public"}},
                {"s3:existingobjecttag/security": ["public"]}) is None


def test_numeric_date_bool_ip_binary_arn_null() -> None:
    assert cond({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": ["10"]}) == "Allow"
    assert cond({"NumericLessThan": {"s3:max-keys": 10}}, {"s3:max-keys": ["10"]}) is None
    assert cond({"NumericGreaterThan": {"s3:max-keys": "5"}}, {"s3:max-keys": ["x"]}) is None
    assert cond({"NumericNotEquals": {"s3:max-keys": "5"}}, {"s3:max-keys": ["6"]}) == "Allow"
    assert cond({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
                {"aws:currenttime": ["2026-12-05T10:00:00Z"]}) == "Allow"
    assert cond({"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
                {"aws:currenttime": ["2026-12-05T10:00:00Z"]}) is None
    assert cond({"DateGreaterThanEquals": {"aws:EpochTime": "1000"}}, {"aws:epochtime": ["1000"]}) == "Allow"
    assert cond({"Bool": {"aws:SecureTransport": "false"}}, {"aws:securetransport": ["false"]}) == "Allow"
    assert cond({"Bool": {"aws:SecureTransport": True}}, {"aws:securetransport": ["false"]}) is None
    assert cond({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}},
                {"aws:sourceip": ["10.1.2.3"]}) == "Allow"
    assert cond({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:sourceip": ["192.168.0.1"]}) is None
    assert cond({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, {"aws:sourceip": ["2001:db8::1"]}) == "Allow"
    assert cond({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:sourceip": ["192.168.0.1"]}) == "Allow"
    assert cond({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:sourceip": ["10.0.0.1"]}) is None
    assert cond({"BinaryEquals": {"s3:x": "QUJD"}}, {"s3:x": ["QUJD"]}) == "Allow"
    assert cond({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*"}}, {"aws:sourcearn": ["arn:aws:sns:x"]}) == "Allow"
    assert cond({"Null": {"s3:x-amz-server-side-encryption": "true"}}, {}) == "Allow"
    assert cond({"Null": {"s3:x-amz-server-side-encryption": "true"}},
                {"s3:x-amz-server-side-encryption": ["AES256"]}) is None
    assert cond({"Null": {"s3:x-amz-server-side-encryption": "false"}},
                {"s3:x-amz-server-side-encryption": ["AES256"]}) == "Allow"


def test_set_qualifiers_and_several_keys() -> None:
    tags = {"s3:requestobjecttagkeys": ["a", "b"]}
    assert cond({"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["a", "b", "c"]}}, tags) == "Allow"
    assert cond({"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["a"]}}, tags) is None
    assert cond({"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["a"]}}, {}) == "Allow"
    assert cond({"ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": ["b", "z"]}}, tags) == "Allow"
    assert cond({"ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": ["z"]}}, tags) is None
    assert cond({"ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": ["z"]}}, {}) is None
    both = {"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}, "NumericLessThan": {"s3:max-keys": "100"}}
    assert cond(both, {"s3:prefix": ["a"], "s3:delimiter": ["/"], "s3:max-keys": ["10"]}) == "Allow"
    assert cond(both, {"s3:prefix": ["a"], "s3:delimiter": ["/"], "s3:max-keys": ["1000"]}) is None
    assert cond(both, {"s3:prefix": ["a"], "s3:max-keys": ["10"]}) is None


def test_policy_variables() -> None:
    home = pol(st(action="s3:ListBucket", resource=f"arn:aws:s3:::{B}",
                  Condition={"StringLike": {"s3:prefix": "home/${aws:username}/*"}}))
    env = {"aws:username": ["alice"], "s3:prefix": ["home/alice/docs"]}
    assert verdict(home, "s3:ListBucket", B, env=env) == "Allow"
    assert verdict(home, "s3:ListBucket", B, env={**env, "s3:prefix": ["home/bob/docs"]}) is None
    assert verdict(home, "s3:ListBucket", B, env={"s3:prefix": ["home//x"]}) is None  # no user name: no match
    own = pol(st(resource=f"arn:aws:s3:::{B}/${{aws:username}}/*"))
    assert verdict(own, resource=f"{B}/alice/f", env={"aws:username": ["alice"]}) == "Allow"
    assert verdict(own, resource=f"{B}/bob/f", env={"aws:username": ["alice"]}) is None
    old = pol(st(resource=f"arn:aws:s3:::{B}/${{aws:username}}/*"), version="2008-10-17")
    assert verdict(old, resource=f"{B}/${{aws:username}}/f", env={"aws:username": ["alice"]}) == "Allow"
    literal = pol(st(resource=f"arn:aws:s3:::{B}/a${{*}}b"))
    assert verdict(literal, resource=f"{B}/a*b") == "Allow"
    assert verdict(literal, resource=f"{B}/axxb") is None


def test_is_public() -> None:
    def public(statement: dict) -> bool:
        return parse(pol(statement), B).is_public()

    assert public(st())
    assert public(st(principal={"AWS": "*"}, action="s3:ListBucket", resource=f"arn:aws:s3:::{B}"))
    assert not public(st(principal={"AWS": "arn:aws:iam::s3tenant1:root"}))
    assert not public(st(effect="Deny"))
    assert not public(st(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/32"}}))
    assert public(st(Condition={"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}))
    assert public(st(Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    assert public(st(Condition={"StringLike": {"aws:Referer": "http://x/*"}}))
    assert not public(st(Condition={"StringEquals": {"aws:SourceVpc": "vpc-1"}}))
