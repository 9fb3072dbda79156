"""Swift listing semantics of the MetaStore (``fold_listing`` behind list_objects and
list_containers), checked against a brute-force reference of Swift's rules.

Reference (swift/container/backend.py ``list_objects_iter``): with ``reverse`` the
markers swap roles; names must start with ``prefix`` and lie strictly between the
lower bound (``marker``, or ``end_marker`` when reversed) and the upper bound; with a
delimiter, every name having the delimiter after the prefix folds into one ``subdir``
entry (the name up to and including the delimiter), except a subdir equal to the
lower bound marker; then the first ``limit`` entries in scan order.
"""

from __future__ import annotations

import random
import time
import uuid

import pytest

from lampi.core.models import Domain, ListParams, ObjectRecord, Project
from lampi.store.meta.sqlite import listing as sqlite_meta


def reference(names: list[str], p: ListParams) -> list[tuple[str, bool]]:
    lo, hi = (p.end_marker, p.marker) if p.reverse else (p.marker, p.end_marker)
    ordered = sorted(set(names), reverse=p.reverse)
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for n in ordered:
        if not n.startswith(p.prefix) or (lo and n <= lo) or (hi and n >= hi):
            continue
        if p.delimiter:
            i = n.find(p.delimiter, len(p.prefix))
            if i >= 0:
                sub = n[: i + len(p.delimiter)]
                if sub not in seen and sub != lo:
                    seen.add(sub)
                    out.append((sub, True))
                continue
        out.append((n, False))
    return out[: p.limit]


# multi-byte UTF-8 (2, 3 and 4 bytes), the delimiters themselves, and chars sorting
# right after '/' ('0') and right before it ('.')
ALPHABET = ["a", "b", "/", "-", "0", ".", "é", "ß", "名", "😀", "\u00ff", "\u0100"]
DELIMITERS = ["/", "-", "é"]


def random_names(rng: random.Random, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        k = rng.randint(1, 6)
        name = "".join(rng.choice(ALPHABET) for _ in range(k))
        names.add(name)
    # names ending with the delimiter, and a name equal to a folded subdir
    names.update({"a/", "a/b/", "a-", "b/a", "é", "aé", "aéb"})
    return sorted(names)


def bound_candidates(rng: random.Random, names: list[str]) -> list[str]:
    """Markers: existing names, their subdir prefixes, and random strings."""
    picks = [""] + rng.sample(names, min(4, len(names)))
    for n in rng.sample(names, min(4, len(names))):
        for d in DELIMITERS:
            if d in n:
                picks.append(n[: n.index(d) + len(d)])
    picks += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 3))) for _ in range(3)]
    return picks


def random_params(rng: random.Random, names: list[str]) -> ListParams:
    bounds = bound_candidates(rng, names)
    prefix = rng.choice(["", "", "a", "a/", "é", "b/", "😀", rng.choice(names)[:2]])
    return ListParams(
        prefix=prefix,
        delimiter=rng.choice(["", "", *DELIMITERS]),
        marker=rng.choice(bounds) if rng.random() < 0.5 else "",
        end_marker=rng.choice(bounds) if rng.random() < 0.3 else "",
        limit=rng.choice([1, 2, 3, 5, 10000]),
        reverse=rng.random() < 0.4,
    )


async def fill(meta, names: list[str]) -> tuple[str, str]:
    """A container holding ``names`` as objects, and an account holding ``names`` as
    containers; returns (container name, account project id)."""
    tag = uuid.uuid4().hex[:8]
    dom = await meta.get_domain("default") or await meta.create_domain(Domain("default", "Default"))
    objs = await meta.create_project(Project(uuid.uuid4().hex, "objs-" + tag, dom.id))
    conts = await meta.create_project(Project(uuid.uuid4().hex, "conts-" + tag, dom.id))
    cname = "c-" + tag
    await meta.create_container(objs.id, cname, {}, time.time())
    for n in names:
        await meta.put_object(
            ObjectRecord(cname, n, uuid.uuid4().hex, len(n), "0" * 32, "text/plain", time.time())
        )
        await meta.create_container(conts.id, n, {}, time.time())
    return cname, conts.id


def as_pairs(entries) -> list[tuple[str, bool]]:
    return [(e.name, e.is_subdir) for e in entries]


@pytest.fixture(params=[sqlite_meta._LIST_BATCH, 2], ids=["batch-default", "batch-2"])
def batch(request, monkeypatch):
    """Also run with tiny fetch batches so every batch boundary is crossed."""
    monkeypatch.setattr(sqlite_meta, "_LIST_BATCH", request.param)
    return request.param


@pytest.mark.parametrize("seed", range(4))
async def test_listing_matches_reference(meta, batch, seed):
    rng = random.Random(seed)
    names = random_names(rng, 40)
    cname, acct = await fill(meta, names)
    now = time.time()
    for _ in range(150):
        p = random_params(rng, names)
        want = reference(names, p)
        got = as_pairs(await meta.list_objects(cname, p, now))
        assert got == want, p
        got = as_pairs(await meta.list_containers(acct, p))
        assert got == want, p


async def test_listing_handpicked(meta, batch):
    names = ["a", "a/", "a/b", "a/b/c", "a/c", "a0", "b", "b/x", "b/y", "c-d", "é/1", "é/2", "名/x"]
    cname, acct = await fill(meta, names)
    cases = [
        (ListParams(delimiter="/"), [("a", 0), ("a/", 1), ("a0", 0), ("b", 0), ("b/", 1), ("c-d", 0), ("é/", 1), ("名/", 1)]),
        (ListParams(delimiter="/", limit=2), [("a", 0), ("a/", 1)]),
        (ListParams(prefix="a/", delimiter="/"), [("a/", 0), ("a/b", 0), ("a/b/", 1), ("a/c", 0)]),
        # marker equal to a subdir: the subdir is not repeated
        (ListParams(delimiter="/", marker="a/"), [("a0", 0), ("b", 0), ("b/", 1), ("c-d", 0), ("é/", 1), ("名/", 1)]),
        (ListParams(delimiter="/", marker="b/", limit=2), [("c-d", 0), ("é/", 1)]),
        # reverse: marker is the upper bound, end_marker the lower one
        (ListParams(delimiter="/", reverse=True, limit=4), [("名/", 1), ("é/", 1), ("c-d", 0), ("b/", 1)]),
        (ListParams(delimiter="/", reverse=True, marker="b/x"), [("b", 0), ("a0", 0), ("a/", 1), ("a", 0)]),
        (ListParams(delimiter="/", reverse=True, end_marker="a/"), [("名/", 1), ("é/", 1), ("c-d", 0), ("b/", 1), ("b", 0), ("a0", 0)]),
        (ListParams(prefix="é", delimiter="/"), [("é/", 1)]),
        (ListParams(prefix="é/"), [("é/1", 0), ("é/2", 0)]),
        (ListParams(marker="b/x", end_marker="é/2"), [("b/y", 0), ("c-d", 0), ("é/1", 0)]),
        (ListParams(prefix="a/", end_marker="a/c"), [("a/", 0), ("a/b", 0), ("a/b/c", 0)]),
        (ListParams(prefix="zz"), []),
        (ListParams(limit=0), []),
        (ListParams(delimiter="-"), None),  # None: compare with the reference only
        (ListParams(delimiter="é", prefix="é"), None),
    ]
    for p, want in cases:
        if want is None:
            want = reference(names, p)
        else:
            want = [(n, bool(s)) for n, s in want]
            assert reference(names, p) == want, p  # the reference agrees with the hand-written answer
        assert as_pairs(await meta.list_objects(cname, p, time.time())) == want, p
        assert as_pairs(await meta.list_containers(acct, p)) == want, p


async def test_listing_prefix_at_the_top_of_unicode(meta):
    """A prefix ending in the highest code point (or right before the surrogates) has
    no simple 'next string': the listing must still work, not crash."""
    names = ["a\U0010ffff", "a\U0010ffffb", "a\ud7ff", "a\ud7ffx", "a\ue000", "b"]
    cname, acct = await fill(meta, names)
    for prefix in ["a\U0010ffff", "a\ud7ff", "\U0010ffff", "a"]:
        for reverse in (False, True):
            p = ListParams(prefix=prefix, reverse=reverse)
            assert as_pairs(await meta.list_objects(cname, p, time.time())) == reference(names, p)
            assert as_pairs(await meta.list_containers(acct, p)) == reference(names, p)


async def test_listing_pages_like_a_client(meta, batch):
    """Page with limit + marker (as swiftclient does) and with reverse: every name once."""
    rng = random.Random(99)
    names = random_names(rng, 60)
    cname, _ = await fill(meta, names)
    for reverse in (False, True):
        marker, seen = "", []
        while True:
            page = await meta.list_objects(cname, ListParams(marker=marker, limit=7, reverse=reverse), time.time())
            if not page:
                break
            seen += [e.name for e in page]
            marker = page[-1].name
        assert seen == sorted(names, reverse=reverse)
