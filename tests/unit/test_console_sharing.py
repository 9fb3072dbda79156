"""lampi.console.sharing: the View / Transfer / Collaborate levels as Swift ACL edits."""

from __future__ import annotations

from lampi.console import sharing as S


def test_levels_as_acl_grants() -> None:
    assert S.wanted("view") == ((True, False), (True, False))
    assert S.wanted("transfer") == ((True, True), (True, False))
    assert S.wanted("collaborate") == ((True, True), (True, True))
    assert S.wanted(None) == ((False, False), (False, False))
    assert S.level_of("Collaborate") == "collaborate" and S.level_of("read") == "view"
    assert S.level_of("readwrite") == "transfer" and S.level_of("owner") is None


def test_edit_keeps_other_entries_and_is_idempotent() -> None:
    acls = S.Acls(".r:*,.rlistings,other:*", "other:*")
    once = S.edit(acls, "p1", True, True)
    assert once == S.Acls(".r:*,.rlistings,other:*,p1:*", "other:*,p1:*")
    assert S.edit(once, "p1", True, True) == once
    assert S.edit(once, "p1", True, False) == S.Acls(".r:*,.rlistings,other:*,p1:*", "other:*")
    assert S.edit(once, "p1", False, False) == acls


def test_grantees_read_back_the_level() -> None:
    bucket = S.Acls(".r:*,a:*,b:*,c:*,*:*,x:user", "b:*,c:*,d:*")
    assert S.grantees(bucket, S.Acls("a:*,b:*,c:*", "c:*")) == {
        "a": "view", "b": "transfer", "c": "collaborate", "d": "write"}
    assert S.grantees(bucket, None)["c"] == "transfer"


def test_project_ids_with_acl_syntax_are_refused() -> None:
    for bad in ("", "a:b", "a,b", "a b", ".r", "x" * 256, "a\nb"):
        assert not S.valid_project(bad), bad
    assert S.valid_project("3d5b0ae8e724b439a4cd16d1290")


def test_segment_plan() -> None:
    from lampi.console.segments import MAX_SEGMENTS, plan_of

    assert plan_of(1024, "a", 1024, "1") is None
    p = plan_of(1024, "dir/a b", 3000, "1700")
    assert p is not None and (p.count, p.segment_size) == (3, 1024)
    assert [p.length(i) for i in range(p.count)] == [1024, 1024, 952]
    assert p.segment(2) == "dir/a b/slo/1700/3000/1024/00000002"  # python-swiftclient's names
    big = plan_of(1024, "x", 1024 * MAX_SEGMENTS * 3 + 1, "1")
    assert big is not None and big.count <= MAX_SEGMENTS and big.segment_size > 1024
    assert sum(big.length(i) for i in range(big.count)) == big.size
