"""The PostgreSQL MetaStore's schema, versioned.

The tables are the SQLite store's (lampi/store/meta/sqlite/schema.py) in PostgreSQL's
types: every text column in the "C" collation, so names sort by code point as in
SQLite (listings, markers and range scans agree between the two stores); JSON kept as
text (the shared code parses it), cast to jsonb where a query looks inside.

``schema_version`` holds one row, the version of the schema in the database.
``MIGRATIONS[n]`` brings a database from version n-1 to n; ``upgrade`` runs the missing
ones in one transaction under an advisory lock (so two gateways upgrading at once do it
once). ``lampi serve`` creates the schema in an empty database, and refuses to serve one
older (``lampi db upgrade`` first) or newer (a newer lampi wrote it) than its own.
"""

from __future__ import annotations

from typing import Any

from lampi.store.meta.base import SchemaError  # defined there: importing it needs no psycopg

SCHEMA_VERSION = 4

# the advisory lock taken while the schema is created or upgraded
_LOCK = 0x6C616D7069  # "lampi"

_V1 = """
CREATE TABLE domains (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE projects (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL REFERENCES domains(id),
    description TEXT NOT NULL DEFAULT '', enabled INTEGER NOT NULL DEFAULT 1,
    UNIQUE (domain_id, name)
);
CREATE TABLE users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL REFERENCES domains(id),
    password_hash TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, default_project_id TEXT,
    UNIQUE (domain_id, name)
);
CREATE TABLE assignments (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (user_id, project_id, role)
);
CREATE TABLE roles (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX roles_by_name ON roles (lower(name));
CREATE TABLE accounts (
    project_id TEXT PRIMARY KEY, meta TEXT NOT NULL DEFAULT '{}', created_at DOUBLE PRECISION NOT NULL,
    container_count BIGINT NOT NULL DEFAULT 0, object_count BIGINT NOT NULL DEFAULT 0,
    bytes_used BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE containers (
    ckey TEXT PRIMARY KEY, name TEXT NOT NULL, project_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    put_timestamp DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, meta TEXT NOT NULL DEFAULT '{}',
    object_count BIGINT NOT NULL DEFAULT 0, bytes_used BIGINT NOT NULL DEFAULT 0, policy TEXT
);
CREATE UNIQUE INDEX containers_by_project_name ON containers (project_id, name);
CREATE INDEX containers_by_name ON containers (name);
CREATE TABLE objects (
    container TEXT NOT NULL, name TEXT NOT NULL, blob_id TEXT NOT NULL, size BIGINT NOT NULL,
    etag TEXT NOT NULL, content_type TEXT NOT NULL, last_modified DOUBLE PRECISION NOT NULL,
    data_timestamp DOUBLE PRECISION NOT NULL, meta TEXT NOT NULL DEFAULT '{}',
    sysmeta TEXT NOT NULL DEFAULT '{}', delete_at BIGINT, manifest TEXT, version_id TEXT,
    PRIMARY KEY (container, name)
);
CREATE INDEX objects_by_blob ON objects (blob_id);
CREATE INDEX objects_by_delete_at ON objects (delete_at) WHERE delete_at IS NOT NULL;
CREATE TABLE credentials (
    access TEXT PRIMARY KEY, secret TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at DOUBLE PRECISION NOT NULL, key_hash TEXT
);
CREATE INDEX credentials_by_user ON credentials (user_id);
CREATE TABLE project_quotas (
    project_id TEXT PRIMARY KEY, max_bytes BIGINT, max_containers BIGINT,
    max_objects_per_container BIGINT
);
CREATE TABLE mpu_uploads (
    upload_id TEXT PRIMARY KEY, container TEXT NOT NULL, name TEXT NOT NULL,
    project_id TEXT NOT NULL, initiated DOUBLE PRECISION NOT NULL, content_type TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}', sysmeta TEXT NOT NULL DEFAULT '{}',
    checksum_alg TEXT, checksum_type TEXT, owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX mpu_uploads_by_key ON mpu_uploads (container, name, upload_id);
CREATE INDEX mpu_uploads_by_project ON mpu_uploads (project_id);
CREATE TABLE leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE mpu_parts (
    upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, blob_id TEXT NOT NULL,
    size BIGINT NOT NULL, etag TEXT NOT NULL, last_modified DOUBLE PRECISION NOT NULL, checksum TEXT,
    PRIMARY KEY (upload_id, part_number)
);
CREATE TABLE manifest_parts (
    owner TEXT NOT NULL, blob_id TEXT NOT NULL, PRIMARY KEY (owner, blob_id)
);
CREATE TABLE object_versions (
    container TEXT NOT NULL, name TEXT NOT NULL, version_id TEXT NOT NULL, blob_id TEXT NOT NULL,
    size BIGINT NOT NULL, etag TEXT NOT NULL, content_type TEXT NOT NULL, last_modified DOUBLE PRECISION NOT NULL,
    data_timestamp DOUBLE PRECISION NOT NULL, meta TEXT NOT NULL DEFAULT '{}', sysmeta TEXT NOT NULL DEFAULT '{}',
    delete_at BIGINT, manifest TEXT,
    PRIMARY KEY (container, name, version_id)
);
CREATE INDEX object_versions_by_blob ON object_versions (blob_id);
CREATE TABLE null_versions (
    container TEXT NOT NULL, name TEXT NOT NULL, version_id TEXT NOT NULL,
    PRIMARY KEY (container, name)
);
CREATE FUNCTION lampi_null_versions_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM null_versions WHERE container = OLD.container AND name = OLD.name
        AND version_id = OLD.version_id;
    RETURN NULL;
END $$;
CREATE TRIGGER null_versions_gone AFTER DELETE ON object_versions
    FOR EACH ROW EXECUTE FUNCTION lampi_null_versions_gone();
-- identity generation (see the SQLite schema): moves with every write to a credential,
-- user, project or assignment; gateways poll it to drop their S3 key caches
CREATE TABLE identity_gen (id INTEGER PRIMARY KEY CHECK (id = 0), gen BIGINT NOT NULL);
INSERT INTO identity_gen (id, gen) VALUES (0, 0);
CREATE FUNCTION lampi_identity_gen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE identity_gen SET gen = gen + 1 WHERE id = 0;
    RETURN NULL;
END $$;
CREATE TRIGGER identity_gen_credentials AFTER INSERT OR UPDATE OR DELETE ON credentials
    FOR EACH STATEMENT EXECUTE FUNCTION lampi_identity_gen();
CREATE TRIGGER identity_gen_users AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION lampi_identity_gen();
CREATE TRIGGER identity_gen_projects AFTER INSERT OR UPDATE OR DELETE ON projects
    FOR EACH STATEMENT EXECUTE FUNCTION lampi_identity_gen();
CREATE TRIGGER identity_gen_assignments AFTER INSERT OR UPDATE OR DELETE ON assignments
    FOR EACH STATEMENT EXECUTE FUNCTION lampi_identity_gen();
-- token revocations (the SQLite store keeps them in revocations.db)
CREATE TABLE revoked (audit_id TEXT PRIMARY KEY, expires_at DOUBLE PRECISION NOT NULL);
-- moved by every revocation: gateways read this one row to know whether to re-read ``revoked``
CREATE TABLE revoke_gen (id INTEGER PRIMARY KEY CHECK (id = 0), gen BIGINT NOT NULL);
INSERT INTO revoke_gen (id, gen) VALUES (0, 0);
"""

# names sort by code point, as in SQLite: every text column in the "C" collation
_V1 = _V1.replace(" TEXT ", ' TEXT COLLATE "C" ').replace(" TEXT,", ' TEXT COLLATE "C",').replace(
    " TEXT\n", ' TEXT COLLATE "C"\n')

# 2: the keys every gateway shares (token, EC2-secret sealing, SSE keys), each sealed with
# the master key (lampi/store/keyring.py StoredKeys)
_V2 = """
CREATE TABLE keys (
    ring TEXT COLLATE "C" NOT NULL, n INTEGER NOT NULL, kid TEXT COLLATE "C" NOT NULL,
    sealed TEXT COLLATE "C" NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (ring, n)
);
"""

# 3: the common object writes as one statement each (one round trip instead of 4-6 inside
# a container's write transaction; lampi.store.meta.postgres.PostgresMetaStore._put_row
# and delete_object). Each does what the shared transaction bodies
# (lampi/store/meta/sqlite/objects.py: _put_row, delete_object) do for an unversioned
# write with no condition, or answers NULL having written nothing, and the shared body
# runs instead: an object that may be under object lock (its sysmeta mentions "s3-l",
# objectlock.may_lock), an S3 null-version write replacing a null version.
_V3 = """
CREATE FUNCTION lampi_put_object(
    p_container TEXT, p_name TEXT, p_blob_id TEXT, p_size BIGINT, p_etag TEXT, p_content_type TEXT,
    p_last_modified DOUBLE PRECISION, p_meta TEXT, p_sysmeta TEXT, p_delete_at BIGINT,
    p_data_timestamp DOUBLE PRECISION, p_manifest TEXT, p_used BIGINT, p_null_write BOOLEAN
) RETURNS TEXT LANGUAGE plpgsql AS $$
-- the blob the replaced object released ('' for none); '/no-container'; NULL: nothing
-- written, the general path decides
DECLARE
    old RECORD;
    project TEXT;
    added BIGINT := 1;
    old_used BIGINT := 0;
    released TEXT := '';
BEGIN
    SELECT blob_id, size, manifest, version_id, sysmeta INTO old FROM objects
        WHERE container = p_container AND name = p_name;
    IF FOUND THEN
        added := 0;
        IF old.version_id IS NULL THEN
            IF strpos(old.sysmeta, '"s3-l') > 0 THEN
                RETURN NULL;
            END IF;
            old_used := CASE WHEN old.manifest IS NULL THEN old.size
                             WHEN (old.manifest::jsonb ->> 'kind') = 'mpu' THEN old.size
                             ELSE (old.manifest::jsonb ->> 'body_size')::BIGINT END;
            released := old.blob_id;
        END IF;
    END IF;
    IF p_null_write AND EXISTS (SELECT 1 FROM null_versions WHERE container = p_container AND name = p_name) THEN
        RETURN NULL;
    END IF;
    UPDATE containers SET object_count = object_count + added, bytes_used = bytes_used + p_used - old_used
        WHERE ckey = p_container RETURNING project_id INTO project;
    IF NOT FOUND THEN
        RETURN '/no-container';
    END IF;
    UPDATE accounts SET object_count = object_count + added, bytes_used = bytes_used + p_used - old_used
        WHERE project_id = project;
    DELETE FROM null_versions WHERE container = p_container AND name = p_name;
    INSERT INTO objects (container, name, blob_id, size, etag, content_type, last_modified, meta, sysmeta,
                         delete_at, data_timestamp, manifest, version_id)
        VALUES (p_container, p_name, p_blob_id, p_size, p_etag, p_content_type, p_last_modified, p_meta,
                p_sysmeta, p_delete_at, p_data_timestamp, p_manifest, NULL)
        ON CONFLICT (container, name) DO UPDATE SET blob_id = EXCLUDED.blob_id, size = EXCLUDED.size,
            etag = EXCLUDED.etag, content_type = EXCLUDED.content_type, last_modified = EXCLUDED.last_modified,
            meta = EXCLUDED.meta, sysmeta = EXCLUDED.sysmeta, delete_at = EXCLUDED.delete_at,
            data_timestamp = EXCLUDED.data_timestamp, manifest = EXCLUDED.manifest, version_id = NULL;
    RETURN released;
END $$;
CREATE FUNCTION lampi_delete_object(p_container TEXT, p_name TEXT, p_if_blob TEXT) RETURNS TEXT
LANGUAGE plpgsql AS $$
-- the blob released ('' for a pointer to a version, which keeps it); '/none' when no such
-- object (or not with that blob); '/no-container'; NULL: nothing written, the general
-- path decides (object lock)
DECLARE
    gone RECORD;
    project TEXT;
    used BIGINT := 0;
BEGIN
    DELETE FROM objects WHERE container = p_container AND name = p_name
        AND (p_if_blob IS NULL OR blob_id = p_if_blob)
        AND (version_id IS NOT NULL OR strpos(sysmeta, '"s3-l') = 0)
        RETURNING blob_id, size, manifest, version_id INTO gone;
    IF NOT FOUND THEN
        -- one that may be locked (whatever its blob: the shared body checks the lock first)
        IF EXISTS (SELECT 1 FROM objects WHERE container = p_container AND name = p_name
                   AND version_id IS NULL AND strpos(sysmeta, '"s3-l') > 0) THEN
            RETURN NULL;
        END IF;
        RETURN '/none';
    END IF;
    IF gone.version_id IS NULL THEN
        used := CASE WHEN gone.manifest IS NULL THEN gone.size
                     WHEN (gone.manifest::jsonb ->> 'kind') = 'mpu' THEN gone.size
                     ELSE (gone.manifest::jsonb ->> 'body_size')::BIGINT END;
    END IF;
    UPDATE containers SET object_count = object_count - 1, bytes_used = bytes_used - used
        WHERE ckey = p_container RETURNING project_id INTO project;
    IF NOT FOUND THEN
        RETURN '/no-container';
    END IF;
    UPDATE accounts SET object_count = object_count - 1, bytes_used = bytes_used - used
        WHERE project_id = project;
    RETURN CASE WHEN gone.version_id IS NULL THEN gone.blob_id ELSE '' END;
END $$;
"""

# 4: inline blobs (lampi.core.models.is_inline): small objects' bytes in the database,
# written by the statement recording the object and deleted by the one releasing it, so a
# small PUT, GET or DELETE makes no RADOS round trip. A value up to ~8 KB stays in the
# row's page, uncompressed (object bytes are mostly incompressible: not tried); larger
# ones go to the table's TOAST, uncompressed too. ``blob_id`` is of collation "C" as
# every other text column (_V1): compared with a column of another collation, its index
# is not used (a GET read the whole table).
_V4 = """
CREATE TABLE inline_blobs (blob_id TEXT COLLATE "C" PRIMARY KEY, data BYTEA NOT NULL) WITH (toast_tuple_target = 8160);
ALTER TABLE inline_blobs ALTER COLUMN data SET STORAGE EXTERNAL;
DROP FUNCTION lampi_put_object(TEXT, TEXT, TEXT, BIGINT, TEXT, TEXT, DOUBLE PRECISION, TEXT, TEXT, BIGINT,
                               DOUBLE PRECISION, TEXT, BIGINT, BOOLEAN);
CREATE FUNCTION lampi_put_object(
    p_container TEXT, p_name TEXT, p_blob_id TEXT, p_size BIGINT, p_etag TEXT, p_content_type TEXT,
    p_last_modified DOUBLE PRECISION, p_meta TEXT, p_sysmeta TEXT, p_delete_at BIGINT,
    p_data_timestamp DOUBLE PRECISION, p_manifest TEXT, p_used BIGINT, p_null_write BOOLEAN, p_data BYTEA
) RETURNS TEXT LANGUAGE plpgsql AS $$
-- the blob the replaced object released ('' for none, or an inline blob, deleted here);
-- '/no-container'; NULL: nothing written, the general path decides. ``p_data``: the new
-- blob's bytes when it is inline
DECLARE
    old RECORD;
    project TEXT;
    added BIGINT := 1;
    old_used BIGINT := 0;
    released TEXT := '';
BEGIN
    SELECT blob_id, size, manifest, version_id, sysmeta INTO old FROM objects
        WHERE container = p_container AND name = p_name;
    IF FOUND THEN
        added := 0;
        IF old.version_id IS NULL THEN
            IF strpos(old.sysmeta, '"s3-l') > 0 THEN
                RETURN NULL;
            END IF;
            old_used := CASE WHEN old.manifest IS NULL THEN old.size
                             WHEN (old.manifest::jsonb ->> 'kind') = 'mpu' THEN old.size
                             ELSE (old.manifest::jsonb ->> 'body_size')::BIGINT END;
            released := old.blob_id;
        END IF;
    END IF;
    IF p_null_write AND EXISTS (SELECT 1 FROM null_versions WHERE container = p_container AND name = p_name) THEN
        RETURN NULL;
    END IF;
    UPDATE containers SET object_count = object_count + added, bytes_used = bytes_used + p_used - old_used
        WHERE ckey = p_container RETURNING project_id INTO project;
    IF NOT FOUND THEN
        RETURN '/no-container';
    END IF;
    UPDATE accounts SET object_count = object_count + added, bytes_used = bytes_used + p_used - old_used
        WHERE project_id = project;
    DELETE FROM null_versions WHERE container = p_container AND name = p_name;
    IF p_data IS NOT NULL THEN
        INSERT INTO inline_blobs (blob_id, data) VALUES (p_blob_id, p_data)
            ON CONFLICT (blob_id) DO UPDATE SET data = EXCLUDED.data;
    END IF;
    INSERT INTO objects (container, name, blob_id, size, etag, content_type, last_modified, meta, sysmeta,
                         delete_at, data_timestamp, manifest, version_id)
        VALUES (p_container, p_name, p_blob_id, p_size, p_etag, p_content_type, p_last_modified, p_meta,
                p_sysmeta, p_delete_at, p_data_timestamp, p_manifest, NULL)
        ON CONFLICT (container, name) DO UPDATE SET blob_id = EXCLUDED.blob_id, size = EXCLUDED.size,
            etag = EXCLUDED.etag, content_type = EXCLUDED.content_type, last_modified = EXCLUDED.last_modified,
            meta = EXCLUDED.meta, sysmeta = EXCLUDED.sysmeta, delete_at = EXCLUDED.delete_at,
            data_timestamp = EXCLUDED.data_timestamp, manifest = EXCLUDED.manifest, version_id = NULL;
    IF left(released, 1) = '~' AND released <> p_blob_id THEN
        DELETE FROM inline_blobs WHERE blob_id = released;
        released := '';
    END IF;
    RETURN released;
END $$;
CREATE OR REPLACE FUNCTION lampi_delete_object(p_container TEXT, p_name TEXT, p_if_blob TEXT) RETURNS TEXT
LANGUAGE plpgsql AS $$
-- the blob released ('' for a pointer to a version, which keeps it, or for an inline
-- blob, deleted here); '/none' when no such object (or not with that blob);
-- '/no-container'; NULL: nothing written, the general path decides (object lock)
DECLARE
    gone RECORD;
    project TEXT;
    used BIGINT := 0;
BEGIN
    DELETE FROM objects WHERE container = p_container AND name = p_name
        AND (p_if_blob IS NULL OR blob_id = p_if_blob)
        AND (version_id IS NOT NULL OR strpos(sysmeta, '"s3-l') = 0)
        RETURNING blob_id, size, manifest, version_id INTO gone;
    IF NOT FOUND THEN
        -- one that may be locked (whatever its blob: the shared body checks the lock first)
        IF EXISTS (SELECT 1 FROM objects WHERE container = p_container AND name = p_name
                   AND version_id IS NULL AND strpos(sysmeta, '"s3-l') > 0) THEN
            RETURN NULL;
        END IF;
        RETURN '/none';
    END IF;
    IF gone.version_id IS NULL THEN
        used := CASE WHEN gone.manifest IS NULL THEN gone.size
                     WHEN (gone.manifest::jsonb ->> 'kind') = 'mpu' THEN gone.size
                     ELSE (gone.manifest::jsonb ->> 'body_size')::BIGINT END;
    END IF;
    UPDATE containers SET object_count = object_count - 1, bytes_used = bytes_used - used
        WHERE ckey = p_container RETURNING project_id INTO project;
    IF NOT FOUND THEN
        RETURN '/no-container';
    END IF;
    UPDATE accounts SET object_count = object_count - 1, bytes_used = bytes_used - used
        WHERE project_id = project;
    IF gone.version_id IS NOT NULL THEN
        RETURN '';
    END IF;
    IF left(gone.blob_id, 1) = '~' THEN
        DELETE FROM inline_blobs WHERE blob_id = gone.blob_id;
        RETURN '';
    END IF;
    RETURN gone.blob_id;
END $$;
"""

MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2, 3: _V3, 4: _V4}



def current_version(conn: Any) -> int | None:
    """The schema version in the database; None when it has no lampi schema."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row[0]:
        return None
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def upgrade(conn: Any) -> tuple[int | None, int]:
    """Create or upgrade the schema to ``SCHEMA_VERSION`` (``conn`` in autocommit);
    returns (version before, version after). SchemaError for a newer schema."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        before = current_version(conn)
        have = before or 0
        if have > SCHEMA_VERSION:
            raise SchemaError(f"the database's lampi schema is version {have}, newer than this lampi's "
                              f"({SCHEMA_VERSION}): run a newer lampi")
        if before is None:
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        for v in range(have + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[v])
            conn.execute("UPDATE schema_version SET version = %s", (v,))
    return before, SCHEMA_VERSION


def check(conn: Any, url: str, create: bool) -> None:
    """Refuse a database this lampi cannot serve; with ``create``, make the schema in a
    database that has none."""
    have = current_version(conn)
    if have is None and create:
        upgrade(conn)
        return
    if have is None:
        raise SchemaError(f"no lampi schema in {url}: create it with `lampi db upgrade` (or a first `lampi serve`)")
    if have < SCHEMA_VERSION:
        raise SchemaError(f"the lampi schema in {url} is version {have}, older than this lampi's "
                          f"({SCHEMA_VERSION}): run `lampi db upgrade` first")
    if have > SCHEMA_VERSION:
        raise SchemaError(f"the lampi schema in {url} is version {have}, newer than this lampi's "
                          f"({SCHEMA_VERSION}): run a newer lampi")
