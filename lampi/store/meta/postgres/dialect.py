"""SQLite → PostgreSQL statement translation for the shared record-family code.

The PostgreSQL MetaStore runs the same transaction bodies as the SQLite one (the
mixins of ``lampi.store.meta.sqlite``: one implementation of the semantics the contract
suite checks). Their statements are written in SQLite's dialect; ``translate`` rewrites
each one, once (cached by its text), into PostgreSQL's:

* ``?`` / ``?N`` placeholders (outside quoted literals) → ``%s`` / ``%(pN)s``; a literal
  ``%`` is doubled;
* ``INSERT OR REPLACE`` → ``INSERT ... ON CONFLICT (primary key) DO UPDATE``,
  ``INSERT OR IGNORE`` → ``INSERT ... ON CONFLICT DO NOTHING``;
* ``instr`` → ``strpos``, ``json_extract(col, '$."key"')`` → ``(col::jsonb ->> 'key')``,
  ``json_each(?)`` → ``jsonb_array_elements_text``, ``CAST(.. AS INTEGER)`` → BIGINT;
* a few whole expressions SQLite allows and PostgreSQL does not (booleans used as
  integers, SUM's numeric type, NOCASE collation) by exact rewrites (``_REWRITES``).

A statement the table does not cover fails loudly in PostgreSQL (a syntax or type
error), never silently differently: the contract suite runs every statement.
"""

from __future__ import annotations

import functools
import re

# primary keys of the tables written with INSERT OR REPLACE
PRIMARY_KEYS = {
    "objects": ("container", "name"),
    "object_versions": ("container", "name", "version_id"),
    "null_versions": ("container", "name"),
    "mpu_parts": ("upload_id", "part_number"),
    "leases": ("name",),
    "revoked": ("audit_id",),
    "identity_gen": ("id",),
    "accounts": ("project_id",),
    "project_quotas": ("project_id",),
    "assignments": ("user_id", "project_id", "role"),
    "manifest_parts": ("owner", "blob_id"),
    "keys": ("ring", "n"),
    "inline_blobs": ("blob_id",),
}

# exact rewrites, applied first: (SQLite text, PostgreSQL text)
_REWRITES: tuple[tuple[str, str], ...] = (
    # list_objects' flags: booleans as integers
    ("(instr(sysmeta, '\"x-symlink-target\"') > 0) | (instr(sysmeta, '\"x-object-manifest\"') > 0) * 2 "
     "ELSE 0 END | (instr(sysmeta, '\"s3-owner\"') > 0) * 4",
     "(CASE WHEN strpos(sysmeta, '\"x-symlink-target\"') > 0 THEN 1 ELSE 0 END) "
     "| (CASE WHEN strpos(sysmeta, '\"x-object-manifest\"') > 0 THEN 2 ELSE 0 END) "
     "ELSE 0 END | (CASE WHEN strpos(sysmeta, '\"s3-owner\"') > 0 THEN 4 ELSE 0 END)"),
    # fsck's stored size: the manifest's body size is a JSON number
    ("THEN json_extract(manifest, '$.body_size')", "THEN (manifest::jsonb ->> 'body_size')::bigint"),
    # SUM of bigint is numeric in PostgreSQL
    ("SUM(object_count), SUM(bytes_used)", "SUM(object_count)::bigint, SUM(bytes_used)::bigint"),
    ("COALESCE(SUM(CASE WHEN u.container = ? THEN p.size END), 0), COALESCE(SUM(p.size), 0)",
     "COALESCE(SUM(CASE WHEN u.container = ? THEN p.size END), 0)::bigint, COALESCE(SUM(p.size), 0)::bigint"),
    # roles: names compare without case (SQLite: COLLATE NOCASE on the column)
    ("ORDER BY name COLLATE NOCASE", "ORDER BY lower(name), name"),
    ("FROM roles WHERE name = ?", "FROM roles WHERE lower(name) = lower(?)"),
    # containers_with_meta: the path is a parameter ('$."key"' is also a jsonpath)
    ("json_extract(meta, ?) IS NOT NULL", "jsonb_path_exists(meta::jsonb, ?::jsonpath)"),
    # a parameter compared with NULL needs a type
    ("(? IS NULL OR blob_id = ?)", "(?::text IS NULL OR blob_id = ?)"),
    # SQLite's two-argument MAX is PostgreSQL's GREATEST
    ("put_timestamp = MAX(put_timestamp, ?)", "put_timestamp = GREATEST(put_timestamp, ?)"),
    # get_domain: id first
    ("ORDER BY id = ? DESC", "ORDER BY (id = ?) DESC"),
)

_JSON_KEY = re.compile(r"json_extract\(((?:\w+\.)?\w+), '\$\.(?:\"([^\"]+)\"|(\w+))'\)")
_JSON_EACH = re.compile(r"json_each\((\?\d*)\)")
_INSERT = re.compile(r"^\s*INSERT OR (REPLACE|IGNORE) INTO (\w+) \(([^)]*)\)(.*)$", re.S)


def _placeholders(sql: str) -> tuple[str, bool]:
    """``?``/``?N`` → psycopg placeholders outside quoted text; (sql, named)."""
    out: list[str] = []
    i, n, named = 0, len(sql), False
    quote: str | None = None
    while i < n:
        ch = sql[i]
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            out.append(ch)
            i += 1
        elif ch == "%":
            out.append("%%")
            i += 1
        elif ch == "?":
            j = i + 1
            while j < n and sql[j].isdigit():
                j += 1
            if j > i + 1:
                out.append(f"%(p{sql[i + 1:j]})s")
                named = True
            else:
                out.append("%s")
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out), named


def _insert(sql: str) -> str:
    m = _INSERT.match(sql)
    if m is None:
        return sql
    how, table, cols, rest = m.groups()
    rest = rest.rstrip()
    returning = ""
    r = rest.upper().rfind(" RETURNING ")
    if r >= 0:
        rest, returning = rest[:r], rest[r:]
    head = f"INSERT INTO {table} ({cols}){rest}"
    if how == "IGNORE":
        return f"{head} ON CONFLICT DO NOTHING{returning}"
    pk = PRIMARY_KEYS[table]
    names = [c.strip() for c in cols.split(",")]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in pk)
    action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
    return f"{head} ON CONFLICT ({', '.join(pk)}) {action}{returning}"


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, bool]:
    """(PostgreSQL text, whether it takes named parameters) of a SQLite statement."""
    for old, new in _REWRITES:
        sql = sql.replace(old, new)
    sql = _insert(sql)
    sql = _JSON_KEY.sub(lambda m: f"({m.group(1)}::jsonb ->> '{m.group(2) or m.group(3)}')", sql)
    sql = _JSON_EACH.sub(r"jsonb_array_elements_text(\1::jsonb)", sql)
    sql = re.sub(r"\binstr\(", "strpos(", sql)
    # SQLite's IS / IS NOT compare values, NULL included
    sql = re.sub(r"\bIS NOT \?", "IS DISTINCT FROM ?", sql)
    sql = re.sub(r"\bIS \?", "IS NOT DISTINCT FROM ?", sql)
    sql = sql.replace(" AS INTEGER)", " AS BIGINT)")
    return _placeholders(sql)


def plain_insert(sql: str) -> bool:
    """An INSERT that may fail on a constraint (a caller may catch it and go on): run
    under a savepoint so that the transaction survives the failure."""
    s = sql.lstrip()[:12].upper()
    return s.startswith("INSERT") and "ON CONFLICT" not in sql
