"""Remote origins: a first scan and the first byte of a never-read track, MusicFS against direct S3
requests to the same server (a real SeaweedFS on 127.0.0.1, started and stopped by this script).

Figures (no targets yet: the issue's targets are against rclone with 20 ms of added latency, which
needs the fault proxy):
  - first scan: `musicfs scan` of a new state dir over an s3:// origin of N tagged FLAC tracks, in
    tracks/s, beside the floor of any tag scan done directly: one listing plus one ranged GET of each
    track's first 64 KiB, on as many threads as the scanner reads tags with;
  - time to first byte: open + read(4096) of tracks the daemon never read, through the mount, beside a
    direct ranged GET of the same 4 KiB on a warm connection.

    python -m bench.remote [--quick] [--tracks N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench._common import (
    bulk_library,
    fresh_dir,
    median_of,
    parse_args,
    print_footer,
    print_header,
    print_table,
    run_main,
    run_musicfs,
)
from chaos.daemon import DaemonProcess
from chaos.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS
from musicfs.index.scanner import TAG_THREADS

BUCKET = "bench"
HEAD = 64 * 1024
FIRST_BYTES = 4096


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracks", type=int, default=None, help="tracks in the library (default 2000)")


def _upload(client: Any, library: Path, prefix: str) -> list[str]:
    files = sorted(p for p in library.rglob("*") if p.is_file())

    def put(path: Path) -> str:
        key = f"{prefix}/{path.relative_to(library).as_posix()}"
        client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
        return key

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(put, files))


def _config(workdir: Path, server: SeaweedFS, prefix: str) -> Path:
    secret = workdir / "s3.secret"
    secret.write_text(SECRET_KEY)
    secret.chmod(0o600)
    config = workdir / "remote.toml"
    config.write_text(
        f'cache_dir = "{workdir / "cache"}"\npoll_interval = 0\n'
        f'[[origin]]\nurl = "s3://{BUCKET}/{prefix}"\nendpoint = "{server.endpoint}"\n'
        f'access_key_id = "{ACCESS_KEY}"\nsecret_access_key_file = "{secret}"\n'
    )
    return config


def _direct_scan(client: Any, prefix: str) -> tuple[float, int]:
    """One listing and a ranged GET of each track's head, on TAG_THREADS threads: seconds, tracks."""
    started = time.perf_counter()
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        keys += [item["Key"] for item in page.get("Contents", ()) if item["Key"].endswith(".flac")]

    def head(key: str) -> int:
        body = client.get_object(Bucket=BUCKET, Key=key, Range=f"bytes=0-{HEAD - 1}")["Body"]
        return len(body.read())

    with ThreadPoolExecutor(TAG_THREADS) as pool:
        list(pool.map(head, keys))
    return time.perf_counter() - started, len(keys)


def _first_byte(path: Path) -> float:
    started = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, FIRST_BYTES)
    finally:
        os.close(fd)
    return time.perf_counter() - started


def _direct_first_byte(client: Any, key: str) -> float:
    started = time.perf_counter()
    client.get_object(Bucket=BUCKET, Key=key, Range=f"bytes=0-{FIRST_BYTES - 1}")["Body"].read()
    return time.perf_counter() - started


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], _options)
    count = args.tracks or (200 if args.quick else 2000)
    print_header("bench.remote", args)
    library = bulk_library(args.workdir, count)
    server = SeaweedFS(fresh_dir(args.workdir / "seaweedfs"))
    daemon: DaemonProcess | None = None
    try:
        server.start()
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        prefix = f"lib{count}"
        started = time.perf_counter()
        keys = _upload(client, library, prefix)
        print(f"  (uploaded {len(keys):,} objects in {time.perf_counter() - started:.1f} s)", flush=True)
        config = _config(args.workdir, server, prefix)

        scan = run_musicfs(
            "scan", "--config", str(config), "--state-dir", str(fresh_dir(args.workdir / "st"))
        )
        direct_seconds, tracks = _direct_scan(client, prefix)
        musicfs_rate, direct_rate = tracks / scan.seconds, tracks / direct_seconds
        print_table(
            f"first scan of {tracks:,} tracks",
            ["", "seconds", "tracks/s", "CPU s", "ratio to direct"],
            [
                ["musicfs scan", scan.seconds, musicfs_rate, scan.cpu_seconds, musicfs_rate / direct_rate],
                ["direct: list + GET 64 KiB each", direct_seconds, direct_rate, "", 1.0],
            ],
        )

        mountpoint = fresh_dir(args.workdir / "mnt")
        state = args.workdir / "st"  # the index of the scan above: the mount starts at once
        daemon = DaemonProcess(
            mountpoint, [], state, args.workdir / "remote-daemon.log", ["--config", str(config)]
        )
        daemon.start()
        daemon.wait_ready(120)
        shown = sorted(p for p in mountpoint.rglob("*.flac"))[:: max(1, tracks // 50)]
        origin_keys = [os.fsdecode(os.getxattr(p, "user.musicfs.origin")).split("/", 3)[3] for p in shown]
        musicfs_ms = median_of([_first_byte(p) for p in shown]) * 1000
        direct_ms = median_of([_direct_first_byte(client, k) for k in origin_keys]) * 1000
        print_table(
            f"time to first byte of a never-read track (median of {len(shown)})",
            ["", "ms", "ratio to direct"],
            [
                ["musicfs (open + read 4 KiB)", musicfs_ms, musicfs_ms / direct_ms],
                ["direct ranged GET", direct_ms, 1.0],
            ],
        )
    finally:
        if daemon is not None:
            daemon.signal(15)
            daemon.wait_exit(30)
            daemon.cleanup()
        server.stop()
    print_footer()


if __name__ == "__main__":
    run_main(main)
