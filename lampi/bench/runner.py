"""Phases, run on one or more targets, alternating, into one result document."""

from __future__ import annotations

import asyncio
import html
import json
import re
import urllib.parse
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lampi.bench import rss as rssmod
from lampi.bench.auth import Credentials
from lampi.bench.load import S3_MAX_KEYS, ChunkResult, PhaseSpec, run_phase, session
from lampi.bench.s3sign import Signer
from lampi.bench.util import MB, BenchError, percentile

MiB = 1024 * 1024
SMALL_KINDS = ("put", "get", "head", "delete")


@dataclass
class BenchConfig:
    objects: int = 5000
    object_size: int = 4096
    concurrency: list[int] = field(default_factory=lambda: [16, 64])
    list_objects: int = 10000
    list_page: int = 10000
    list_repeats: int = 5
    large_size: int = 1024**3
    large_count: int = 1
    phases: list[str] = field(default_factory=lambda: ["small", "list", "large"])
    client_procs: int = 1
    rounds: int = 1  # passes of the small-object phases, each on new objects, pooled
    fill_concurrency: int = 32
    cleanup: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Target:
    name: str
    creds: Credentials
    pids: list[int] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    phase: str  # small-put ... large-get; setup steps start with "setup-"
    kind: str
    container: str
    count: int
    size: int = 0
    concurrency: int = 1
    procs: int = 1
    timed: bool = True
    list_expect: int = 0
    label: str = ""
    round: int = 0  # which pass of the small-object phases (BenchConfig.rounds)


def plan(cfg: BenchConfig, run_id: str) -> tuple[list[Step], list[str]]:
    """The steps of a run, and the containers they use."""
    steps: list[Step] = []
    containers: list[str] = []
    if "small" in cfg.phases:
        rounds = f" ×{cfg.rounds} rounds" if cfg.rounds > 1 else ""
        for r in range(cfg.rounds):
            for c in cfg.concurrency:
                cont = f"lampi-bench-{run_id}-small-c{c}" + (f"-r{r}" if cfg.rounds > 1 else "")
                containers.append(cont)
                for kind in SMALL_KINDS:
                    steps.append(Step(f"small-{kind}", kind, cont, cfg.objects, cfg.object_size, c, cfg.client_procs,
                                      label=f"{kind.upper()} {cfg.objects}×{_sz(cfg.object_size)} c{c}{rounds}",
                                      round=r))
    if "list" in cfg.phases:
        cont = f"lampi-bench-{run_id}-list"
        containers.append(cont)
        steps.append(Step("setup-list-fill", "put", cont, cfg.list_objects, 0, cfg.fill_concurrency,
                          cfg.client_procs, timed=False, label=f"fill {cfg.list_objects} objects"))
        steps.append(Step("list", "list", cont, cfg.list_repeats, list_expect=cfg.list_objects,
                          label=f"full listing of {cfg.list_objects} ×{cfg.list_repeats}"))
    if "large" in cfg.phases:
        cont = f"lampi-bench-{run_id}-large"
        containers.append(cont)
        steps.append(Step("large-put", "put_large", cont, cfg.large_count, cfg.large_size,
                          label=f"PUT {cfg.large_count}×{_sz(cfg.large_size)}"))
        steps.append(Step("setup-large-head", "head", cont, cfg.large_count, cfg.large_size, timed=False,
                          label="HEAD (verify size)"))
        steps.append(Step("large-get", "get_large", cont, cfg.large_count, cfg.large_size,
                          label=f"GET {cfg.large_count}×{_sz(cfg.large_size)}"))
    return steps, containers


def _sz(n: int) -> str:
    from lampi.bench.util import human_size

    return human_size(n).replace(" ", "")


def summarize(step: Step, target: str, res: ChunkResult, rss_start: int, rss_peak: int,
              cpu: float | None = None) -> dict[str, Any]:
    secs = max(res.t1 - res.t0, 1e-9)
    lat = sorted(res.latencies)
    d: dict[str, Any] = {
        "phase": step.phase, "target": target, "label": step.label, "concurrency": step.concurrency,
        "count": step.count, "size": step.size, "ops": res.ops, "errors": res.errors,
        "seconds": round(secs, 3), "ops_per_s": round(res.ops / secs, 1),
        "mb_per_s": round(res.bytes / secs / MB, 1),
        "p50_ms": round(percentile(lat, 0.5) * 1000, 2) if lat else None,
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2) if lat else None,
    }
    if step.kind == "list":
        d["objects_per_s"] = round(step.list_expect * res.ops / secs, 1)
    if rss_start:
        d["rss_start_mib"] = round(rss_start / MiB, 1)
        d["rss_peak_mib"] = round(rss_peak / MiB, 1)
    if cpu is not None and res.ops:
        # the server's CPU per operation (its processes' user+system time during the
        # phase): comparable between targets even when other work loads the machine
        d["server_cpu_ms_per_op"] = round(cpu / res.ops * 1000, 4)
    if res.error_samples:
        d["error_samples"] = res.error_samples
    return d


def bucket(t: Target, container: str) -> str:
    """The container a target uses: S3 targets get their own (``-s3``), so a run on
    lampi's Swift and S3 APIs in the same project never shares objects."""
    return f"{container}-s3" if t.creds.api == "s3" else container


async def _request(sess: Any, method: str, url: str, creds: Credentials, params: dict[str, str] | None = None,
                   **kw: Any) -> tuple[int, bytes]:
    if creds.api == "s3":
        headers = Signer(creds.access, creds.secret, creds.region).headers(method, url, params)
    else:
        headers = {"X-Auth-Token": creds.token}
    async with sess.request(method, url, headers=headers, params=params, **kw) as resp:
        return resp.status, await resp.read()


async def _names(sess: Any, base: str, creds: Credentials) -> tuple[int, list[str]]:
    """Up to a page of object names in the container at ``base``."""
    if creds.api == "s3":
        status, body = await _request(sess, "GET", base, creds, {"list-type": "2", "max-keys": str(S3_MAX_KEYS)})
        return status, [html.unescape(k.decode()) for k in re.findall(rb"<Key>([^<]*)</Key>", body)]
    status, body = await _request(sess, "GET", base, creds, {"format": "json", "limit": "10000"})
    return status, [o["name"] for o in json.loads(body)] if status == 200 and body else []


async def create_containers(t: Target, containers: list[str]) -> None:
    async with session(4) as sess:
        for c in containers:
            c = bucket(t, c)
            status, body = await _request(sess, "PUT", f"{t.creds.storage_url}/{urllib.parse.quote(c)}", t.creds)
            if status not in (200, 201, 202):
                raise BenchError(f"{t.name}: PUT container {c}: {status} {body[:200].decode(errors='replace')}")


async def cleanup(t: Target, containers: list[str], concurrency: int = 16) -> int:
    """Delete every object in ``containers``, then the containers; returns failures."""
    failures = 0
    async with session(concurrency) as sess:
        for c in containers:
            base = f"{t.creds.storage_url}/{urllib.parse.quote(bucket(t, c))}"
            while True:
                status, names = await _names(sess, base, t.creds)
                if not names:
                    break
                sem = asyncio.Semaphore(concurrency)

                async def rm(n: str) -> int:
                    async with sem:
                        return (await _request(sess, "DELETE", f"{base}/{urllib.parse.quote(n)}", t.creds))[0]

                codes = await asyncio.gather(*(rm(n) for n in names))
                bad = sum(1 for s in codes if s not in (204, 404))
                failures += bad
                if bad:
                    break
            status, _ = await _request(sess, "DELETE", base, t.creds)
            failures += status not in (204, 404)
    return failures


def _sequential(a: ChunkResult, b: ChunkResult) -> ChunkResult:
    """Passes of a phase run one after the other, as one result: their times add up
    (the pauses between them are not counted)."""
    return ChunkResult(a.ops + b.ops, a.errors + b.errors, a.bytes + b.bytes, 0.0,
                       (a.t1 - a.t0) + (b.t1 - b.t0), a.latencies + b.latencies,
                       a.error_samples + b.error_samples)


Measured = tuple[ChunkResult, int, int, float]  # a phase's result, RSS at its start and peak, server CPU s


def _pool(earlier: Measured, later: Measured) -> Measured:
    """Two passes of one phase on one target as one: results run one after the other
    (``_sequential``), the first's starting RSS, the higher peak, the CPU of both."""
    return (_sequential(earlier[0], later[0]), earlier[1], max(earlier[2], later[2]), earlier[3] + later[3])


async def run(cfg: BenchConfig, targets: list[Target], progress: Any = None) -> dict[str, Any]:
    """Run every step on every target, alternating which target goes first.

    With ``cfg.rounds`` > 1 the small-object phases run that many times, each round on
    new objects with the targets' order rotated (every target goes first in turn), and
    each phase's rounds are pooled into one result: ops and time add up. One pass of a
    small phase lasts a second or two here, so one target's pass could meet a
    background burst (PostgreSQL's autovacuum of the rows just written, Ceph's
    compaction after RGW's writes) that another's missed."""
    run_id = uuid.uuid4().hex[:8]
    steps, containers = plan(cfg, run_id)
    results: list[dict[str, Any]] = []
    setup_errors: list[str] = []
    carried: dict[tuple[str, int, str], Measured] = {}  # earlier rounds' passes
    for t in targets:
        await create_containers(t, containers)
    try:
        for i, step in enumerate(steps):
            turn = step.round % len(targets)
            order = targets[turn:] + targets[:turn]
            if i % 2:
                order.reverse()
            large = step.kind in ("put_large", "get_large")
            if large and len(targets) > 1:
                # Large objects: one pass per target count, the order rotated each time,
                # so every target runs once in every position; the passes are pooled.
                # On the project's VM a large PUT's speed depended on what ran just
                # before it (a host-side write cache still flushing the previous 5 GiB;
                # pages paged out after 60 s idle): in one fixed order the same target
                # measured 25-35% apart between positions.
                order = [t for k in range(len(order)) for t in order[k:] + order[:k]]
            pooled: dict[str, Measured] = {}
            for t in order:
                total = step.count * step.size if large else step.count
                task = progress.add_task(f"{t.name:<6} {step.label}", total=total) if progress else None

                def on_progress(n: int, task: Any = task) -> None:
                    if progress is not None:
                        progress.update(task, completed=n)

                c = t.creds
                spec = PhaseSpec(step.kind, c.storage_url, c.token, bucket(t, step.container), 0,
                                 step.count, step.size, step.concurrency, list_page=cfg.list_page,
                                 list_expect=step.list_expect, list_repeats=step.count,
                                 api=c.api, access=c.access, secret=c.secret, region=c.region,
                                 mirrors=c.mirrors)
                async with rssmod.Sampler(t.pids) as sampler:
                    res = await run_phase(spec, step.procs, on_progress)
                if progress is not None and not step.timed:
                    progress.remove_task(task)
                measured = (res, sampler.start, sampler.peak, sampler.cpu)
                if t.name in pooled:  # a later pass of a large step
                    measured = _pool(pooled[t.name], measured)
                pooled[t.name] = measured
            small = step.phase.startswith("small-")
            more_rounds = small and step.round < cfg.rounds - 1
            for t in targets:
                measured = pooled[t.name]
                key = (step.phase, step.concurrency, t.name)
                if key in carried:  # this phase's earlier rounds
                    measured = _pool(carried.pop(key), measured)
                if more_rounds:
                    carried[key] = measured
                    continue
                res, start, peak, cpu = measured
                if step.timed:
                    done = replace(step, count=step.count * cfg.rounds) if small else step
                    results.append(summarize(done, t.name, res, start, peak, cpu if t.pids else None))
                elif res.errors:
                    setup_errors.extend(f"{t.name} {step.phase}: {e}" for e in res.error_samples)
    finally:
        if cfg.cleanup:
            for t in targets:
                try:
                    if await cleanup(t, containers):
                        setup_errors.append(f"{t.name}: cleanup left objects or containers behind")
                except Exception as exc:  # noqa: BLE001 - report, never mask the run's own error
                    setup_errors.append(f"{t.name}: cleanup failed: {exc}")
    for t in targets:
        if t.pids:
            t.info["rss_hwm_sum_mib"] = round(rssmod.hwm(t.pids) / MiB, 1)
    return {"run_id": run_id, "phases": results, "setup_errors": setup_errors}
