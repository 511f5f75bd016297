"""What holds the UI thread long enough to miss the keypress target (issue 11, round 9): the keypress tail, named.

Round 9's H200 run left keypress → repaint at p50 ~4 ms but p99 ~60 ms (two or three presses of ~170 at 58–67 ms).
This probe runs `ui_probes.keypress_latencies` (the real app, the realistic answer paced to `--rate`) while:

- every asyncio callback on the UI thread is timed (`asyncio.Handle._run`), and a watchdog thread samples the UI
  thread's stack when one has run for `--threshold-ms` and again every further `--threshold-ms`, so a stall is
  named by what it was doing, not only by the callback that started it;
- every garbage collection is timed (`gc.callbacks`), by generation.

It prints the callbacks over the threshold, grouped by the innermost frames of mlxchat or Textual that the samples
share, with their count and longest time, then the collector's pauses.

    python benchmarks/ui_stalls.py --model /tmp/m/1b --rate 100 --tokens 1000 [--threshold-ms 25]
    python benchmarks/ui_stalls.py --tiny --rate 100      # the tiny random llama on this CPU, in a temp folder
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

from mlxchat.bench import ui_probes
from mlxchat.bench.realistic import build_bench_model, cpu_spec


class StallWatch:
    """Times UI-thread callbacks and samples the stacks of long ones."""

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self.ui_thread = threading.get_ident()
        self.current: tuple[float, int] | None = None  # (start, serial) of the running callback
        self.serial = 0
        self.samples: dict[int, list[str]] = defaultdict(list)
        self.stalls: list[tuple[float, float, str, list[str]]] = []  # (at, seconds, callback, sampled stacks)
        self.collections: list[tuple[int, float, float]] = []  # (generation, seconds, start)
        self.when: list[str] = []  # "streaming" (the app's collector holds full collections) or "other"
        self._gc_started = 0.0
        self._stop = threading.Event()
        self._original_run = asyncio.events.Handle._run

    def __enter__(self) -> "StallWatch":
        watch = self

        def timed_run(handle):
            if threading.get_ident() != watch.ui_thread:
                return watch._original_run(handle)
            watch.serial += 1
            serial = watch.serial
            started = time.perf_counter()
            watch.current = (started, serial)
            try:
                return watch._original_run(handle)
            finally:
                watch.current = None
                took = time.perf_counter() - started
                if took >= watch.threshold_s:
                    watch.stalls.append((started, took, repr(handle)[:160], watch.samples.pop(serial, [])))
                else:
                    watch.samples.pop(serial, None)

        asyncio.events.Handle._run = timed_run
        gc.callbacks.append(self._on_gc)
        threading.Thread(target=self._sample, daemon=True, name="stall-watch").start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        asyncio.events.Handle._run = self._original_run
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._gc_while = "streaming" if gc.get_threshold()[2] >= 1_000_000 else "other"
        else:
            self.collections.append((info["generation"], time.perf_counter() - self._gc_started, self._gc_started))
            self.when.append(self._gc_while)

    def _sample(self) -> None:
        next_due: dict[int, float] = {}
        while not self._stop.wait(0.002):
            current = self.current
            if current is None:
                continue
            started, serial = current
            due = next_due.get(serial, started + self.threshold_s)
            now = time.perf_counter()
            if now < due:
                continue
            frame = sys._current_frames().get(self.ui_thread)
            if frame is None or self.current != current:
                continue
            stack = traceback.extract_stack(frame)
            self.samples[serial].append(describe(stack))
            next_due[serial] = now + self.threshold_s


def describe(stack) -> str:
    """The innermost frames of the app's own code and Textual's (what a stall is doing), innermost last."""
    ours = [f for f in stack if "/mlxchat/" in f.filename or "/textual/" in f.filename or "/rich/" in f.filename]
    tail = ours[-6:] if ours else list(stack)[-4:]
    return " > ".join(f"{Path(f.filename).stem}.{f.name}:{f.lineno}" for f in tail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--threshold-ms", type=float, default=25)
    parser.add_argument("--engine", default="process", choices=("process", "thread"))
    args = parser.parse_args()
    model = args.model
    if args.tiny:
        model = str(build_bench_model(Path(tempfile.mkdtemp()) / "tiny", cpu_spec()))
    config = ui_probes.UIBenchConfig(key_max_tokens=args.tokens)
    with StallWatch(args.threshold_ms / 1000) as watch, ui_probes.engine_kind(args.engine):
        numbers = asyncio.run(ui_probes.keypress_latencies(model, config, args.rate))
    label = ui_probes.rate_label(args.rate)
    print(f"keypress at {label}: p50 {numbers[f'key_{label}_p50_ms']:.1f} ms, p99 {numbers[f'key_{label}_p99_ms']:.1f} ms, "
          f"max {numbers[f'key_{label}_max_ms']:.1f} ms (n {numbers[f'key_{label}_probes']}; decode "
          f"{numbers[f'key_{label}_decode_tps']:.0f} tok/s)")
    print(f"\nUI-thread callbacks of {args.threshold_ms:g} ms or more: {len(watch.stalls)}")
    by_where: dict[str, list[float]] = defaultdict(list)
    for _, took, callback, stacks in watch.stalls:
        where = Counter(stacks).most_common(1)[0][0] if stacks else f"(not sampled) {callback}"
        by_where[where].append(took)
    for where, times in sorted(by_where.items(), key=lambda item: -max(item[1])):
        print(f"  {len(times):3d}× longest {max(times) * 1000:6.1f} ms  {where}")
    print("\nslowest 12, in order of time:")
    for at, took, callback, stacks in sorted(watch.stalls, key=lambda s: -s[1])[:12]:
        in_gc = sum(t for _, t, started in watch.collections if at <= started <= at + took)
        print(f"  {took * 1000:6.1f} ms  ({in_gc * 1000:.1f} ms of it collecting garbage)  {callback}")
        for stack in dict.fromkeys(stacks):
            print(f"      {stack}")
    gens = defaultdict(list)
    for (generation, took, _), when in zip(watch.collections, watch.when):
        gens[(when, generation)].append(took)
    print("\ngarbage collections: " + ", ".join(
        f"{g[0]} gen {g[1]}: {len(t)}, longest {max(t) * 1000:.1f} ms, total {sum(t) * 1000:.0f} ms" for g, t in sorted(gens.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
