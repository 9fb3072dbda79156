"""One settings object for lampi.

Precedence: command-line flags > ``LAMPI_*`` environment variables > TOML config
file (``--config`` / ``LAMPI_CONFIG``) > defaults. No other module reads
``os.environ`` for lampi settings.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on."})
    port: int = field(default=8080, metadata={"help": "TCP port to listen on."})
    data_dir: str = field(
        default="./lampi-data",
        metadata={"help": "Directory holding metadata (SQLite), blobs, keys and the RC file."},
    )
    workers: int = field(
        default=0,
        metadata={"help": "Worker processes sharing the listening port; auto (or 0): one per CPU core "
                  "this process may run on (as Swift's workers = auto)."},
    )
    meta_url: str = field(
        default="",
        metadata={"help": "Where the metadata lives: empty, the SQLite file meta.db in the data dir (one "
                  "node); postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, a PostgreSQL database shared by "
                  "any number of gateways (docs/scale-out.md)."},
    )
    public_url: str = field(
        default="",
        metadata={
            "help": "Public base URL (e.g. https://objects.example.org) used in the "
            "catalog and storage URLs; default http://HOST:PORT."
        },
    )
    region: str = field(default="regionOne", metadata={"help": "Region name in the catalog."})
    token_ttl: int = field(
        default=8 * 3600, metadata={"help": "Keystone token lifetime in seconds (Allas: 8 h)."}
    )
    admin_project: str = field(
        default="admin",
        metadata={"help": "Project whose admin role reaches every account (the 'cloud admin')."},
    )
    admin_user: str = field(default="admin", metadata={"help": "Name of the bootstrap admin user."})
    log_level: str = field(default="info", metadata={"help": "Log level: debug, info, warning, error."})
    log_format: str = field(
        default="auto", metadata={"help": "Log format: json, console or auto (console on a TTY)."}
    )
    shutdown_timeout: float = field(
        default=30.0,
        metadata={"help": "Seconds to let in-flight requests finish on SIGTERM/SIGINT."},
    )
    header_timeout: float = field(
        default=20.0,
        metadata={"help": "Seconds a client has to send a request's line and headers (from connecting, or "
                  "from the first byte on a kept-alive connection); then 408 and close. 0 = no limit."},
    )
    body_timeout: float = field(
        default=60.0,
        metadata={"help": "Seconds a request body may stall (no byte received) before the request is "
                  "answered 408 and the connection closed. 0 = no limit."},
    )
    keepalive_timeout: float = field(
        default=75.0,
        metadata={"help": "Seconds an idle kept-alive connection stays open waiting for a next request."},
    )
    max_connections: int = field(
        default=0,
        metadata={"help": "Open connections per worker; past it the longest-idle connection is closed "
                  "(or the new one refused with 503). 0 = derived from the open-file limit."},
    )
    max_object_size: int = field(
        default=5 * 1024**3, metadata={"help": "Largest single object in bytes (Swift: 5 GiB)."}
    )
    s3_domain: str = field(
        default="",
        metadata={"help": "Domain for S3 virtual-hosted-style requests: <bucket>.<s3_domain> (e.g. "
                  "s3.example.org); empty: path style only."},
    )
    s3_port: int = field(
        default=0, metadata={"help": "Extra TCP port serving only S3 (every path is a bucket); 0: none."}
    )
    console_port: int = field(
        default=8081,
        metadata={"help": "TCP port of the web console (on the same host, served by the same workers); "
                  "0: no console."},
    )
    console_segment_size: int = field(
        default=1024**3,
        metadata={"help": "The console uploads a file larger than this in segments of this size (a Swift SLO in "
                  "<bucket>_segments), resumable after a dropped connection: only missing segments are sent "
                  "again. 1 MiB to 5 GiB; a file of more than 1000 segments gets larger ones."},
    )
    trusted_proxies: str = field(
        default="",
        metadata={"help": "Comma-separated proxy addresses/networks (e.g. 127.0.0.1,10.0.0.0/8) whose "
                  "X-Forwarded-Host is used as the request's host (S3 signatures, virtual hosts)."},
    )
    expirer_interval: float = field(
        default=60.0,
        metadata={"help": "Seconds between background expirer passes reclaiming expired objects "
                  "(X-Delete-At); 0 disables the expirer."},
    )
    lifecycle_day_seconds: float = field(
        default=86400.0,
        metadata={"help": "For tests only: the length in seconds of a 'day' in S3 lifecycle rules "
                  "(Expiration Days, DaysAfterInitiation)."},
    )
    quota_bytes: int = field(
        default=10 * 1024**4,
        metadata={"help": "Default storage quota of a project in bytes (Allas: 10 TiB); 0 = unlimited."},
    )
    quota_containers: int = field(
        default=1000, metadata={"help": "Default maximum number of containers of a project; 0 = unlimited."}
    )
    quota_objects_per_container: int = field(
        default=500_000,
        metadata={"help": "Default maximum number of objects in one container; 0 = unlimited."},
    )
    min_free_space: str = field(
        default="1%",
        metadata={"help": "Free space uploads must leave on the data dir's filesystem, in bytes (suffixes "
                  "K, M, G, T: powers of 1024) or percent of its size (e.g. 1%, 512M); an upload that "
                  "would leave less is refused with 507 Insufficient Storage. 0 disables the check."},
    )

    bucket_namespace: str = field(
        default="global",
        metadata={"help": "Container/bucket names: 'global', one name space for the whole service, as "
                  "Allas (a name taken by one project is refused to the others); 'project', each project "
                  "has its own names, as Ceph RGW's tenants (S3: <project_id>:<bucket> names another "
                  "project's bucket)."},
    )

    storage_url_form: str = field(
        default="allas",
        metadata={"help": "The Keystone catalog's object-store URL: 'allas', <base>/swift/v1/AUTH_<project_id> "
                  "as Allas's catalog has it; 'swift', <base>/v1/AUTH_<project_id> (tools that take the "
                  "second path segment for the account, e.g. Swift's own functional tests). Both are served."},
    )
    storage_policies: str = field(
        default="default-placement",
        metadata={"help": "Storage policies, comma-separated NAME[=PATH]: each keeps its objects' bytes "
                  "under its own directory (PATH, relative to the data dir; none: the data dir itself, "
                  "where stores from before policies keep theirs). A container's policy is chosen when "
                  "it is made (Swift's X-Storage-Policy). TOML also takes [[storage_policy]] tables "
                  "(name, path, default). Default: one policy, 'default-placement', as Allas reports."},
    )
    blob_url: str = field(
        default="",
        metadata={"help": "Where object bytes are kept: empty, files under the data dir; "
                  "rados://<pool>?conf=/etc/ceph/ceph.conf&id=<client> (optionally &namespace=<ns>), a Ceph "
                  "RADOS pool, striped into RADOS objects of 4 MiB (docs/scale-out.md). Storage policies "
                  "without a path keep their bytes there; a policy's path may be a rados:// URL of its own."},
    )
    inline_max: int = field(
        default=-1,
        metadata={"help": "Objects of at most this many bytes, uploaded with their length known and not "
                  "encrypted, are kept in the metadata store, in the transaction recording them, instead of "
                  "in a blob of their own (docs/architecture.md, \"Inline blobs\"): a small PUT, GET or "
                  "DELETE then makes no RADOS or file round trip. 0: never; -1 (default): 65536."},
    )
    default_storage_policy: str = field(
        default="",
        metadata={"help": "The policy of containers made without X-Storage-Policy (and of S3 buckets); "
                  "empty: the first of storage_policies."},
    )

    ephemeral: bool = field(
        default=False,
        metadata={"help": "A throw-away store for tests: no fsync (a crash may lose recent writes), the data dir "
                  "(a new temporary one unless data_dir is given, which must not hold a store yet) deleted when "
                  "the server stops."},
    )
    master_key: str = field(
        default="", repr=False,
        metadata={"help": "The master key sealing the keys kept in the metadata store (token, EC2-secret and SSE "
                  "keys; docs/scale-out.md): 44 characters of URL-safe base64 (`lampi master-key generate`). "
                  "Environment (LAMPI_MASTER_KEY) or TOML only, never a flag (it would show in ps). Empty: "
                  "master_key_file."},
    )
    master_key_file: str = field(
        default="",
        metadata={"help": "A file holding the master key (mode 0600). Empty, and master_key empty: the data dir's "
                  "master.key, made at the first start over a database without keys. Every gateway over one "
                  "PostgreSQL needs the same master key; a single node over SQLite without one keeps its keys as "
                  "files in keys/."},
    )
    admin_password: str = field(
        default="", repr=False,
        metadata={"help": "The bootstrap admin's password, set at every start (a CI job can hard-code it); "
                  "empty: a random one at the first start, kept in the RC file."},
    )
    s3_access_key: str = field(
        default="",
        metadata={"help": "An S3 access key the admin has in the admin project, made (or replaced) at every "
                  "start; with s3_secret_key. Empty: none (make keys with `lampi credential create`)."},
    )
    s3_secret_key: str = field(default="", repr=False, metadata={"help": "The secret of s3_access_key (at least 8 characters)."})

    sse_c_require_tls: bool = field(
        default=True,
        metadata={"help": "Refuse S3 SSE-C requests (customer-provided encryption keys) that did not come over "
                  "HTTPS, as S3 does: with tls_cert lampi serves HTTPS itself; behind a TLS proxy list the proxy in "
                  "trusted_proxies and have it send X-Forwarded-Proto: https. false accepts the keys over "
                  "plain HTTP (a laptop, CI)."},
    )

    metrics_port: int = field(
        default=0,
        metadata={"help": "A listener of its own (same host) serving /metrics (Prometheus text format, every "
                  "worker's values), /healthcheck and /readyz; 0: none. Never on the main port, where "
                  "/metrics would be an S3 bucket."},
    )
    metrics_token: str = field(
        default="", repr=False,
        metadata={"help": "When set, /metrics answers only requests with Authorization: Bearer <token> "
                  "(401 otherwise)."},
    )
    metrics_usage: bool = field(
        default=False,
        metadata={"help": "Add per-project usage gauges (lampi_project_bytes, _objects, _buckets: one series "
                  "per project each) to /metrics."},
    )
    tls_cert: str = field(
        default="",
        metadata={"help": "PEM certificate (chain) file: every listener serves HTTPS; with tls_key. Reloaded "
                  "on SIGHUP. Empty: plain HTTP."},
    )
    tls_key: str = field(default="", metadata={"help": "PEM private key file of tls_cert."})
    tls_ca: str = field(
        default="",
        metadata={"help": "CA certificate file clients need to trust tls_cert, written to the RC file as "
                  "OS_CACERT. Empty: tls_cert itself when it is self-signed, else none (a public CA)."},
    )

    def inline_limit(self) -> int:
        """``inline_max`` resolved: -1 is 65536, over PostgreSQL and SQLite alike."""
        return self.inline_max if self.inline_max >= 0 else INLINE_MAX_DEFAULT

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"setting 'workers': cannot use {self.workers} (a number of processes, or auto)")
        if self.workers == 0:  # auto: resolved here, so every reader sees the number that runs
            object.__setattr__(self, "workers", cpu_cores())
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("settings 'tls_cert' and 'tls_key': give both or neither")
        if self.meta_url and not self.meta_url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"setting 'meta_url': cannot use {self.meta_url!r} (empty for SQLite in the data "
                             "dir, or postgresql://user@host:port/db)")
        if not -1 <= self.inline_max <= INLINE_MAX_LIMIT:
            raise ValueError(f"setting 'inline_max': cannot use {self.inline_max} (0 to {INLINE_MAX_LIMIT} "
                             "bytes, or -1 for the default)")
        parse_min_free(self.min_free_space)  # refuse a malformed value when settings are loaded
        if self.blob_url:
            check_blob_url(self.blob_url)
        self.policies()  # and malformed storage policies
        if self.storage_url_form not in ("allas", "swift"):
            raise ValueError(f"setting 'storage_url_form': cannot use {self.storage_url_form!r} (allas or swift)")
        if bool(self.s3_access_key) != bool(self.s3_secret_key):
            raise ValueError("settings 's3_access_key' and 's3_secret_key' go together: give both or neither")
        if self.s3_access_key and not (3 <= len(self.s3_access_key) <= 128 and self.s3_access_key.isascii()
                                       and self.s3_access_key.isalnum()):
            raise ValueError("setting 's3_access_key': 3 to 128 ASCII letters and digits")
        if self.s3_secret_key and not (8 <= len(self.s3_secret_key) <= 128 and self.s3_secret_key.isascii()
                                       and self.s3_secret_key.isprintable() and " " not in self.s3_secret_key):
            raise ValueError("setting 's3_secret_key': 8 to 128 printable ASCII characters, no spaces")
        if self.admin_password and (self.admin_password.startswith("-") or not self.admin_password.isprintable()):
            raise ValueError("setting 'admin_password': printable, and not starting with '-' "
                             "(swift -K and openstack --os-password would read it as an option)")
        for name in ("port", "s3_port", "console_port", "metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"setting {name!r}: {getattr(self, name)} is not a TCP port (0 to 65535)")
        if not 1024**2 <= self.console_segment_size <= 5 * 1024**3:
            raise ValueError(f"setting 'console_segment_size': {self.console_segment_size} is not between 1 MiB "
                             "(1048576) and 5 GiB (5368709120)")
        if self.bucket_namespace not in BUCKET_NAMESPACES:
            raise ValueError(f"setting 'bucket_namespace': cannot use {self.bucket_namespace!r} "
                             f"(one of {', '.join(BUCKET_NAMESPACES)})")

    def policies(self) -> list[PolicySpec]:
        """``storage_policies`` parsed and checked (ValueError names the problem); the
        default policy is the one with ``default`` set."""
        return parse_policies(self.storage_policies, self.default_storage_policy, self.data_path)

    def min_free(self) -> tuple[int, float]:
        """``min_free_space`` as (bytes, fraction of the filesystem)."""
        return parse_min_free(self.min_free_space)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def console_url(self) -> str:
        """The console's URL, as the banner prints it ("" when it is off)."""
        if not self.console_port:
            return ""
        return f"{self.scheme}://{self._url_host()}:{self.console_port}"

    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"{self.scheme}://{self._url_host()}:{self.port}"

    def _url_host(self) -> str:
        """The listening host as a URL's host: loopback for a wildcard, IPv6 bracketed."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def cacert(self) -> str:
        """The CA file clients should trust (the RC file's OS_CACERT): ``tls_ca``, else
        ``tls_cert`` when it is self-signed, else none."""
        if self.tls_ca:
            return str(Path(self.tls_ca).absolute())
        if not self.tls_cert:
            return ""
        try:
            from cryptography import x509

            cert = x509.load_pem_x509_certificate(Path(self.tls_cert).read_bytes())
        except (OSError, ValueError):
            return ""
        return str(Path(self.tls_cert).absolute()) if cert.issuer == cert.subject else ""


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A storage policy: its name and the directory under which its blobs live."""

    name: str
    root: Path  # the blob root (the data dir itself for a policy without a path)
    default: bool = False
    in_data_dir: bool = True  # root is the data dir: blob ids without a policy prefix
    url: str = ""  # a rados:// URL: the policy's bytes are in that pool, not under root


def parse_blob_url(url: str) -> dict[str, str]:
    """``rados://<pool>?conf=/etc/ceph/ceph.conf&id=<client>&namespace=<ns>`` → its parts
    (pool, conf, client, namespace; ValueError naming what is wrong)."""
    u = urlsplit(url)
    if u.scheme != "rados" or not u.netloc or u.path not in ("", "/"):
        raise ValueError(f"cannot use {url!r}: expected rados://<pool>?conf=<ceph.conf>&id=<client>")
    q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
    unknown = set(q) - {"conf", "id", "namespace"}
    if unknown:
        raise ValueError(f"cannot use {url!r}: unknown parameter(s) {', '.join(sorted(unknown))} "
                         "(conf, id, namespace)")
    return {"pool": u.netloc, "conf": q.get("conf", ""), "client": q.get("id", "") or "admin",
            "namespace": q.get("namespace", "")}


# inline_max's default, over PostgreSQL and SQLite. On one node an inline PUT waits for
# one fsync (SQLite's group commit) instead of three (the blob file, its directory, the
# commit): 1.3-2.8x the small PUTs per second, the more the dearer fsyncs are
# (docs/benchmarks.md, sessions 11 and 16)
INLINE_MAX_DEFAULT = 64 * 1024
INLINE_MAX_LIMIT = 1024 * 1024  # the largest inline_max: an inline blob is read and written whole


def check_blob_url(url: str, what: str = "blob_url") -> str:
    """A ``rados://`` URL checked (ValueError naming the setting and the problem)."""
    try:
        parse_blob_url(url)
    except ValueError as exc:
        raise ValueError(f"setting {what!r}: {exc}") from None
    return url


_POLICY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def parse_policies(spec: str, default: str, data_dir: Path) -> list[PolicySpec]:
    """``"gold,silver=silver-disk,/mnt/archive"``-style lists: NAME[=PATH], comma-separated.
    Names as Swift's (letters, digits, '-'; unique, case-insensitively); paths relative to
    the data dir; no two policies on one directory."""
    out: list[PolicySpec] = []
    seen: dict[str, str] = {}
    roots: dict[Path, str] = {}
    urls: dict[str, str] = {}
    base = data_dir.absolute()
    for item in str(spec).split(","):
        item = item.strip()
        if not item:
            continue
        name, _, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not name or not set(name) <= _POLICY_CHARS:
            raise ValueError(f"setting 'storage_policies': invalid policy name {name!r} (letters, digits "
                             "and '-' only)")
        if name.upper() in seen:
            raise ValueError(f"setting 'storage_policies': policy {name!r} named twice")
        seen[name.upper()] = name
        if path.startswith("rados://"):  # a pool of its own (lampi.store.blob.rados)
            check_blob_url(path, "storage_policies")
            if path in urls:
                raise ValueError(f"setting 'storage_policies': policies {urls[path]!r} and {name!r} share {path}")
            urls[path] = name
            out.append(PolicySpec(name, base / ".rados" / name, in_data_dir=False, url=path))
            continue
        root = (base / path).absolute() if path else base
        if root in roots:
            raise ValueError(f"setting 'storage_policies': policies {roots[root]!r} and {name!r} share the "
                             f"directory {root}")
        roots[root] = name
        out.append(PolicySpec(name, root, in_data_dir=root == base))
    if not out:
        raise ValueError("setting 'storage_policies': at least one policy is needed")
    for p in out:  # a root inside another's blob or temp tree would be taken for its files
        for q in out:
            if p is not q and not p.url and not q.url and any(p.root.is_relative_to(q.root / d) for d in ("blobs", "tmp")):
                raise ValueError(f"setting 'storage_policies': the directory of {p.name!r} ({p.root}) is "
                                 f"inside the blobs of {q.name!r}")
    want = default.strip() if default else out[0].name
    if want.upper() not in seen:
        raise ValueError(f"setting 'default_storage_policy': {want!r} is not one of the storage policies "
                         f"({', '.join(p.name for p in out)})")
    return [dataclasses.replace(p, default=p.name.upper() == want.upper()) for p in out]


def _policy_tables(tables: Any, where: str) -> tuple[str, str]:
    """TOML ``[[storage_policy]]`` tables (name, path, default) → (storage_policies,
    default_storage_policy)."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError(f"{where}: storage_policy must be [[storage_policy]] tables")
    items, default = [], ""
    for t in tables:
        unknown = set(t) - {"name", "path", "default"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) in [[storage_policy]]: {', '.join(sorted(unknown))}")
        name, path = t.get("name"), t.get("path", "")
        if not isinstance(name, str) or not isinstance(path, str) or "," in name + path or "=" in name:
            raise ValueError(f"{where}: [[storage_policy]] needs a text name (and path)")
        items.append(f"{name}={path}" if path else name)
        if t.get("default") is True:
            if default:
                raise ValueError(f"{where}: more than one [[storage_policy]] is the default")
            default = name
        elif t.get("default") not in (None, False):
            raise ValueError(f"{where}: [[storage_policy]] default must be true or false")
    return ",".join(items), default


ENV_PREFIX = "LAMPI_"
BUCKET_NAMESPACES = ("global", "project")

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_min_free(text: str) -> tuple[int, float]:
    """``"1%"`` → (0, 0.01); ``"512M"``, ``"512MiB"``, ``"536870912"`` → (536870912, 0.0)."""
    t = str(text).strip().upper().replace(" ", "")
    try:
        if t.endswith("%"):
            pct = float(t[:-1])
            if not 0 <= pct < 100:
                raise ValueError
            return 0, pct / 100
        t = t.removesuffix("B").removesuffix("I")
        unit = t[-1:] if t[-1:] in _UNITS else ""
        n = float(t[: len(t) - len(unit)])
        if n < 0 or n != n:
            raise ValueError
        return int(n * _UNITS[unit]), 0.0
    except (ValueError, IndexError, OverflowError):
        raise ValueError(f"setting 'min_free_space': cannot use {text!r} (bytes such as 512M, or a "
                         "percentage below 100 such as 1%)") from None


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a container's
    cpuset), else the machine's count: what ``workers = auto`` starts."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _coerce(name: str, kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if name == "workers" and isinstance(value, str) and value.strip().lower() == "auto":
        return 0
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"setting {name!r}: cannot use {value!r} (true or false)")
    typ = kind if isinstance(kind, type) else {"int": int, "float": float, "str": str}.get(str(kind), str)
    # Text (env, flags, quoted TOML) is converted; other TOML values must already have
    # the setting's type: int(True) or int(80.5) would silently give 1 and 80.
    ok = isinstance(value, str) or (
        not isinstance(value, bool)
        and (isinstance(value, typ) or (typ is float and isinstance(value, int)))
    )
    try:
        if not ok:
            raise TypeError(f"expected {typ.__name__}, got {type(value).__name__}")
        return typ(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name!r}: cannot use {value!r} ({exc})") from None


def load_settings(
    overrides: dict[str, Any] | None = None,
    config_file: str | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build the settings from defaults, TOML, env and explicit overrides (flags)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG")
    known = {f.name: f for f in fields(Settings)}
    if config_file:
        with open(config_file, "rb") as fh:
            data = tomllib.load(fh)
        data = data.get("lampi", data)
        for key, value in data.items():
            key = key.replace("-", "_")
            if key == "storage_policy":  # [[storage_policy]] tables
                values["storage_policies"], default = _policy_tables(value, config_file)
                if default:
                    values["default_storage_policy"] = default
                continue
            if key not in known:
                raise ValueError(f"{config_file}: unknown setting {key!r}")
            values[key] = _coerce(key, known[key].type, value)
    for name, f in known.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = _coerce(name, f.type, raw)
    for name, value in (overrides or {}).items():
        if name not in known:
            raise ValueError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _coerce(name, known[name].type, value)
    return dataclasses.replace(Settings(), **values)


def settings_help() -> list[tuple[str, str, Any]]:
    """(name, help, default) for docs and ``lampi --help``."""
    return [(f.name, f.metadata.get("help", ""), f.default) for f in fields(Settings)]
