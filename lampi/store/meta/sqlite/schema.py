"""The SQLite MetaStore's schema: tables, indexes, the identity-generation triggers, the
revocations database, and the guarded ALTERs that bring older data dirs up to date."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS domains (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL REFERENCES domains(id),
    description TEXT NOT NULL DEFAULT '', enabled INTEGER NOT NULL DEFAULT 1,
    UNIQUE (domain_id, name)
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL REFERENCES domains(id),
    password_hash TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, default_project_id TEXT,
    UNIQUE (domain_id, name)
);
CREATE TABLE IF NOT EXISTS assignments (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (user_id, project_id, role)
);
-- roles made with ``lampi role create`` (the built-in ones, lampi.core.authz.BUILTIN_ROLES,
-- have no row); names are unique whatever their case, as keystoneauth compares them
CREATE TABLE IF NOT EXISTS roles (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    project_id TEXT PRIMARY KEY, meta TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL,
    container_count INTEGER NOT NULL DEFAULT 0, object_count INTEGER NOT NULL DEFAULT 0,
    bytes_used INTEGER NOT NULL DEFAULT 0
);
-- containers: ``ckey`` is the container's key, what objects, versions and uploads refer
-- to (lampi.core.storage.Storage.container_key): its name when it was made in the global
-- namespace (so stores from before the key keep their rows), "<project_id>/<name>" in the
-- per-project one. Clients name a container by (project, name), or by name alone in the
-- global namespace; ``policy`` is its storage policy's name (NULL: made before policies,
-- i.e. Policy-0's blob root)
CREATE TABLE IF NOT EXISTS containers (
    ckey TEXT PRIMARY KEY, name TEXT NOT NULL, project_id TEXT NOT NULL, created_at REAL NOT NULL,
    put_timestamp REAL NOT NULL, updated_at REAL NOT NULL, meta TEXT NOT NULL DEFAULT '{}',
    object_count INTEGER NOT NULL DEFAULT 0, bytes_used INTEGER NOT NULL DEFAULT 0, policy TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS containers_by_project_name ON containers (project_id, name);
CREATE INDEX IF NOT EXISTS containers_by_name ON containers (name);
CREATE TABLE IF NOT EXISTS objects (
    container TEXT NOT NULL, name TEXT NOT NULL, blob_id TEXT NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, content_type TEXT NOT NULL, last_modified REAL NOT NULL,
    data_timestamp REAL NOT NULL, meta TEXT NOT NULL DEFAULT '{}',
    sysmeta TEXT NOT NULL DEFAULT '{}', delete_at INTEGER, manifest TEXT,
    PRIMARY KEY (container, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_by_blob ON objects (blob_id);
-- inline blobs (lampi.core.models.is_inline): small objects' bytes, by blob id, written
-- in the transaction recording the object, deleted in the one releasing the blob
CREATE TABLE IF NOT EXISTS inline_blobs (blob_id TEXT PRIMARY KEY, data BLOB NOT NULL);
-- EC2 credentials: ``secret`` is sealed with the key ``key_hash`` (keys/credential-*,
-- lampi/store/meta/sqlite/credentials.py); key_hash NULL: clear text of an older store
CREATE TABLE IF NOT EXISTS credentials (
    access TEXT PRIMARY KEY, secret TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at REAL NOT NULL, key_hash TEXT
);
CREATE INDEX IF NOT EXISTS credentials_by_user ON credentials (user_id);
-- the background expirer's scan (lampi/bg/expirer.py)
CREATE INDEX IF NOT EXISTS objects_by_delete_at ON objects (delete_at) WHERE delete_at IS NOT NULL;
-- per-project quota overrides (lampi project set-quota); NULL = the configured default
CREATE TABLE IF NOT EXISTS project_quotas (
    project_id TEXT PRIMARY KEY, max_bytes INTEGER, max_containers INTEGER,
    max_objects_per_container INTEGER
);
-- S3 multipart uploads in progress and their parts (lampi/core/multipart.py). Upload
-- ids sort by creation time, so (container, name, upload_id) is S3's listing order.
CREATE TABLE IF NOT EXISTS mpu_uploads (
    upload_id TEXT PRIMARY KEY, container TEXT NOT NULL, name TEXT NOT NULL,
    project_id TEXT NOT NULL, initiated REAL NOT NULL, content_type TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}', sysmeta TEXT NOT NULL DEFAULT '{}',
    checksum_alg TEXT, checksum_type TEXT, owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS mpu_uploads_by_key ON mpu_uploads (container, name, upload_id);
CREATE INDEX IF NOT EXISTS mpu_uploads_by_project ON mpu_uploads (project_id);
-- background passes (expirer, S3 lifecycle): the worker holding a pass's lease runs it
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
-- keys sealed with the master key (lampi/store/keyring.py StoredKeys; used with a master key)
CREATE TABLE IF NOT EXISTS keys (
    ring TEXT NOT NULL, n INTEGER NOT NULL, kid TEXT NOT NULL, sealed TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (ring, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mpu_parts (
    upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, blob_id TEXT NOT NULL,
    size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified REAL NOT NULL, checksum TEXT,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
-- part blobs owned by a completed upload's manifest (its body blob is ``owner``); they
-- count as referenced only while an object still refers to the owner
CREATE TABLE IF NOT EXISTS manifest_parts (
    owner TEXT NOT NULL, blob_id TEXT NOT NULL, PRIMARY KEY (owner, blob_id)
) WITHOUT ROWID;
-- object versioning (lampi/core/versions.py): every version of an object of a versioned
-- container, each owning its blob ('' for a delete marker); objects.version_id set means
-- the current object points at (shares the blob of) that version
CREATE TABLE IF NOT EXISTS object_versions (
    container TEXT NOT NULL, name TEXT NOT NULL, version_id TEXT NOT NULL, blob_id TEXT NOT NULL,
    size INTEGER NOT NULL, etag TEXT NOT NULL, content_type TEXT NOT NULL, last_modified REAL NOT NULL,
    data_timestamp REAL NOT NULL, meta TEXT NOT NULL DEFAULT '{}', sysmeta TEXT NOT NULL DEFAULT '{}',
    delete_at INTEGER, manifest TEXT,
    PRIMARY KEY (container, name, version_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS object_versions_by_blob ON object_versions (blob_id);
-- S3's "null" version of an object (lampi/core/versions.py): an unversioned current object
-- is null by definition; once kept as a version, that version row is named here (at most
-- one per object: the primary key). S3 shows it as versionId "null", Swift by its id.
CREATE TABLE IF NOT EXISTS null_versions (
    container TEXT NOT NULL, name TEXT NOT NULL, version_id TEXT NOT NULL,
    PRIMARY KEY (container, name)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS null_versions_gone AFTER DELETE ON object_versions BEGIN
    DELETE FROM null_versions WHERE container = OLD.container AND name = OLD.name
        AND version_id = OLD.version_id;
END;
"""

# Identity generation: a counter that moves, in the same transaction, whenever a
# credential, user, project or role assignment is written (cascades included). Workers
# cache what an S3 access key resolves to (lampi.s3.sigv4) and read this counter per
# request on a dedicated connection, without a thread hop (``identity_generation``): a
# deleted key, disabled user or revoked role is refused at once on every worker. No row
# means 0, so opening a connection (which runs this schema) never writes.
SCHEMA += "CREATE TABLE IF NOT EXISTS identity_gen (id INTEGER PRIMARY KEY CHECK (id = 0), gen INTEGER NOT NULL);\n"
SCHEMA += "".join(
    f"CREATE TRIGGER IF NOT EXISTS identity_gen_{_t}_{_op.lower()} AFTER {_op} ON {_t} BEGIN "
    "INSERT OR REPLACE INTO identity_gen (id, gen) "
    "VALUES (0, COALESCE((SELECT gen FROM identity_gen WHERE id = 0), 0) + 1); END;\n"
    for _t in ("credentials", "users", "projects", "assignments") for _op in ("INSERT", "UPDATE", "DELETE")
)

REVOKE_SCHEMA = """
CREATE TABLE IF NOT EXISTS revoked (audit_id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
"""

# Columns added after the first release: (table, column, definition). Data dirs
# created before them get the column by a guarded ALTER TABLE at start-up.
ADDED_COLUMNS = (("objects", "manifest", "TEXT"), ("objects", "version_id", "TEXT"),
                 ("credentials", "key_hash", "TEXT"))


# the containers table of stores from before container keys: ``name`` was the primary key
_CONTAINERS_V1 = ("name", "project_id", "created_at", "put_timestamp", "updated_at", "meta",
                  "object_count", "bytes_used")


def _key_containers(conn: sqlite3.Connection) -> None:
    """Give the containers of an older store their key (= their name: they were made in
    the global namespace), rebuilding the table in one transaction (SQLite cannot change
    a primary key in place). Objects, versions and uploads already refer to the name."""
    if "ckey" in {r[1] for r in conn.execute("PRAGMA table_info(containers)")}:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "ckey" not in {r[1] for r in conn.execute("PRAGMA table_info(containers)")}:  # not another worker
            cols = ", ".join(_CONTAINERS_V1)
            ddl = SCHEMA.split("CREATE TABLE IF NOT EXISTS containers (", 1)[1].split(");", 1)[0]
            conn.execute(f"CREATE TABLE containers_keyed ({ddl})")
            conn.execute(f"INSERT INTO containers_keyed (ckey, {cols}) SELECT name, {cols} FROM containers")
            conn.execute("DROP TABLE containers")
            conn.execute("ALTER TABLE containers_keyed RENAME TO containers")
            conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS containers_by_project_name "
                         "ON containers (project_id, name)")
            conn.execute("CREATE INDEX IF NOT EXISTS containers_by_name ON containers (name)")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def migrate(conn: sqlite3.Connection) -> None:
    _key_containers(conn)
    for table, column, decl in ADDED_COLUMNS:
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if column in have:
            continue
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        except sqlite3.OperationalError as exc:  # another worker added it first
            if "duplicate column" not in str(exc):
                raise
