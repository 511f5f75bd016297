"""The UI thread's longest stall when a long code fence closes, in two source trees, alternating run by run.

    python benchmarks/fence_close.py --runs 6 before=/tmp/before after=.   [--lines 500] [--pace 300]

Each run is a fresh process with that side's folder first on PYTHONPATH: a headless app (100 x 32) holds a Markdown
and a `CodeStream` in an anchored scroll view, as an answer does, and an `AnswerStream` writes the realistic answer
(`mlxchat.bench.realistic`, a 500-line Python block) into them at `--pace` tokens a second (4 characters a token,
in 10 ms writes). A probe task measures the UI thread's CPU time between two of its turns on the event loop
(a 1 ms `asyncio.sleep`): a long one is work a keypress would wait behind (CPU time, not wall time, so the other
processes on a shared machine count less). The close's cost is the longest stall from the write that
holds the closing fence to 1.5 s after it (the update, the mount and the frames that follow); the rest of the run
is the comparison. Prints medians per side; `--json PATH` writes every run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WINDOW_S = 1.5


def one_run(lines: int, pace: float) -> dict:
    from textual.app import App
    from textual.containers import VerticalScroll
    from textual.widgets import Markdown

    from mlxchat.bench.realistic import realistic_answer
    from mlxchat.ui.widgets.code_stream import AnswerStream, CodeStream

    try:  # the answer's own Markdown, where the tree has one
        from mlxchat.ui.widgets.code_stream import AnswerMarkdown as Markdown
    except ImportError:
        pass

    answer = realistic_answer(lines)
    chunk = max(1, round(pace * 4 * 0.01))

    class Probe(App):
        def compose(self):
            with VerticalScroll():
                yield Markdown()
                yield CodeStream()

    stalls: list[tuple[float, float]] = []
    marks: dict[str, float] = {}

    async def watch_loop(done: asyncio.Event) -> None:
        while not done.is_set():
            started, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.001)
            busy = time.thread_time() - cpu
            if busy > 0.002:
                stalls.append((started, busy))

    async def main() -> None:
        gc.collect()
        gc.disable()  # a collection's pause is the collector policy's business (ui/collector.py), not the close's
        app = Probe()
        async with app.run_test(size=(100, 32)) as pilot:
            app.query_one(VerticalScroll).anchor()
            stream = AnswerStream(app.query_one(Markdown), app.query_one(CodeStream))
            done = asyncio.Event()
            watcher = asyncio.create_task(watch_loop(done))
            was_open = False
            for start in range(0, len(answer), chunk):
                await stream.write(answer[start : start + chunk])
                text_so_far = answer[: start + chunk]
                opened = text_so_far.count("\n```") % 2 == 1
                if was_open and not opened and "close" not in marks:
                    marks["close"] = time.perf_counter()
                was_open = opened
                await asyncio.sleep(0.01)
            await stream.stop()
            await pilot.pause()
            await asyncio.sleep(0.3)
            done.set()
            await watcher

    asyncio.run(main())
    close = marks["close"]
    near = [late for at, late in stalls if close - 0.01 <= at <= close + WINDOW_S]
    rest = [late for at, late in stalls if not close - 0.01 <= at <= close + WINDOW_S]
    return {
        "close_stall_ms": 1000 * max(near, default=0.0),
        "rest_max_ms": 1000 * max(rest, default=0.0),
        "near_ms": [(round(1000 * (at - close)), round(1000 * late, 1)) for at, late in stalls if close - 0.01 <= at <= close + WINDOW_S and late > 0.008],
        "rest_p99_ms": 1000 * sorted(rest)[int(0.99 * (len(rest) - 1))] if rest else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sides", nargs="*", metavar="NAME=FOLDER")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--pace", type=float, default=300.0, help="tokens a second (4 characters each)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.lines, args.pace)))
        return
    sides = dict(side.split("=", 1) for side in args.sides)
    results: dict[str, list[dict]] = {name: [] for name in sides}
    for run in range(args.runs):
        for name in list(sides) if run % 2 == 0 else list(reversed(sides)):
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(sides[name]).resolve()), os.environ.get("PYTHONPATH", "")]))
            command = [sys.executable, __file__, "--one", "--lines", str(args.lines), "--pace", str(args.pace)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(out.returncode)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(name, results[name][-1], flush=True)
    for name, runs in results.items():
        close = [r["close_stall_ms"] for r in runs]
        rest = [r["rest_max_ms"] for r in runs]
        print(f"{name}: close stall median {statistics.median(close):.1f} ms (min {min(close):.1f}, max {max(close):.1f}); "
              f"longest stall elsewhere median {statistics.median(rest):.1f} ms; n={len(runs)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
