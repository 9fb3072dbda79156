"""End-to-end scenarios: what users wait for, timed with the real clients.

Each scenario runs one command-line client as a user would, against every server of
the run (lampi, and Swift and/or RGW with ``--compare``), the order rotated from one
scenario to the next, and times the whole command (start-up, listing, transfer):

- ``rclone``: ``rclone copy`` of a directory of many small files up to a Swift
  container, and back down into an empty directory (Swift API, storage URL + token).
- ``swift-segments``: ``swift upload --segment-size`` of one big file (a static large
  object's segments; ``--use-slo``), then ``swift download`` of it.
- ``aws-sync``: ``aws s3 sync`` of a directory of many files (1 MiB each by default) up
  and back down (S3 API, SigV4).
- ``s3cmd-multipart``: ``s3cmd put`` of one big file (multipart, chunks of
  ``--multipart-chunk-size``), then ``s3cmd get``.

The clients check what they transfer (rclone and swift compare MD5s, s3cmd too); the
downloads' file counts and sizes are checked here. Every file is random bytes made once
per run and shared by all servers. What a scenario uploaded is deleted from the server
after its download (with the same client), and the download directory removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lampi.bench.auth import Credentials
from lampi.bench.util import MB, BenchError, human_size

SCENARIOS = ("rclone", "swift-segments", "aws-sync", "s3cmd-multipart")
MiB = 1024 * 1024


@dataclass
class ScenarioSizes:
    rclone_files: int = 10_000
    rclone_file_size: int = 4096
    segment_file_size: int = 5 * 1024**3
    segment_size: int = 1024**3
    sync_files: int = 1000
    sync_file_size: int = MiB
    multipart_file_size: int = 2 * 1024**3
    multipart_chunk_size: int = 15 * MiB

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Endpoint:
    """One server as the clients see it: Swift (storage URL + token) and S3."""

    name: str
    swift: Credentials
    s3: Credentials


def tool(name: str) -> str:
    """The client's executable: beside this Python's (a venv's or pyenv's own bin, no
    shim), else on PATH."""
    for d in (Path(sys.executable).parent, Path(os.__file__).parents[2] / "bin"):
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if not found:
        raise BenchError(f"--scenario needs the {name} client on PATH")
    return found


def _write_random(path: Path, size: int, block: bytes) -> None:
    """``size`` bytes: a random block, each copy with its offset in front (no two blocks
    alike: nothing for a deduplicating or compressing layer to gain)."""
    with open(path, "wb") as f:
        done = 0
        while done < size:
            chunk = done.to_bytes(8, "big") + block[8:]
            n = min(len(chunk), size - done)
            f.write(chunk[:n])
            done += n


def make_data(root: Path, names: list[str], sizes: ScenarioSizes) -> dict[str, Path]:
    """The files the scenarios upload, under ``root``."""
    data: dict[str, Path] = {}
    block = os.urandom(4 * MiB)
    if "rclone" in names:
        d = root / "rclone-src"
        d.mkdir(parents=True)
        for i in range(sizes.rclone_files):
            sub = d / f"d{i // 1000:03d}"  # 1,000 files a directory, as a dataset would be split
            sub.mkdir(exist_ok=True)
            (sub / f"f{i:06d}.bin").write_bytes(os.urandom(sizes.rclone_file_size))
        data["rclone"] = d
    if "swift-segments" in names:
        data["swift-segments"] = root / "segmented.bin"
        _write_random(data["swift-segments"], sizes.segment_file_size, block)
    if "aws-sync" in names:
        d = root / "sync-src"
        d.mkdir(parents=True)
        for i in range(sizes.sync_files):
            _write_random(d / f"f{i:05d}.bin", sizes.sync_file_size, os.urandom(min(sizes.sync_file_size, MiB) or 1))
        data["aws-sync"] = d
    if "s3cmd-multipart" in names:
        data["s3cmd-multipart"] = root / "multipart.bin"
        _write_random(data["s3cmd-multipart"], sizes.multipart_file_size, block)
    return data


def _tree(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path`` (a file: 1 and its size)."""
    if path.is_file():
        return 1, path.stat().st_size
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


class Runner:
    def __init__(self, work: Path, sizes: ScenarioSizes) -> None:
        self.work, self.sizes = work, sizes
        self.log = work / "scenarios.log"

    def _run(self, args: list[str], env: dict[str, str], check: bool = True) -> float:
        """Run a client; its seconds. Its output goes to the log, shown on failure."""
        with open(self.log, "ab") as log:
            log.write(f"$ {' '.join(args)}\n".encode())
            log.flush()
            t0 = time.monotonic()
            r = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                               cwd=self.work)
            secs = time.monotonic() - t0
        if r.returncode and check:
            tail = self.log.read_text(errors="replace")[-1500:]
            raise BenchError(f"{Path(args[0]).name} exited with {r.returncode}:\n{tail}")
        return secs

    @staticmethod
    def _env(extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OS_", "ST_", "AWS_", "RCLONE_", "S3CMD"))}
        env.update(extra)
        return env

    # -- the clients, each set up for one endpoint --------------------------------------

    def rclone(self, ep: Endpoint, *args: str) -> tuple[list[str], dict[str, str]]:
        conf = self.work / "rclone.conf"
        conf.touch()  # empty: the remote comes from the environment (and no notice that the file is missing)
        env = self._env({"RCLONE_CONFIG": str(conf),
                         "RCLONE_CONFIG_BENCH_TYPE": "swift",
                         "RCLONE_CONFIG_BENCH_STORAGE_URL": ep.swift.storage_url,
                         "RCLONE_CONFIG_BENCH_AUTH_TOKEN": ep.swift.token})
        return [tool("rclone"), *args], env

    def swift(self, ep: Endpoint, *args: str) -> tuple[list[str], dict[str, str]]:
        return ([tool("swift"), "--os-storage-url", ep.swift.storage_url, "--os-auth-token", ep.swift.token, *args],
                self._env({}))

    def aws(self, ep: Endpoint, *args: str) -> tuple[list[str], dict[str, str]]:
        env = self._env({"AWS_ACCESS_KEY_ID": ep.s3.access, "AWS_SECRET_ACCESS_KEY": ep.s3.secret,
                         "AWS_DEFAULT_REGION": ep.s3.region, "AWS_CONFIG_FILE": str(self.work / "aws-config"),
                         "AWS_SHARED_CREDENTIALS_FILE": str(self.work / "aws-credentials")})
        return [tool("aws"), "--endpoint-url", ep.s3.storage_url, *args], env

    def s3cmd(self, ep: Endpoint, *args: str) -> tuple[list[str], dict[str, str]]:
        host = ep.s3.storage_url.split("://", 1)[1]
        cfg = self.work / f"s3cfg-{ep.name}"
        cfg.write_text("[default]\n"
                       f"access_key = {ep.s3.access}\nsecret_key = {ep.s3.secret}\n"
                       f"host_base = {host}\nhost_bucket = {host}\n"  # path style
                       "use_https = False\nsignature_v2 = False\n"
                       f"bucket_location = {ep.s3.region}\n")
        return [tool("s3cmd"), "-c", str(cfg), "--no-progress", *args], self._env({})

    def time(self, made: tuple[list[str], dict[str, str]], check: bool = True) -> float:
        return self._run(*made, check=check)

    # -- the scenarios: (step, seconds, files, bytes) ------------------------------------

    def run(self, name: str, ep: Endpoint, src: Path) -> list[tuple[str, float, int, int]]:
        tag = f"lampi-scenario-{uuid.uuid4().hex[:8]}"
        down = self.work / f"down-{tag}"
        files, size = _tree(src)
        steps: list[tuple[str, float, int, int]] = []
        try:
            if name == "rclone":
                steps.append(("up", self.time(self.rclone(ep, "copy", str(src), f"bench:{tag}")), files, size))
                steps.append(("down", self.time(self.rclone(ep, "copy", f"bench:{tag}", str(down))), files, size))
                self.time(self.rclone(ep, "purge", f"bench:{tag}"))
            elif name == "swift-segments":
                seg = str(self.sizes.segment_size)
                self.time(self.swift(ep, "post", tag))
                steps.append(("up", self.time(self.swift(ep, "upload", "--use-slo", "--segment-size", seg,
                                                         "--object-name", src.name, tag, str(src))), 1, size))
                down.mkdir()
                steps.append(("down", self.time(self.swift(ep, "download", tag, src.name, "-o",
                                                           str(down / src.name))), 1, size))
                self.time(self.swift(ep, "delete", tag))
                self.time(self.swift(ep, "delete", f"{tag}_segments"), check=False)  # emptied with the manifest
            elif name == "aws-sync":
                self.time(self.aws(ep, "s3", "mb", f"s3://{tag}"))
                steps.append(("up", self.time(self.aws(ep, "s3", "sync", "--only-show-errors", str(src),
                                                       f"s3://{tag}/")), files, size))
                steps.append(("down", self.time(self.aws(ep, "s3", "sync", "--only-show-errors", f"s3://{tag}/",
                                                         str(down))), files, size))
                self.time(self.aws(ep, "s3", "rb", "--force", f"s3://{tag}"))
            elif name == "s3cmd-multipart":
                chunk = str(max(5, self.sizes.multipart_chunk_size // MiB))
                self.time(self.s3cmd(ep, "mb", f"s3://{tag}"))
                steps.append(("up", self.time(self.s3cmd(ep, "put", "--multipart-chunk-size-mb", chunk, str(src),
                                                         f"s3://{tag}/{src.name}")), 1, size))
                down.mkdir()
                steps.append(("down", self.time(self.s3cmd(ep, "get", f"s3://{tag}/{src.name}",
                                                           str(down / src.name))), 1, size))
                self.time(self.s3cmd(ep, "del", f"s3://{tag}/{src.name}"))
                self.time(self.s3cmd(ep, "rb", f"s3://{tag}"))
            else:  # pragma: no cover - the CLI checks names
                raise BenchError(f"unknown scenario {name!r}")
            got = _tree(down)
            if got != (files, size):
                raise BenchError(f"{name} on {ep.name}: downloaded {got[0]} files / {got[1]} bytes, "
                                 f"uploaded {files} / {size}")
        finally:
            shutil.rmtree(down, ignore_errors=True)
        return steps


def describe(name: str, sizes: ScenarioSizes) -> str:
    s = sizes
    if name == "rclone":
        return f"rclone copy {s.rclone_files:,} × {human_size(s.rclone_file_size)}"
    if name == "swift-segments":
        return (f"swift upload --segment-size {human_size(s.segment_size)} "
                f"of {human_size(s.segment_file_size)}")
    if name == "aws-sync":
        return f"aws s3 sync {s.sync_files:,} × {human_size(s.sync_file_size)}"
    return (f"s3cmd put of {human_size(s.multipart_file_size)} "
            f"(multipart, {max(5, s.multipart_chunk_size // MiB)} MiB chunks)")


def run_scenarios(names: list[str], endpoints: list[Endpoint], sizes: ScenarioSizes, work: Path,
                  say: Any = None) -> list[dict[str, Any]]:
    """Every scenario on every endpoint; one row per (scenario, step, endpoint)."""
    data_dir = work / "scenario-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    runner = Runner(work, sizes)
    rows: list[dict[str, Any]] = []
    try:
        data = make_data(data_dir, names, sizes)
        for i, name in enumerate(names):
            k = i % len(endpoints)
            for ep in endpoints[k:] + endpoints[:k]:  # rotated: each server goes first in turn
                if say:
                    say(f"scenario {describe(name, sizes)}: {ep.name} ...")
                for step, secs, files, size in runner.run(name, ep, data[name]):
                    rows.append({"scenario": name, "label": describe(name, sizes), "step": step,
                                 "target": ep.name, "seconds": round(secs, 3), "files": files, "bytes": size,
                                 "mb_per_s": round(size / secs / MB, 1), "files_per_s": round(files / secs, 1)})
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    order = {ep.name: n for n, ep in enumerate(endpoints)}
    rows.sort(key=lambda r: (names.index(r["scenario"]), r["step"] != "up", order[r["target"]]))
    return rows


def scenario_ratios(rows: list[dict[str, Any]], base: str = "lampi") -> list[dict[str, Any]]:
    """For each scenario step: the other servers' time over lampi's (above 1: lampi faster)."""
    by = {(r["scenario"], r["step"], r["target"]): r for r in rows}
    out = []
    for r in rows:
        if r["target"] != base:
            continue
        for (sc, st, t), o in by.items():
            if sc == r["scenario"] and st == r["step"] and t != base:
                out.append({"scenario": sc, "label": r["label"], "step": st, "other": t,
                            "lampi_s": r["seconds"], "other_s": o["seconds"],
                            "speedup": round(o["seconds"] / r["seconds"], 2) if r["seconds"] else None})
    return out
