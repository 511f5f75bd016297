"""What slows a fast model's decode beside a busy UI (issue 11): the GIL, or the machine's CPU?

Raw mlx-lm decodes the realistic answer (forced, `RawMlxLm`) on the main thread while something else keeps a CPU
busy for a share of the wall, the way the TUI's UI thread does (23 % on the H200):

  alone        nothing else runs
  thread       a Python thread in this process, busy `--duty` of each 10 ms in pure Python (it takes the GIL: the
               engine on an owner thread beside the UI thread)
  process      the same loop in a separate Python process (no shared GIL: the engine in its own process, as
               `ProcessEngine` runs it); what it still takes is CPU time, memory bandwidth, the OS's scheduling

Variants alternate within each round, so a shared host's drift hits them alike; each prints tok/s and its ratio
to the round's `alone`. It also prints the CPUs this process may run on.

    python benchmarks/contention_probe.py --model /tmp/m/1b --tokens 1500 --rounds 3 --duty 0.25
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from statistics import median

from mlxchat.bench.realistic import REALISTIC_ANSWER
from mlxchat.bench.ui_probes import RawMlxLm

SPIN = """
import sys, time
duty = float(sys.argv[1])
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < 0.010 * duty:
        sum(range(200))
    time.sleep(0.010 * (1 - duty))
"""


def spin_thread(duty: float, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            while time.perf_counter() - start < 0.010 * duty:
                sum(range(200))
            time.sleep(0.010 * (1 - duty))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def measure(raw: RawMlxLm, variant: str, tokens: int, duty: float) -> float:
    stop, child = threading.Event(), None
    if variant == "thread":
        spin_thread(duty, stop)
    elif variant == "process":
        child = subprocess.Popen([sys.executable, "-c", SPIN, str(duty)])
    time.sleep(0.2)
    try:
        return raw.decode_tps(tokens)
    finally:
        stop.set()
        if child is not None:
            child.kill()
            child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duty", type=float, default=0.25)
    parser.add_argument("--variants", default="alone,thread,process")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    print(f"cpus this process may use: {len(cpus)} (os.cpu_count {os.cpu_count()})", flush=True)
    raw = RawMlxLm(args.model, REALISTIC_ANSWER)
    raw.decode_tps(200)  # warm-up
    names, results = args.variants.split(","), {}
    for round_ in range(args.rounds):
        row = {}
        for name in names if round_ % 2 == 0 else names[::-1]:
            row[name] = measure(raw, name, args.tokens, args.duty)
        alone = row.get("alone")
        for name, tps in row.items():
            results.setdefault(name, []).append(tps)
            ratio = f" ÷ alone {tps / alone:.3f}" if alone else ""
            print(f"round {round_} {name:8} {tps:7.1f} tok/s{ratio}", flush=True)
    for name, runs in results.items():
        ratios = [t / a for t, a in zip(runs, results.get("alone", runs))]
        print(f"median {name:8} {median(runs):7.1f} tok/s · ÷ alone {median(ratios):.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"runs": results, "args": vars(args), "cpus": len(cpus)}, out, indent=1)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
