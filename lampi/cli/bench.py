"""``lampi bench``: measure a running server (and optionally OpenStack Swift beside it)."""

from __future__ import annotations

import sys
from typing import Any

import click


def _sizes(_ctx: Any, _param: Any, value: Any) -> Any:
    from lampi.bench.util import parse_size

    try:
        return parse_size(value) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--compare", default=None, metavar="swift|rgw|swift,rgw",
              help="Start lampi and, beside it, a single-node OpenStack Swift (installed from PyPI into a cache "
                   "venv) and/or a single-node Ceph RGW (Debian's radosgw, ceph-mon, ceph-osd), run every phase "
                   "on each, alternating, and print lampi's ratios to them.")
@click.option("--cluster", default=None, metavar="1|2|1,2",
              help="Also start lampi as this many gateways (comma-separated: one cluster per count) over a "
                   "throw-away PostgreSQL (durable, as PostgreSQL's defaults) and a one-node Ceph's RADOS (the "
                   "same Ceph as --compare rgw's), and run every phase on each (Swift API; with 2 gateways the "
                   "small-object connections are spread over both). The workers are split among a cluster's "
                   "gateways. Needs PostgreSQL (initdb), ceph-mon, ceph-osd and python3-rados.")
@click.option("--scenario", "scenario", default=None, metavar="NAMES",
              help="End-to-end scenarios with the real clients, comma-separated: rclone, swift-segments, "
                   "aws-sync, s3cmd-multipart, or all. lampi is started here (and the --compare servers); "
                   "the phases run too only when --phases is given.")
@click.option("--rclone-files", type=int, default=10000, show_default=True, help="rclone scenario: files.")
@click.option("--rclone-file-size", default="4KiB", show_default=True, callback=_sizes,
              help="rclone scenario: size of each file.")
@click.option("--segment-file-size", default="5GiB", show_default=True, callback=_sizes,
              help="swift-segments scenario: the file's size.")
@click.option("--segment-size", default="1GiB", show_default=True, callback=_sizes,
              help="swift-segments scenario: swift upload --segment-size.")
@click.option("--sync-files", type=int, default=1000, show_default=True, help="aws-sync scenario: files.")
@click.option("--sync-file-size", default="1MiB", show_default=True, callback=_sizes,
              help="aws-sync scenario: size of each file.")
@click.option("--multipart-file-size", default="2GiB", show_default=True, callback=_sizes,
              help="s3cmd-multipart scenario: the file's size.")
@click.option("--multipart-chunk-size", default="15MiB", show_default=True, callback=_sizes,
              help="s3cmd-multipart scenario: --multipart-chunk-size-mb (whole MiB, at least 5).")
@click.option("--limits", "with_limits", is_flag=True,
              help="Measure sequential write+fsync, 4 KiB write+fsync rate and loopback TCP throughput too.")
@click.option("-A", "--auth", default=None, help="v1 auth URL [env ST_AUTH], with -U/-K.")
@click.option("-U", "--user", default=None, help="v1 user, e.g. project:user [env ST_USER].")
@click.option("-K", "--key", default=None, help="v1 key (password) [env ST_KEY].")
@click.option("--storage-url", default=None, help="Storage URL, with --token [env OS_STORAGE_URL].")
@click.option("--token", default=None, help="Auth token [env OS_AUTH_TOKEN].")
@click.option("--s3-endpoint", default=None,
              help="Benchmark this S3 endpoint (path style, SigV4) instead of a Swift one.")
@click.option("--s3-access-key", default=None, help="S3 access key [env AWS_ACCESS_KEY_ID].")
@click.option("--s3-secret-key", default=None, help="S3 secret key [env AWS_SECRET_ACCESS_KEY].")
@click.option("--s3-region", default=None, help="SigV4 region [env AWS_DEFAULT_REGION; default us-east-1].")
@click.option("--s3", is_flag=True,
              help="Also run every phase on lampi's S3 API (an EC2 key pair is made) and report lampi "
                   "S3/Swift ratios; on its own, only lampi is started here (S3 beside its own Swift, "
                   "alternating with --rounds).")
@click.option("--objects", type=int, default=5000, show_default=True, help="Small objects per concurrency level.")
@click.option("--object-size", default="4KiB", show_default=True, callback=_sizes, help="Small object size.")
@click.option("--concurrency", default="16,64", show_default=True,
              help="Comma-separated concurrency levels for the small-object phases.")
@click.option("--list-objects", type=int, default=10000, show_default=True, help="Objects in the listed container.")
@click.option("--list-page", type=int, default=10000, show_default=True, help="limit= per listing request.")
@click.option("--list-repeats", type=int, default=5, show_default=True, help="Full listings to time.")
@click.option("--large-size", default="1GiB", show_default=True, callback=_sizes, help="Large object size.")
@click.option("--large-count", type=int, default=1, show_default=True, help="Large objects (sequential).")
@click.option("--phases", default="small,list,large", show_default=True, help="Which phase groups to run.")
@click.option("--client-procs", type=int, default=1, show_default=True,
              help="Client processes for the small-object phases (concurrency is split across them).")
@click.option("--rounds", type=int, default=1, show_default=True,
              help="Run the small-object phases this many times, each on new objects with the targets' "
                   "order rotated, and report each phase's rounds pooled (ops and time added up).")
@click.option("--limits-size", default=None, callback=_sizes,
              help="Bytes written / sent for the --limits measurements [default: the large object size "
                   "when the large phase runs, else 1GiB]: a file that fits in the page cache's dirty "
                   "limit writes faster than one that does not, so the sizes should match.")
@click.option("--limits-dir", default=None, help="Directory for the disk limits [default: the run's work dir or $TMPDIR].")
@click.option("--workers", type=int, default=None, help="--compare: workers per server [default: CPU count].")
@click.option("--work-dir", default=None, help="--compare: parent of the run's data dirs [default: $TMPDIR]; a run "
              "that would write more than its filesystem has free is refused before anything starts.")
@click.option("--keep", is_flag=True, help="--compare: keep the data dirs and logs.")
@click.option("--cache-dir", default=None, help="--compare: where Swift is installed [default ~/.cache/lampi-bench].")
@click.option("--server-pid", "server_pids", type=int, multiple=True,
              help="PID of the server under test (repeatable): its RSS (with children) is reported.")
@click.option("--json", "json_file", default=None, help="Also write the results as JSON to this file.")
@click.option("--markdown", "markdown_file", default=None, help="Also write the tables as Markdown to this file.")
@click.option("--no-progress", is_flag=True, help="No progress display.")
def bench(concurrency: str, phases: str, no_progress: bool, objects: int, object_size: int, list_objects: int,
          list_page: int, list_repeats: int, large_size: int, large_count: int, client_procs: int, rounds: int,
          scenario: str | None, rclone_files: int, rclone_file_size: int, segment_file_size: int,
          segment_size: int, sync_files: int, sync_file_size: int, multipart_file_size: int,
          multipart_chunk_size: int, **opts: Any) -> None:
    """Benchmark a Swift or S3 endpoint: small-object PUT/GET/HEAD/DELETE, listing, large objects.

    The endpoint comes from -A/-U/-K (v1 auth), --storage-url/--token, or the OS_*
    variables (Keystone v3, e.g. eval "$(lampi openrc)"); or --s3-endpoint with SigV4
    keys (--s3-access-key/--s3-secret-key or AWS_*). With --compare swift (or rgw, or
    swift,rgw), lampi and a local single-node Swift (Ceph RGW) are started, benchmarked
    side by side and stopped; --cluster 1,2 adds lampi as 1 and 2 gateways over
    PostgreSQL + RADOS; --s3 adds lampi's S3 API (alone: lampi started here, its S3
    beside its own Swift). --scenario times real clients (rclone, swift, aws, s3cmd)
    on the same servers. Exit status 1 when any request or scenario failed.
    """
    from lampi.bench.command import bench as run_bench
    from lampi.bench.runner import BenchConfig
    from lampi.bench.scenarios import SCENARIOS, ScenarioSizes
    from lampi.bench.util import BenchError

    ctx = click.get_current_context()
    scenarios: list[str] = []
    if scenario:
        scenarios = [n.strip() for n in scenario.split(",") if n.strip()]
        if scenarios == ["all"]:
            scenarios = list(SCENARIOS)
        unknown = [n for n in scenarios if n not in SCENARIOS]
        if unknown or not scenarios:
            raise click.BadParameter(f"choose from {', '.join(SCENARIOS)} or all (got {scenario!r})",
                                     param_hint="--scenario")
        if ctx.get_parameter_source("phases") is click.core.ParameterSource.DEFAULT:
            phases = ""  # scenarios only, unless phases are asked for
        if min(rclone_files, sync_files, rclone_file_size, sync_file_size, segment_file_size, segment_size,
               multipart_file_size, multipart_chunk_size) < 1:
            raise click.UsageError("scenario counts and sizes must be positive")

    try:
        levels = [int(c) for c in concurrency.split(",") if c.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of integers: {concurrency!r}", param_hint="--concurrency") from None
    groups = [p.strip() for p in phases.split(",") if p.strip()]
    bad = set(groups) - {"small", "list", "large"}
    if bad or not (groups or scenarios):
        raise click.BadParameter(f"choose from small, list, large (got {phases!r})", param_hint="--phases")
    if not levels or min(levels) < 1 or min(objects, list_objects, list_page, list_repeats, large_count, client_procs,
                                               rounds) < 1:
        raise click.UsageError("counts, sizes and concurrency levels must be positive")
    cfg = BenchConfig(objects=objects, object_size=object_size, concurrency=levels, list_objects=list_objects,
                      list_page=list_page, list_repeats=list_repeats, large_size=large_size,
                      large_count=large_count, phases=groups, client_procs=client_procs, rounds=rounds)
    try:
        doc = run_bench(cfg, show_progress=not no_progress, scenarios=scenarios,
                        scenario_sizes=ScenarioSizes(rclone_files, rclone_file_size, segment_file_size, segment_size,
                                                     sync_files, sync_file_size, multipart_file_size,
                                                     multipart_chunk_size), **opts)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    failed = sum(p["errors"] for p in doc["phases"]) + len(doc.get("setup_errors", []))
    sys.exit(1 if failed or doc.get("leftover_processes") else 0)
