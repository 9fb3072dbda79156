"""Each worker caches what an S3 key resolves to (lampi.s3.sigv4); any identity change
(role revoked or granted, user deleted) must take effect at once on every worker, also
when made by another process (the ``lampi`` admin CLI writes the database directly)."""

from __future__ import annotations

import json
import uuid

from tests.functional.test_s3_features import signed_request, xml_code


def _answers(server, keys: dict[str, str], n: int = 30) -> set[tuple[int, str]]:  # noqa: ANN001
    # requests opens a new connection per call, so the kernel spreads them over both workers
    return {(r.status_code, xml_code(r)) for r in (signed_request("GET", server.url + "/", keys) for _ in range(n))}


def test_identity_changes_reach_every_worker_at_once(fresh_server) -> None:  # noqa: ANN001
    fresh_server.workers = 2
    fresh_server.start()
    name = "p" + uuid.uuid4().hex[:10]
    fresh_server.cli("project", "create", name)
    fresh_server.cli("user", "create", name, "--password", "pw-" + name, "--project", name)
    keys = json.loads(fresh_server.cli("credential", "create", name, name, "--json").stdout)
    assert _answers(fresh_server, keys) == {(200, "")}  # both workers have it cached now
    fresh_server.cli("role", "revoke", name, name, "member")
    assert _answers(fresh_server, keys) == {(403, "AccessDenied")}
    fresh_server.cli("role", "grant", name, name, "reader")
    assert _answers(fresh_server, keys) == {(200, "")}
    # a reader may not create a bucket: the cached principal carries the new roles
    r = signed_request("PUT", f"{fresh_server.url}/{name}-b", keys)
    assert (r.status_code, xml_code(r)) == (403, "AccessDenied")
    fresh_server.cli("user", "delete", name)  # the key goes with its user
    assert _answers(fresh_server, keys) == {(403, "InvalidAccessKeyId")}
