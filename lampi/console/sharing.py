"""Sharing a bucket with another project, as the Allas Web UI offers it: View, Transfer
or Collaborate, granted to a project id (Allas's "Share ID") and kept in Swift's
container ACLs, ``<project_id>:*`` entries, as Allas's ``a-access`` and
``allas-share-bucket`` write them — on the bucket and on its segments container
``<bucket>_segments`` (where large objects' segments are), so that large objects can
be read (and, with Collaborate, uploaded) by the grantee too.

====================  ===========================  =============================
level                 the bucket                   ``<bucket>_segments``
====================  ===========================  =============================
View                  read ACL (list, read)        read ACL (when it exists)
Transfer              read and write ACLs          read ACL (when it exists)
                      (also upload, overwrite,
                      delete objects)
Collaborate           read and write ACLs          read and write ACLs (made if
                                                   missing): segmented uploads
====================  ===========================  =============================

Swift gives a container grantee no right over the container's own ACLs (only its
owners and an account ACL's ``admin`` may change them, the latter for the whole
account), so no level lets the grantee share the bucket further.

Pure functions over ACL strings; the console's views make the API requests.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("view", "transfer", "collaborate")
LABELS = {"view": "View", "transfer": "Transfer", "collaborate": "Collaborate", "write": "Write only"}
# older form values (and a-access's +r / +rw / +w)
ALIASES = {"read": "view", "readwrite": "transfer", "rw": "transfer", "write": "write"}
SEGMENTS_SUFFIX = "_segments"


def segments_of(bucket: str) -> str:
    return bucket + SEGMENTS_SUFFIX


def level_of(value: str) -> str | None:
    """The level a form names (None: none known)."""
    v = value.strip().lower()
    v = ALIASES.get(v, v)
    return v if v in LEVELS or v == "write" else None


def valid_project(project: str) -> bool:
    """A project id as a grantee: no ACL syntax (``,``, ``:``, spaces, ``.r``)."""
    return bool(project) and len(project) <= 255 and project.isprintable() and not project.startswith(".") \
        and not any(c in project for c in ",: \t")


def _items(acl: str) -> list[str]:
    return [i.strip() for i in acl.split(",") if i.strip()]


def _grant(project: str) -> str:
    return f"{project}:*"


def _with(items: list[str], project: str, on: bool) -> list[str]:
    g = _grant(project)
    rest = [i for i in items if i != g]
    return rest + [g] if on else rest


@dataclass(frozen=True)
class Acls:
    """A container's read and write ACLs (the header values)."""

    read: str = ""
    write: str = ""


def wanted(level: str | None) -> tuple[tuple[bool, bool], tuple[bool, bool]]:
    """((bucket read, bucket write), (segments read, segments write)) of a level;
    None: revoked."""
    if level is None:
        return (False, False), (False, False)
    if level == "write":
        return (False, True), (False, True)
    return (True, level != "view"), (True, level == "collaborate")


def edit(acls: Acls, project: str, read: bool, write: bool) -> Acls:
    """``acls`` with ``project``'s grants set to exactly ``read`` / ``write``."""
    return Acls(",".join(_with(_items(acls.read), project, read)),
                ",".join(_with(_items(acls.write), project, write)))


def grantees(bucket: Acls, segments: Acls | None) -> dict[str, str]:
    """{project id: level} of the ``<project>:*`` grants of a bucket (and its segments
    container): Collaborate when the segments container is writable too."""
    def projects(acl: str) -> set[str]:
        return {i[:-2] for i in _items(acl) if i.endswith(":*") and not i.startswith(("*:", ".r:"))}

    readers, writers = projects(bucket.read), projects(bucket.write)
    seg_writers = projects(segments.write) if segments is not None else set()
    out = {}
    for p in sorted(readers | writers):
        if p in readers and p in writers:
            out[p] = "collaborate" if p in seg_writers else "transfer"
        elif p in readers:
            out[p] = "view"
        else:
            out[p] = "write"
    return out
