"""``lampi bench`` end to end: limits, servers, phases, report, teardown."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lampi import __version__
from lampi.bench import limits as limitsmod
from lampi.bench import report
from lampi.bench.auth import resolve, s3_credentials
from lampi.bench.runner import BenchConfig, Target, run
from lampi.bench.scenarios import Endpoint, ScenarioSizes, run_scenarios, scenario_ratios
from lampi.bench.servers import CephNode, ClusterNode, LampiNode, PGNode, RGWNode, SwiftNode, leftovers
from lampi.bench.util import BenchError, loadavg, machine_info, run_loop

MiB = 1024 * 1024


COMPARE = ("swift", "rgw")


def parse_compare(text: str | None) -> list[str]:
    """``swift``, ``rgw`` or ``swift,rgw`` as a list (empty for none)."""
    names = [n.strip().lower() for n in (text or "").split(",") if n.strip()]
    bad = [n for n in names if n not in COMPARE]
    if bad:
        raise BenchError(f"--compare: choose from {', '.join(COMPARE)} (comma-separated), not {', '.join(bad)!r}")
    return list(dict.fromkeys(names))


def parse_cluster(text: str | None) -> list[int]:
    """``1``, ``2`` or ``1,2``: the gateway counts of the clusters to start."""
    try:
        counts = [int(n) for n in (text or "").split(",") if n.strip()]
    except ValueError:
        counts = [0]
    if any(n not in (1, 2) for n in counts):
        raise BenchError(f"--cluster: gateway counts 1 and/or 2, comma-separated (e.g. 1,2), not {text!r}")
    return sorted(set(counts))


def bench(cfg: BenchConfig, *, compare: str | None = None, cluster: str | None = None, with_limits: bool = False,
          limits_size: int | None = None, limits_dir: str | None = None, workers: int | None = None,
          work_dir: str | None = None, keep: bool = False, cache_dir: str | None = None,
          server_pids: tuple[int, ...] = (), auth: str | None = None, user: str | None = None,
          key: str | None = None, storage_url: str | None = None, token: str | None = None,
          json_file: str | None = None, markdown_file: str | None = None, show_progress: bool = True, quiet: bool = False,
          s3: bool = False, s3_endpoint: str | None = None, s3_access_key: str | None = None,
          s3_secret_key: str | None = None, s3_region: str | None = None,
          scenarios: list[str] | None = None, scenario_sizes: ScenarioSizes | None = None) -> dict[str, Any]:
    err = Console(stderr=True)
    # the terminal's width (or COLUMNS when set); files and pipes get full rows
    out = Console() if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit() else Console(width=160)
    systems = parse_compare(compare)
    clusters = parse_cluster(cluster)
    scenarios = scenarios or []
    # lampi (and the compared servers) started here; --s3 alone: lampi's S3 API beside its Swift
    local = bool(systems or scenarios or clusters or s3)
    endpoint = [flag for flag, given in (("-A", auth), ("--storage-url", storage_url), ("--token", token),
                                         ("--s3-endpoint", s3_endpoint), ("--server-pid", server_pids)) if given]
    if local and endpoint:
        raise BenchError(f"{', '.join(endpoint)}: --compare, --cluster, --scenario and --s3 benchmark servers "
                         "started here, not an endpoint")
    work: Path | None = None
    if local:
        base = Path(work_dir) if work_dir else None
        if base:
            base.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="lampi-bench-", dir=base))
        cfg.cleanup = False  # the servers' data is thrown away with the work dir
    doc: dict[str, Any] = {
        "lampi_version": __version__, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["lampi", "bench", *sys.argv[2:]]) if sys.argv[1:2] == ["bench"] else None,
        "machine": machine_info(work or limits_dir or tempfile.gettempdir()), "config": cfg.as_dict(),
    }
    if scenarios:
        doc["scenario_sizes"] = (scenario_sizes or ScenarioSizes()).as_dict()
    nodes: list[Any] = []
    cluster_nodes: list[ClusterNode] = []
    # SIGTERM (a CI job's timeout, `kill`) stops the servers started here as Ctrl-C does:
    # they run in sessions of their own and would outlive this process otherwise
    old_term = signal.signal(signal.SIGTERM, _terminated) if local else None
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=not (show_progress and err.is_terminal), transient=False)
    try:
        if with_limits and limits_size is None:  # like for like: the large objects' size (see --limits-size)
            limits_size = cfg.large_size if "large" in cfg.phases else 1024**3
        if work is not None:
            check_room(work, disk_needed(cfg, systems, clusters, s3, scenarios, scenario_sizes or ScenarioSizes(),
                                         limits_size if with_limits and not limits_dir else 0))
        if with_limits:
            assert limits_size is not None
            d = limits_dir or (str(work) if work else tempfile.gettempdir())
            err.print(f"measuring machine limits in {d} ({limits_size // MiB} MiB) ...")
            doc["limits"] = limitsmod.measure(d, limits_size)
        endpoints: list[Endpoint] = []
        if local:
            assert work is not None
            n = workers or os.cpu_count() or 1
            cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "lampi-bench"
            names = {"swift": f"single-node Swift ({n} workers per server)",
                     "rgw": "single-node Ceph (one monitor, one BlueStore OSD) + radosgw"}
            names.update({f"cluster{g}": f"lampi as {g} gateway(s) over PostgreSQL + RADOS" for g in clusters})
            what = [names[s] for s in systems] + [f"lampi ({n} workers)"] + [names[f"cluster{g}"] for g in clusters]
            err.print(f"starting {', '.join(what)} in {work} ...")
            started: dict[str, Any] = {}
            for name in systems:
                node = SwiftNode(work, n, cache) if name == "swift" else RGWNode(work, n, _rgw_space(cfg, scenario_sizes))
                nodes.append(node)
                node.start()
                started[name] = node
            lampi = LampiNode(work, n)
            nodes.append(lampi)
            lampi.start()
            targets = [Target("lampi", lampi.credentials(), lampi.pids)]
            cluster_nodes = _start_clusters(clusters, work, n, started, nodes, cfg, scenario_sizes)
            if s3:  # the same lampi server through its S3 API (SigV4, an EC2 key pair of the same user)
                targets.append(Target("lampi-s3", lampi.s3_credentials(), lampi.pids))
            doc["servers"] = {"lampi": {"version": __version__, "workers": n, "startup_s": round(lampi.startup_s or 0, 3),
                                        "idle_rss_mib": round((lampi.idle_rss or 0) / MiB, 1),
                                        "idle_pss_mib": round((lampi.idle_pss or 0) / MiB, 1)}}
            for name, node in started.items():
                targets.append(Target(name, node.credentials(), node.pids))
                if s3 and name == "rgw":
                    targets.append(Target("rgw-s3", node.s3_credentials(), node.pids))
                doc["servers"][name] = {"version": node.version, "workers": n if name == "swift" else 1,
                                        "startup_s": round(node.startup_s or 0, 3),
                                        "idle_rss_mib": round((node.idle_rss or 0) / MiB, 1),
                                        "idle_pss_mib": round((node.idle_pss or 0) / MiB, 1),
                                        "note": SERVER_NOTES[name]}
            for node in cluster_nodes:  # the Swift API (issue 13's comparison with RGW)
                targets.append(Target(node.name, node.credentials(), node.pids))
                doc["servers"][node.name] = {"version": __version__, "gateways": node.gateways,
                                             "workers": node.per_gateway, "startup_s": round(node.startup_s or 0, 3),
                                             "idle_rss_mib": round((node.idle_rss or 0) / MiB, 1),
                                             "idle_pss_mib": round((node.idle_pss or 0) / MiB, 1),
                                             "note": f"{node.gateways} lampi gateway(s) x {node.per_gateway} "
                                                     f"worker(s) over PostgreSQL {node.pg.version} + Ceph RADOS"}
            if scenarios:
                endpoints = [Endpoint("lampi", targets[0].creds, lampi.s3_credentials())]
                endpoints += [Endpoint(name, node.credentials(), node.s3_credentials()) for name, node in started.items()]
        elif s3_endpoint:
            creds = s3_credentials(s3_endpoint, s3_access_key, s3_secret_key, s3_region)
            targets = [Target("target", creds, list(server_pids))]
            doc["target"] = {"storage_url": creds.storage_url, "auth": "s3"}
        else:
            creds = resolve(auth, user, key, storage_url, token)
            targets = [Target("target", creds, list(server_pids))]
            doc["target"] = {"storage_url": creds.storage_url, "auth": creds.method}
        if cfg.phases:
            with progress:
                doc.update(run_loop(run(cfg, targets, progress)))
        else:
            doc.update({"phases": [], "setup_errors": []})
        if scenarios:
            assert work is not None
            doc["scenarios"] = run_scenarios(scenarios, endpoints, scenario_sizes or ScenarioSizes(), work,
                                             say=err.print)
            doc["scenario_ratios"] = scenario_ratios(doc["scenarios"])
        for t in targets:
            if "rss_hwm_sum_mib" in t.info and not (local and t.name.endswith("-s3")):  # same server as without
                doc.setdefault("servers", {}).setdefault(t.name, {})["rss_hwm_sum_mib"] = t.info["rss_hwm_sum_mib"]
    finally:
        sessions: set[int] = set()
        for node in reversed(nodes):  # gateways before the PostgreSQL and Ceph under them
            node.stop()
            sessions |= node.sessions()
        for node in cluster_nodes:
            doc.setdefault("servers", {}).setdefault(node.name, {})["requests_per_gateway"] = node.requests
        if local:
            doc["leftover_processes"] = leftovers(sessions)
            if work is not None and not keep:
                shutil.rmtree(work, ignore_errors=True)
            signal.signal(signal.SIGTERM, old_term)
    doc["loadavg_end"] = loadavg()
    if "swift" in systems:
        doc["ratios"] = report.ratios(doc["phases"])
    if "rgw" in systems:
        doc["rgw_ratios"] = report.ratios(doc["phases"], "lampi", "rgw")
        if s3:
            doc["rgw_s3_ratios"] = report.ratios(doc["phases"], "lampi-s3", "rgw-s3")
    for g in clusters:
        if "rgw" in systems:
            doc[f"cluster{g}_rgw_ratios"] = report.ratios(doc["phases"], f"cluster{g}", "rgw")
        doc[f"cluster{g}_ratios"] = report.ratios(doc["phases"], f"cluster{g}", "lampi")
    if local and s3:
        doc["s3_ratios"] = report.ratios(doc["phases"], "lampi-s3", "lampi")
    doc["fractions"] = report.fractions(doc["phases"], doc.get("limits"))
    doc["targets"] = report.check_targets(doc)
    if json_file:
        Path(json_file).write_text(json.dumps(doc, indent=2) + "\n")
    if markdown_file:
        Path(markdown_file).write_text(report.markdown(doc))
    if not quiet:
        report.render(doc, out)
    return doc


def _terminated(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _start_clusters(counts: list[int], work: Path, workers: int, started: dict[str, Any], nodes: list[Any],
                    cfg: BenchConfig, sizes: ScenarioSizes | None) -> list[ClusterNode]:
    """PostgreSQL, the Ceph under the clusters (--compare rgw's if it runs, else one of
    their own) and a ClusterNode per gateway count, each appended to ``nodes`` once started."""
    if not counts:
        return []
    pg = PGNode(work)
    nodes.append(pg)
    pg.start()
    if "rgw" in started:
        ceph = started["rgw"].cluster
    else:
        own = CephNode(work, _rgw_space(cfg, sizes))
        nodes.append(own)
        own.start()
        ceph = own.cluster
    out = []
    for g in counts:
        node = ClusterNode(work, workers, g, pg, ceph)
        nodes.append(node)
        node.start()
        out.append(node)
    return out


SERVER_NOTES = {
    "swift": "proxy, account, container and object servers (each with workers) + memcached",
    "rgw": "radosgw (threads) + ceph-mon + ceph-osd (BlueStore on a sparse file)",
}


def disk_needed(cfg: BenchConfig, systems: list[str], clusters: list[int], s3: bool, scenarios: list[str],
                sizes: ScenarioSizes, limits_size: int | None) -> int:
    """About the most a run started here writes into its work dir, in bytes.

    Large objects: each target writes its object once per target in the run (the
    passes of lampi.bench.runner.run). lampi and Swift keep the last pass's (and the
    one being replaced); RGW frees a replaced object's space only in a later garbage
    collection, so its targets keep every pass. Scenarios: the source files, a
    download, and a copy on every server."""
    rgw_targets = (2 if s3 else 1) if "rgw" in systems else 0
    n_targets = (2 if s3 else 1) + ("swift" in systems) + rgw_targets + len(clusters)
    need = 0
    if "small" in cfg.phases:
        need += cfg.objects * max(cfg.object_size, 4096) * len(cfg.concurrency) * n_targets * cfg.rounds
    if "list" in cfg.phases:
        need += cfg.list_objects * max(cfg.object_size, 4096) * n_targets
    if "large" in cfg.phases:
        one = cfg.large_size * cfg.large_count
        need += one * rgw_targets * n_targets + one * (n_targets - rgw_targets + 1)
    data = _scenario_bytes(sizes)
    need += sum(data[name] for name in scenarios) * (2 + 1 + len(systems) + len(clusters))
    return need + (limits_size or 0)


def _scenario_bytes(sizes: ScenarioSizes) -> dict[str, int]:
    """What each scenario uploads (a file takes a 4 KiB block at least)."""
    return {"rclone": sizes.rclone_files * max(sizes.rclone_file_size, 4096),
            "swift-segments": sizes.segment_file_size,
            "aws-sync": sizes.sync_files * max(sizes.sync_file_size, 4096),
            "s3cmd-multipart": sizes.multipart_file_size}


def check_room(work: Path, need: int) -> None:
    """Refuse a run that would fill the work dir's filesystem. A full disk part-way
    through stalled it: lampi answered 507 and rclone kept retrying; the other servers
    fail in their own ways."""
    free = shutil.disk_usage(work).free
    if need > free:
        gib = 1024**3
        raise BenchError(f"this run writes up to {need / gib:.1f} GiB into {work.parent}, which has "
                         f"{free / gib:.1f} GiB free: choose smaller sizes (--large-size, --large-count, "
                         f"--segment-file-size, --multipart-file-size, ...) or a --work-dir with room")


def _rgw_space(cfg: BenchConfig, sizes: ScenarioSizes | None) -> int:
    """The OSD's sparse BlueStore file: room for every pass of the large objects and the
    scenarios' files (RGW frees deleted objects' space only in its later garbage
    collection), and 10 GiB for the rest."""
    need = 0
    if "large" in cfg.phases:  # one pass per target and position (up to 7 targets: 7 each, 2 RGW buckets;
        need += 16 * cfg.large_size * cfg.large_count  # lampi's clusters delete theirs at once)
    if sizes is not None:
        need += 2 * sum(_scenario_bytes(sizes).values())
    return need + 10 * 1024**3
