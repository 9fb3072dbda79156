"""Prometheus metrics, aggregated across worker processes.

prometheus-client's multiprocess mode: every process writes its values into memory-mapped
files of its own (``<kind>_<pid>.db``) in a private directory made per server start
(``setup``, called by ``lampi serve`` before the workers fork; the directory is emptied
then and removed at exit), and a scrape (``render``) merges every process's files. A
worker that dies leaves its counters and histograms (they must not go backwards) and
loses its live gauges (``process_dead``: open connections), as the library's docs say.

Until ``setup`` runs (an app built in-process by a test, ``lampi bench``) nothing is
recorded: every ``note_*`` function is then a no-op costing one global read.

The hot path (``note_request``, once per request) only adds to plain per-process dicts;
``flush`` (a worker task every ``FLUSH_INTERVAL`` second, and before each scrape) moves
the sums into the shared files, so a scrape may miss the last second of the other
workers' requests.

Imports nothing from lampi (the bottom layer, as ``lampi.config`` and ``lampi.log``).
"""

from __future__ import annotations

import bisect
import glob
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# request latency buckets, seconds: small requests take ~1 ms, large transfers minutes
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   300.0)
FLUSH_INTERVAL = 1.0  # seconds a worker keeps request counts before writing them out (note_request)
STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

# metric names (docs/operations.md "Metrics", docs/grafana/lampi.json)
REQUESTS = "lampi_requests_total"
DURATION = "lampi_request_duration_seconds"
BYTES_IN = "lampi_received_bytes_total"
BYTES_OUT = "lampi_sent_bytes_total"
CONNECTIONS = "lampi_open_connections"
AUTH_FAILURES = "lampi_auth_failures_total"
BG_PASSES = "lampi_background_passes_total"
BG_ITEMS = "lampi_background_items_total"
ERRORS = "lampi_errors_total"
USAGE_BYTES = "lampi_project_bytes"
USAGE_OBJECTS = "lampi_project_objects"
USAGE_BUCKETS = "lampi_project_buckets"


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(REQUESTS, "Requests answered, by API (swift, s3, keystone, ...), operation "
                                "and status class", ["api", "operation", "status"])
        self.duration = Histogram(DURATION, "Time from the request's head to the handler's end (streamed "
                                  "bodies included), by API and operation", ["api", "operation"],
                                  buckets=LATENCY_BUCKETS)
        self.bytes_in = Counter(BYTES_IN, "Request body bytes received, by API", ["api"])
        self.bytes_out = Counter(BYTES_OUT, "Response body bytes sent, by API", ["api"])
        self.connections = Gauge(CONNECTIONS, "Client connections open (all workers)",
                                 multiprocess_mode="livesum")
        self.auth_failures = Counter(AUTH_FAILURES, "Requests refused for their credentials (a bad or "
                                     "expired token, password or S3 signature), by API", ["api"])
        self.bg_passes = Counter(BG_PASSES, "Background passes run by this server, by task (expirer, "
                                 "s3-lifecycle) and outcome (ok, failed)", ["task", "outcome"])
        self.bg_items = Counter(BG_ITEMS, "Objects and uploads the background passes reclaimed, by task",
                                ["task"])
        self.errors = Counter(ERRORS, "Errors by kind: enospc (a full disk, 507), missing_blob (a blob "
                              "gone from disk, 503), internal (an unexpected exception, 500)", ["kind"])
        self.children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # labelled series, by key
        self.by_api: dict[str, tuple[Any, Any]] = {}


_m: _Metrics | None = None
_dir: str | None = None


def setup(directory: str | None = None) -> str:
    """Turn metrics on in this process (and the processes it forks from now on): a new
    private directory (or ``directory``, emptied) for the multiprocess files. Returns it."""
    global _m, _dir
    if directory is None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        _remove_stale(base or tempfile.gettempdir())
        directory = tempfile.mkdtemp(prefix=f"lampi-metrics-{os.getpid()}-", dir=base)  # mode 0700
    else:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for f in glob.glob(os.path.join(directory, "*.db")):
            os.remove(f)
    os.environ[ENV] = directory
    from prometheus_client import values

    # prometheus-client picks the value class when it is first imported; it may have been
    # imported before the directory existed
    values.ValueClass = values.MultiProcessValue()
    _dir = directory
    _m = _Metrics()
    return directory


def _remove_stale(base: str) -> None:
    """Remove the directories of servers that were killed (SIGKILL: no clean-up ran): the
    ones whose server process (the pid in the name) is gone."""
    for path in glob.glob(os.path.join(base, "lampi-metrics-*-*")):
        try:
            pid = int(os.path.basename(path).split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):  # not ours, or another user's live server
            continue


def teardown() -> None:
    """Remove the directory ``setup`` made (at server exit)."""
    global _m, _dir
    if _dir is not None:
        from prometheus_client import values

        values.close_all_multiprocess_files()
        values.ValueClass = values.MutexValue
        if os.environ.get(ENV) == _dir:
            del os.environ[ENV]
        shutil.rmtree(_dir, ignore_errors=True)
    _m = None
    _dir = None
    _pending.clear()
    _pending_io.clear()


def enabled() -> bool:
    return _m is not None


def process_dead(pid: int) -> None:
    """A worker died: its live gauges (open connections) no longer count."""
    if _dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, _dir)


def note_request(api: str, operation: str, status: int, duration: float, bytes_in: int, bytes_out: int) -> None:
    """Count one request: in plain per-process dicts (well under a microsecond), moved
    into the shared files by ``flush`` (every second, and before a scrape). A
    prometheus-client ``inc`` takes a lock and writes a memory-mapped file: 5-9 us each,
    five of them per request, measured on the 2-core test machine."""
    if _m is None:
        return
    key = (api, operation, status)
    row = _pending.get(key)
    if row is None:
        row = _pending[key] = [0, 0.0, [0] * (len(LATENCY_BUCKETS) + 1)]
    row[0] += 1
    row[1] += duration
    row[2][bisect.bisect_left(LATENCY_BUCKETS, duration)] += 1  # le: the first bound >= duration
    io = _pending_io.get(api)
    if io is None:
        io = _pending_io[api] = [0, 0]
    io[0] += bytes_in
    io[1] += bytes_out


_pending: dict[tuple[str, str, int], list[Any]] = {}
_pending_io: dict[str, list[int]] = {}


def flush() -> None:
    """Move the requests counted since the last flush into the shared files."""
    global _pending, _pending_io
    m = _m
    if m is None or not (_pending or _pending_io):
        return
    pending, io, _pending, _pending_io = _pending, _pending_io, {}, {}
    for (api, operation, status), (count, total, buckets) in pending.items():
        pair = m.children.get((api, operation, status))
        if pair is None:
            pair = m.children[(api, operation, status)] = (
                m.requests.labels(api, operation, STATUS_CLASS.get(status // 100, "other")),
                m.duration.labels(api, operation))
        pair[0].inc(count)
        hist = pair[1]
        # what Histogram.observe does, for many observations at once (its per-bucket
        # values; the exposition makes them cumulative)
        hist._sum.inc(total)
        for i, n in enumerate(buckets):
            if n:
                hist._buckets[i].inc(n)
    for api, (received, sent) in io.items():
        pair = m.by_api.get(api)
        if pair is None:
            pair = m.by_api[api] = (m.bytes_in.labels(api), m.bytes_out.labels(api))
        if received:
            pair[0].inc(received)
        if sent:
            pair[1].inc(sent)


async def flush_forever(interval: float = FLUSH_INTERVAL) -> None:
    """Flush every ``interval`` seconds (a worker's task), and once more when cancelled."""
    import asyncio

    try:
        while True:
            await asyncio.sleep(interval)
            flush()
    finally:
        flush()


def note_connection(delta: int) -> None:
    m = _m
    if m is not None:
        m.connections.inc(delta)


def note_auth_failure(api: str) -> None:
    m = _m
    if m is not None:
        m.auth_failures.labels(api).inc()


def note_error(kind: str) -> None:
    m = _m
    if m is not None:
        m.errors.labels(kind).inc()


def note_pass(task: str, ok: bool, items: int = 0) -> None:
    m = _m
    if m is not None:
        m.bg_passes.labels(task, "ok" if ok else "failed").inc()
        if items:
            m.bg_items.labels(task).inc(items)


def render(usage: Iterable[tuple[str, int, int, int]] | None = None) -> bytes:
    """The text exposition of every process's values; with ``usage`` (project id, bytes,
    objects, buckets), the per-project gauges too."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess
    from prometheus_client.core import GaugeMetricFamily

    flush()  # this process's latest; the other workers' are at most FLUSH_INTERVAL old
    registry = CollectorRegistry()
    if _dir is not None:
        multiprocess.MultiProcessCollector(registry, _dir)
    if usage is not None:
        rows = list(usage)

        class _Usage:
            def collect(self) -> Iterable[Any]:
                fams = [GaugeMetricFamily(USAGE_BYTES, "Bytes stored by the project (all versions)", labels=["project"]),
                        GaugeMetricFamily(USAGE_OBJECTS, "Objects of the project", labels=["project"]),
                        GaugeMetricFamily(USAGE_BUCKETS, "Containers (buckets) of the project", labels=["project"])]
                for project, nbytes, objects, buckets in rows:
                    fams[0].add_metric([project], nbytes)
                    fams[1].add_metric([project], objects)
                    fams[2].add_metric([project], buckets)
                return fams

        registry.register(_Usage())
    return generate_latest(registry)
