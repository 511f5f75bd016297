"""Download throughput of `mlxchat pull` against plain `curl` of the same files, and what its progress costs.

Both fetch the same repo from the loopback Hub server (tests/models/hub_server.py) running in its own process,
one file after another. mlxchat goes through `mlxchat.models.hub.download_model` exactly as `mlxchat pull`
does, with its progress line rendered (to /dev/null, as on a terminal but without one); curl fetches each
file's resolve URL once. Each side runs `--runs` times into a fresh folder; the median counts.

The progress cost is the time spent building and writing progress lines, as a share of the download's wall
time, and the process CPU time with and without a progress callback.

    .venv/bin/python benchmarks/download_bench.py --sizes 200 200 --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "bench/model"


def start_server(sizes: list[int]) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "models" / "hub_server.py"), REPO_ID, *map(str, sizes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    endpoint = server.stdout.readline().strip()
    if not endpoint.startswith("http://127.0.0.1:"):
        raise SystemExit(f"the loopback Hub did not start ({endpoint!r})")
    return server, endpoint


def curl_run(endpoint: str, files: list[str], folder: Path) -> tuple[float, float]:
    """(wall s, curl's CPU s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for name in files:
        subprocess.run(
            ["curl", "-sS", "--fail", "-o", str(folder / name), f"{endpoint}/{REPO_ID}/resolve/main/{name}"],
            check=True,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - start, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def mlxchat_run(folder: Path, *, with_progress: bool) -> tuple[float, float, float, int]:
    """(wall s, process CPU s, seconds inside progress rendering, progress lines)."""
    from mlxchat.models import hub

    os.environ["HF_HUB_CACHE"] = str(folder)
    spent, lines = 0.0, 0
    sink = open(os.devnull, "w")

    def progress(report) -> None:
        nonlocal spent, lines
        began = time.perf_counter()
        print(f"\r\x1b[2K{hub.describe_progress(report)}", end="", file=sink, flush=True)
        spent += time.perf_counter() - began
        lines += 1

    cpu, start = time.process_time(), time.perf_counter()  # the server is another process: not counted
    hub.download_model(REPO_ID, progress=progress if with_progress else None)
    return time.perf_counter() - start, time.process_time() - cpu, spent, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 200], help="weight files, in MB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("curl") is None:
        raise SystemExit("curl is not installed")

    server, endpoint = start_server(args.sizes)
    os.environ["HF_ENDPOINT"] = endpoint
    os.environ.pop("HF_HUB_OFFLINE", None)
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = False
    from mlxchat.models import hub

    files = [f.path for f in hub.inspect_repo(REPO_ID).wanted]
    total_bytes = hub.inspect_repo(REPO_ID).download_bytes
    curl_s, ours_s, quiet = [], [], []
    try:
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                curl_s.append(curl_run(endpoint, files, Path(folder)))
            with tempfile.TemporaryDirectory() as folder:
                ours_s.append(mlxchat_run(Path(folder), with_progress=True))
            with tempfile.TemporaryDirectory() as folder:
                quiet.append(mlxchat_run(Path(folder), with_progress=False))
    finally:
        server.stdin.close()
        server.wait(timeout=10)

    mb = total_bytes / 1e6
    curl_median = statistics.median(run[0] for run in curl_s)
    ours_median = statistics.median(run[0] for run in ours_s)
    ratio = statistics.median(curl[0] / ours[0] for curl, ours in zip(curl_s, ours_s))  # pairs ran back to back
    progress_share = statistics.median(run[2] / run[0] for run in ours_s)
    cpu_with = statistics.median(run[1] for run in ours_s)
    cpu_without = statistics.median(run[1] for run in quiet)
    print(f"files: {len(files)}, {mb:.0f} MB; runs: {args.runs} (median)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"curl      {curl_median:6.2f} s  {mb / curl_median:7.1f} MB/s  CPU {statistics.median(r[1] for r in curl_s):.2f} s")
    print(
        f"mlxchat   {ours_median:6.2f} s  {mb / ours_median:7.1f} MB/s  CPU {cpu_with:.2f} s  "
        f"= {ratio:.0%} of curl's throughput (median of back-to-back pairs)"
    )
    print(
        f"progress  {statistics.median(run[3] for run in ours_s):.0f} lines, {progress_share:.3%} of wall time; "
        f"process CPU {cpu_with:.2f} s with progress, {cpu_without:.2f} s without"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
