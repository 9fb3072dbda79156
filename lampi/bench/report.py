"""Ratios, the performance targets (docs/benchmarks.md), and the tables.

The terminal tables fit the console's width: a table too wide for it is printed as
several narrower ones, each repeating the row's name, so no figure is cut short.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from lampi.bench.util import human_size

# phase -> lampi/Swift ratio required
RATIO_TARGETS = {"small-put": 2.0, "small-get": 3.0, "small-head": 3.0, "small-delete": 2.0, "list": 5.0,
                 "large-put": 1.5}
# phase -> lampi/Ceph RGW ratio required (issue 15): twice RGW on small objects and the
# listing, at least RGW on large objects
RGW_RATIO_TARGETS = {"small-put": 2.0, "small-get": 2.0, "small-head": 2.0, "small-delete": 2.0, "list": 2.0,
                     "large-put": 1.0, "large-get": 1.0}
LIMIT_FRACTION = 0.70
RSS_GROWTH_MIB = 64
HEALTHCHECK_S = 1.0
S3_WITHIN = 0.10  # lampi's S3 small-object figures within 10% of its Swift figures
S3_LIST_WITHIN = 0.15  # and its S3 listing within 15%

# (document key, numerator target, denominator target, table title, column names)
COMPARISONS = [
    ("ratios", "lampi", "swift", "lampi / Swift", ("lampi", "Swift")),
    ("rgw_ratios", "lampi", "rgw", "lampi / Ceph RGW (Swift API)", ("lampi", "RGW")),
    ("rgw_s3_ratios", "lampi-s3", "rgw-s3", "lampi S3 / Ceph RGW S3", ("lampi S3", "RGW S3")),
    ("s3_ratios", "lampi-s3", "lampi", "lampi S3 / lampi Swift", ("S3", "Swift")),
    *((f"cluster{g}_rgw_ratios", f"cluster{g}", "rgw",
       f"lampi, {g} gateway{'s' if g > 1 else ''} over PostgreSQL + RADOS / Ceph RGW (Swift API, same Ceph)",
       (f"lampi {g} gw", "RGW")) for g in (1, 2)),
    *((f"cluster{g}_ratios", f"cluster{g}", "lampi",
       f"lampi, {g} gateway{'s' if g > 1 else ''} over PostgreSQL + RADOS / lampi on one node (SQLite + files)",
       (f"{g} gw", "1 node")) for g in (1, 2)),
]
# phase -> what lampi over PostgreSQL + RADOS must reach against RGW on the same Ceph
# (issue 13): beat it on small objects and the listing, match it on large objects
# (taken as at least 90% of RGW's rate)
CLUSTER_RGW_TARGETS = {"small-put": 1.0, "small-get": 1.0, "small-head": 1.0, "small-delete": 1.0, "list": 1.0,
                       "large-put": 0.9, "large-get": 0.9}



def _seq_label(lim: dict[str, Any]) -> str:
    """``sequential write + fsync (5 GiB, median of 755 / 913 / 3,064 MB/s)``."""
    seq = lim["seq_write_fsync"]
    runs = seq.get("runs")
    size = f"{seq['bytes'] / 1024**3:g} GiB" if seq["bytes"] >= 1024**3 else f"{seq['bytes'] // 1024**2} MiB"
    if not runs:
        return f"sequential write + fsync ({size})"
    return f"sequential write + fsync ({size}, median of {' / '.join(f'{r:,.0f}' for r in runs)} MB/s)"

def metric(p: dict[str, Any]) -> tuple[str, float]:
    """The figure a phase is judged by: MB/s for large objects, listings/s or ops/s otherwise."""
    return ("mb_per_s", p["mb_per_s"]) if p["phase"].startswith("large") else ("ops_per_s", p["ops_per_s"])


def ratios(phases: list[dict[str, Any]], a: str = "lampi", b: str = "swift") -> list[dict[str, Any]]:
    by = {(p["phase"], p["concurrency"], p["target"]): p for p in phases}
    out = []
    for p in phases:
        if p["target"] != a or (p["phase"], p["concurrency"], b) not in by:
            continue
        q = by[(p["phase"], p["concurrency"], b)]
        unit, va = metric(p)
        _, vb = metric(q)
        out.append({"phase": p["phase"], "concurrency": p["concurrency"], "unit": unit, a: va, b: vb,
                    "ratio": round(va / vb, 2) if vb else None,
                    "p50_ratio": round(q["p50_ms"] / p["p50_ms"], 2) if p.get("p50_ms") and q.get("p50_ms") else None})
    return out


def fractions(phases: list[dict[str, Any]], limits: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not limits:
        return []
    out = []
    for p in phases:
        if p["phase"] == "large-put":  # issue 15: the lower of the disk's and one core's MD5 rate
            lim, name = limits["seq_write_fsync"]["mb_per_s"], "seq write+fsync"
            md5 = limits.get("md5_one_core", {}).get("mb_per_s")
            if md5 and md5 < lim:
                lim, name = md5, "MD5 one core"
        elif p["phase"] == "large-get":
            lim, name = limits["loopback_tcp"]["mb_per_s"], "loopback TCP"
        else:
            continue
        out.append({"phase": p["phase"], "target": p["target"], "mb_per_s": p["mb_per_s"], "limit": name,
                    "limit_mb_per_s": lim, "fraction": round(p["mb_per_s"] / lim, 2) if lim else None})
    return out


def check_targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each performance target with what this run measured; ``met`` is None when not measured."""
    checks: list[dict[str, Any]] = []
    for r in doc.get("ratios", []):
        need = RATIO_TARGETS.get(r["phase"])
        if need is not None and r["ratio"] is not None:
            checks.append({"target": f"{r['phase']} c{r['concurrency']} >= {need:g}x Swift"
                           if r["phase"].startswith("small") else
                           f"full listing >= {need:g}x Swift" if r["phase"] == "list" else f"{r['phase']} >= {need:g}x Swift",
                           "measured": f"{r['ratio']:.2f}x", "met": r["ratio"] >= need})
    for key, api in (("rgw_ratios", ""), ("rgw_s3_ratios", "S3 ")):
        for r in doc.get(key, []):
            need = RGW_RATIO_TARGETS.get(r["phase"])
            if need is not None and r["ratio"] is not None:
                name = r["phase"] + (f" c{r['concurrency']}" if r["phase"].startswith("small") else "")
                checks.append({"target": f"lampi {api}{name} >= {need:g}x Ceph RGW {api}".rstrip(),
                               "measured": f"{r['ratio']:.2f}x", "met": r["ratio"] >= need})
    for g in (1, 2):
        for r in doc.get(f"cluster{g}_rgw_ratios", []):
            need = CLUSTER_RGW_TARGETS.get(r["phase"])
            if need is not None and r["ratio"] is not None:
                name = r["phase"] + (f" c{r['concurrency']}" if r["phase"].startswith("small") else "")
                verb = f"matches Ceph RGW (>= {need:g}x)" if need < 1 else "beats Ceph RGW (>= 1x)"
                checks.append({"target": f"lampi {g} gw PG+RADOS {name} {verb}",
                               "measured": f"{r['ratio']:.2f}x", "met": r["ratio"] >= need})
    for r in doc.get("s3_ratios", []):
        if r["ratio"] is not None and (r["phase"].startswith("small") or r["phase"] == "list"):
            within = S3_WITHIN if r["phase"].startswith("small") else S3_LIST_WITHIN
            name = r["phase"] + (f" c{r['concurrency']}" if r["phase"].startswith("small") else "")
            checks.append({"target": f"lampi S3 {name} within {within:.0%} of its Swift figure",
                           "measured": f"{r['ratio']:.2f}x", "met": r["ratio"] >= 1 - within})
    for r in doc.get("scenario_ratios", []):
        if r["speedup"] is not None:
            checks.append({"target": f"{r['label']} ({r['step']}): lampi ahead of {r['other']}",
                           "measured": f"{r['speedup']:.2f}x ({r['lampi_s']:.1f} s vs {r['other_s']:.1f} s)",
                           "met": r["speedup"] > 1})
    for f in doc.get("fractions", []):
        if f["target"] == "lampi":
            checks.append({"target": f"{f['phase']} >= {LIMIT_FRACTION:.0%} of {f['limit']}",
                           "measured": f"{f['fraction']:.0%} ({f['mb_per_s']} of {f['limit_mb_per_s']} MB/s)",
                           "met": f["fraction"] >= LIMIT_FRACTION})
    growth = [p["rss_peak_mib"] - p["rss_start_mib"] for p in doc.get("phases", [])
              if p["target"] in ("lampi", "target") and p["phase"].startswith("large") and "rss_peak_mib" in p]
    if growth:
        size = human_size(doc["config"]["large_size"])
        checks.append({"target": f"RSS growth < {RSS_GROWTH_MIB} MiB during large PUT+GET (target: 5 GiB object)",
                       "measured": f"{max(growth):.1f} MiB with a {size} object",
                       "met": max(growth) < RSS_GROWTH_MIB})
    lampi = doc.get("servers", {}).get("lampi")
    if lampi and lampi.get("startup_s") is not None:
        checks.append({"target": f"/healthcheck within {HEALTHCHECK_S:g} s of start",
                       "measured": f"{lampi['startup_s']:.2f} s", "met": lampi["startup_s"] <= HEALTHCHECK_S})
        checks.append({"target": "idle RSS reported", "measured": f"{lampi['idle_rss_mib']} MiB "
                       f"({lampi['workers']} workers + parent; PSS {lampi.get('idle_pss_mib', '?')} MiB)", "met": True})
    return checks


def _cpu(p: dict[str, Any]) -> str:
    """The server's CPU per operation (``--server-pid``, or a ``--compare`` server)."""
    v = p.get("server_cpu_ms_per_op")
    return "-" if v is None else f"{v:.3f}"


def _scenario_rows(doc: dict[str, Any]) -> list[list[str]]:
    return [[r["label"], r["step"], r["target"], _f(r["seconds"], 2), _f(r["mb_per_s"]), _f(r["files_per_s"])]
            for r in doc["scenarios"]]


def _f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:,.{nd}f}" if isinstance(v, float) else f"{v:,}"


def _table(title: str, headers: list[str], rows: list[list[str]], left: int = 1) -> Table:
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i, h in enumerate(headers):
        # text wraps; a figure is never cut short (fold: at worst it breaks onto a second line)
        t.add_column(h, justify="left" if i < left else "right", overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t


def print_table(con: Console, title: str, headers: list[str], rows: list[list[str]], key: int = 1,
                left: int = 1, split: bool = True) -> None:
    """Print a table no wider than the console. Columns of figures: when they do not all
    fit, the columns after the first ``key`` (the row's name) are spread over several
    tables, each repeating the name columns, titled "title (1/2)", "(2/2)"... Tables of
    text (``split=False``) wrap their cells instead."""
    width = con.width
    unbounded = con.options.update(max_width=1_000_000)  # natural widths, not clamped to the console

    def fits(cols: list[int]) -> bool:
        t = _table(title, [headers[c] for c in cols], [[r[c] for c in cols] for r in rows],
                   left=sum(1 for c in cols if c < left))
        return Measurement.get(con, unbounded, t).maximum <= width

    keys = list(range(key))
    groups: list[list[int]] = []
    current: list[int] = []
    for c in range(key, len(headers)):
        if split and current and not fits(keys + current + [c]):
            groups.append(current)
            current = []
        current.append(c)
    groups.append(current)
    for n, cols in enumerate(groups, 1):
        cols = keys + cols
        name = title if len(groups) == 1 else f"{title} ({n}/{len(groups)})"
        con.print(_table(name, [headers[c] for c in cols], [[r[c] for c in cols] for r in rows],
                         left=sum(1 for c in cols if c < left)))


def render(doc: dict[str, Any], console: Console | None = None) -> None:
    con = console or Console()
    m = doc["machine"]
    con.print(f"[bold]lampi bench[/] {doc['started_at']} — {m.get('cores')} cores ({m.get('cpu', '?')}), "
              f"{m.get('memory_gib')} GiB RAM, disk {m['disk'].get('device', '?')} {m['disk'].get('fstype', '')}; "
              f"load average {m.get('loadavg_start')} → {doc.get('loadavg_end')}")
    rows = []
    for p in doc["phases"]:
        rss = f"{p['rss_start_mib']:.0f}→{p['rss_peak_mib']:.0f}" if "rss_peak_mib" in p else "-"
        rows.append([p["label"], p["target"], _f(p["ops"]), _f(p["errors"]) if not p["errors"] else f"[red]{p['errors']}",
                     _f(p["seconds"], 2), _f(p["ops_per_s"]), _f(p["mb_per_s"]), _f(p["p50_ms"], 2),
                     _f(p["p99_ms"], 2), rss, _cpu(p)])
    if rows:
        print_table(con, "Phases", ["Phase", "Target", "ops", "err", "sec", "ops/s", "MB/s", "p50 ms", "p99 ms",
                                "RSS MiB start→peak", "srv CPU ms/op"], rows, key=2, left=2)
    for key, a, b, title, (ca, cb) in COMPARISONS:
        if doc.get(key):
            print_table(con, title, ["Phase", "c", "unit", ca, cb, "ratio", f"p50 {cb}/{ca}"],
                        [[r["phase"], str(r["concurrency"]), r["unit"], _f(r[a]), _f(r[b]),
                          _f(r["ratio"], 2), _f(r["p50_ratio"], 2)] for r in doc[key]], key=2)
    if doc.get("scenarios"):
        print_table(con, "Scenarios (real clients, whole command timed)",
                    ["Scenario", "step", "Target", "s", "MB/s", "files/s"], _scenario_rows(doc), key=3, left=3)
    if doc.get("limits"):
        lim = doc["limits"]
        rows = [[_seq_label(lim), f"{lim['seq_write_fsync']['mb_per_s']:,.1f} MB/s"],
                ["4 KiB write + fsync", f"{lim['small_write_fsync_4k']['ops_per_s']:,.0f} /s "
                 f"({lim['small_write_fsync_4k']['avg_ms']} ms each)"]]
        if "md5_one_core" in lim:
            rows.append(["MD5, one core (an ETag's cost)", f"{lim['md5_one_core']['mb_per_s']:,.1f} MB/s"])
        rows.append(["loopback TCP", f"{lim['loopback_tcp']['mb_per_s']:,.1f} MB/s"])
        rows += [[f"{f['target']} {f['phase']} / {f['limit']}", f"{f['fraction']:.0%}"] for f in doc.get("fractions", [])]
        print_table(con, f"Machine limits ({lim['directory']})", ["Limit", "Result"], rows, split=False)
    if doc.get("servers"):
        print_table(con, "Servers", ["Server", "version", "workers", "ready after s", "idle RSS MiB",
                                     "idle PSS MiB", "peak RSS (Σ VmHWM) MiB"],
                    [[name, s.get("version", ""), str(s.get("workers", "")), _f(s.get("startup_s"), 2),
                      _f(s.get("idle_rss_mib")), _f(s.get("idle_pss_mib")), _f(s.get("rss_hwm_sum_mib"))] for name, s in doc["servers"].items()],
                    left=2)
    if doc.get("targets"):
        print_table(con, "Targets", ["Target", "Measured", "Met"],
                    [[c["target"], c["measured"],
                      "-" if c["met"] is None else ("[green]yes" if c["met"] else "[red]no")] for c in doc["targets"]],
                    left=3, split=False)
    for e in doc.get("setup_errors", []):
        con.print(f"[red]setup/cleanup error:[/] {e}")
    if doc.get("leftover_processes"):
        con.print(f"[red]left running:[/] {doc['leftover_processes']}")


def markdown(doc: dict[str, Any]) -> str:
    """The same tables as Markdown (for docs/benchmarks.md)."""
    lines: list[str] = []

    def table(headers: list[str], rows: list[list[str]]) -> None:
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join(" --- " if i < 2 else " ---: " for i in range(len(headers))) + "|")
        lines.extend("| " + " | ".join(r) + " |" for r in rows)
        lines.append("")

    m = doc["machine"]
    lines += [f"Run {doc['started_at']}, `{doc.get('command') or 'lampi bench'}`", "",
              f"Machine: {m.get('cores')} cores ({m.get('cpu', '?')}), {m.get('memory_gib')} GiB RAM, "
              f"disk {m['disk'].get('device', '?')} ({m['disk'].get('fstype', '?')}, {m['disk'].get('size_gib')} GiB); "
              f"load average (1/5/15 min) at start {m.get('loadavg_start')}, at end {doc.get('loadavg_end')}.", ""]
    rows = []
    for p in doc["phases"]:
        rss = f"{p['rss_start_mib']:.0f} → {p['rss_peak_mib']:.0f}" if "rss_peak_mib" in p else "-"
        rows.append([p["label"], p["target"], _f(p["ops"]), _f(p["errors"]), _f(p["seconds"], 2),
                     _f(p["ops_per_s"]), _f(p["mb_per_s"]), _f(p["p50_ms"], 2), _f(p["p99_ms"], 2), rss, _cpu(p)])
    if rows:
        table(["Phase", "Target", "ops", "errors", "s", "ops/s", "MB/s", "p50 ms", "p99 ms", "server RSS MiB start → peak",
           "server CPU ms/op"], rows)
    for key, a, b, _title, (ca, cb) in COMPARISONS:
        if doc.get(key):
            table(["Phase", "c", "unit", ca, cb, f"{ca}/{cb}", f"p50 {cb}/{ca}"],
                  [[r["phase"], str(r["concurrency"]), r["unit"], _f(r[a]), _f(r[b]), _f(r["ratio"], 2),
                    _f(r["p50_ratio"], 2)] for r in doc[key]])
    if doc.get("scenarios"):
        table(["Scenario", "step", "Target", "s", "MB/s", "files/s"], _scenario_rows(doc))
    if doc.get("limits"):
        lim = doc["limits"]
        rows = [[_seq_label(lim), f"{lim['seq_write_fsync']['mb_per_s']:,.1f} MB/s"],
                ["4 KiB write + fsync", f"{lim['small_write_fsync_4k']['ops_per_s']:,.0f} /s "
                 f"({lim['small_write_fsync_4k']['avg_ms']} ms each)"],
                ["loopback TCP", f"{lim['loopback_tcp']['mb_per_s']:,.1f} MB/s"]]
        if "md5_one_core" in lim:
            rows.insert(2, ["MD5, one core (an ETag's cost)", f"{lim['md5_one_core']['mb_per_s']:,.1f} MB/s"])
        rows += [[f"{f['target']} {f['phase']} / {f['limit']}", f"{f['fraction']:.0%}"] for f in doc.get("fractions", [])]
        table(["Limit", "Result"], rows)
    if doc.get("servers"):
        table(["Server", "version", "workers", "ready after s", "idle RSS MiB", "idle PSS MiB", "Σ VmHWM MiB"],
              [[n, s.get("version", ""), str(s.get("workers", "")), _f(s.get("startup_s"), 2),
                _f(s.get("idle_rss_mib")), _f(s.get("idle_pss_mib")), _f(s.get("rss_hwm_sum_mib"))] for n, s in doc["servers"].items()])
    if doc.get("targets"):
        table(["Target", "Measured", "Met"],
              [[c["target"], c["measured"], "-" if c["met"] is None else ("yes" if c["met"] else "**no**")]
               for c in doc["targets"]])
    return "\n".join(lines)
