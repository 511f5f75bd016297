"""Does the GIL hand-off, not the UI's CPU, cost the decode its speed? Owner-thread step rate against a UI-like thread.

A pure-Python "UI" thread runs busy bursts (default 7 ms of work, 30 % duty: a frame's worth of Textual work, as
the GPU run measured) while an owner thread decodes. The owner releases the GIL while it waits for its step
(MLX does during eval), then needs the GIL back to go on; if the UI thread holds it, CPython makes the owner wait
up to the switch interval before it forces a drop. Reported per switch interval (alternating, `--rounds` rounds):
the owner's steps/s with the UI thread running ÷ alone, and the UI bursts' wall time ÷ their time alone.

Owners:
- `sleep`: the GPU's wait stood in by a GIL-free sleep of `--step-ms` plus `--python-ms` of Python per step (what
  generate_step and the detokenizer do). No CPU contention: the GIL alone is measured, as on the GPU machine.
- `pipelined`: as mlx-lm's `generate_step` runs, the next step's graph (`--python-ms` of Python) is built while
  the device runs the step queued before (`--step-ms`, GIL-free): the Python is off the critical path unless the
  GIL is late.
- `mlx`: mlx-lm's real `generate_step` on a random llama (`--hidden`, `--layers`) on this machine's default device.
  On a CPU, MLX's eval uses the cores the UI thread also wants.

Run: python benchmarks/switch_interval.py [--owner sleep|pipelined|mlx|both] [--intervals 5,2,1,0.5,0.2] [--json PATH]
On the GPU, with the app's own numbers beside it: benchmarks/gpu_switch_interval.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate(ms: float) -> int:
    """Loop count whose `_spin` takes `ms` alone (median of a few tries)."""
    n = 20_000
    while True:
        started = time.perf_counter()
        _spin(n)
        took = time.perf_counter() - started
        if took > 0.02:
            break
        n *= 2
    per_ms = n / (took * 1000)
    tries = []
    for _ in range(5):
        count = int(per_ms * ms)
        started = time.perf_counter()
        _spin(count)
        tries.append((time.perf_counter() - started) * 1000)
    return int(per_ms * ms * ms / statistics.median(tries))


class UiThread:
    """Busy bursts of `spin` loops, each followed by a sleep that makes the duty `duty` (its wall time stretches
    when the owner holds the GIL, so the measured duty is what the owner meets)."""

    def __init__(self, spin: int, burst_ms: float, duty: float) -> None:
        self.spin = spin
        self.idle_s = burst_ms * (1 - duty) / duty / 1000
        self.bursts: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            _spin(self.spin)
            self.bursts.append((time.perf_counter() - started) * 1000)
            time.sleep(self.idle_s)

    def __enter__(self) -> "UiThread":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def sleep_owner(step_ms: float, python_ms: float, steps: int):
    python_spin = calibrate(python_ms) if python_ms > 0 else 0

    def run() -> float:
        started = time.perf_counter()
        for _ in range(steps):
            time.sleep(step_ms / 1000)  # releases the GIL, as MLX's eval does
            _spin(python_spin)
        return steps / (time.perf_counter() - started)

    return run


def pipelined_owner(step_ms: float, python_ms: float, steps: int):
    """As mlx-lm's `generate_step` runs: build step n+1's graph (Python), queue it, then wait (GIL-free) for step n.
    The device stays busy while the Python of each step ends before the queued step does."""
    python_spin = calibrate(python_ms) if python_ms > 0 else 0

    def run() -> float:
        started = device_free_at = time.perf_counter()
        for _ in range(steps):
            _spin(python_spin)  # the next step's graph
            done_at = device_free_at  # the step queued last time
            device_free_at = max(time.perf_counter(), device_free_at) + step_ms / 1000
            wait = done_at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)  # `y.item()`: MLX waits with the GIL released
        return steps / (time.perf_counter() - started)

    return run


def mlx_owner(hidden: int, layers: int, steps: int, folder: Path, model_path: str | None = None):
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    from mlxchat.models.random_weights import RandomLlamaSpec, build_random_llama

    if model_path is None:
        spec = RandomLlamaSpec(
            hidden_size=hidden, num_hidden_layers=layers, intermediate_size=hidden * 4,
            num_attention_heads=max(hidden // 64, 1), num_key_value_heads=max(hidden // 128, 1), vocab_size=4096,
        )
        build_random_llama(folder, spec)
    model, _ = load(model_path or str(folder))
    prompt = mx.array([1, 2, 3, 4, 5, 6, 7, 8])

    def run() -> float:
        times = []
        for _ in generate_step(prompt, model, max_tokens=steps):
            times.append(time.perf_counter())
        return (len(times) - 1) / (times[-1] - times[0])

    return run


def measure(name: str, owner, intervals: list[float], rounds: int, ui_spin: int, burst_ms: float, duty: float) -> dict:
    owner()  # warm-up
    rows: dict[float, dict[str, list[float]]] = {ms: {"alone": [], "with_ui": [], "stretch": [], "ui_duty": []} for ms in intervals}
    for round_index in range(rounds):
        order = intervals if round_index % 2 == 0 else intervals[::-1]
        for ms in order:
            sys.setswitchinterval(ms / 1000)
            alone = owner()
            with UiThread(ui_spin, burst_ms, duty) as ui:
                started = time.perf_counter()
                with_ui = owner()
                wall = time.perf_counter() - started
            row = rows[ms]
            row["alone"].append(alone)
            row["with_ui"].append(with_ui)
            row["stretch"].append(statistics.median(ui.bursts) / burst_ms if ui.bursts else float("nan"))
            row["ui_duty"].append(sum(ui.bursts) / 1000 / wall)
    sys.setswitchinterval(0.005)
    result = {}
    print(f"\n{name}: owner steps/s alone vs with a UI thread ({burst_ms:g} ms bursts, {duty:.0%} duty), medians of {rounds}")
    print(f"{'switch ms':>10} {'alone':>10} {'with UI':>10} {'ratio':>7} {'UI stretch':>11} {'UI duty':>8}")
    for ms in intervals:
        row = rows[ms]
        ratios = [w / a for w, a in zip(row["with_ui"], row["alone"])]
        summary = {
            "alone_steps_s": statistics.median(row["alone"]),
            "with_ui_steps_s": statistics.median(row["with_ui"]),
            "ratio": statistics.median(ratios),
            "ratios": ratios,
            "ui_burst_stretch": statistics.median(row["stretch"]),
            "ui_duty": statistics.median(row["ui_duty"]),
        }
        result[str(ms)] = summary
        print(
            f"{ms:>10g} {summary['alone_steps_s']:>10.1f} {summary['with_ui_steps_s']:>10.1f} {summary['ratio']:>7.3f}"
            f" {summary['ui_burst_stretch']:>10.2f}x {summary['ui_duty']:>8.0%}"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--owner", choices=("sleep", "pipelined", "mlx", "both"), default="both", help="both: sleep and pipelined")
    parser.add_argument("--intervals", default="5,2,1,0.5,0.2", help="switch intervals in ms")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst-ms", type=float, default=7.0)
    parser.add_argument("--duty", type=float, default=0.3)
    parser.add_argument("--step-ms", type=float, default=3.0, help="sleep owner: GIL-free wait per step (3.3 ms = 300 tok/s)")
    parser.add_argument("--python-ms", type=float, default=0.3, help="sleep owner: Python per step")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--model", default=None, help="mlx owner: this model folder instead of a random llama")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    intervals = [float(ms) for ms in args.intervals.split(",")]
    ui_spin = calibrate(args.burst_ms)
    numbers: dict = {"switch_interval_default_ms": sys.getswitchinterval() * 1000, "burst_ms": args.burst_ms, "duty": args.duty}
    if args.owner in ("sleep", "both"):
        owner = sleep_owner(args.step_ms, args.python_ms, args.steps)
        numbers["sleep"] = measure(
            f"sleep owner ({args.step_ms:g} ms GIL-free + {args.python_ms:g} ms Python a step)",
            owner, intervals, args.rounds, ui_spin, args.burst_ms, args.duty,
        )
    if args.owner in ("pipelined", "both"):
        owner = pipelined_owner(args.step_ms, args.python_ms, args.steps)
        numbers["pipelined"] = measure(
            f"pipelined owner ({args.step_ms:g} ms device step, {args.python_ms:g} ms Python a step overlapping it)",
            owner, intervals, args.rounds, ui_spin, args.burst_ms, args.duty,
        )
    if args.owner == "mlx":
        import mlx.core as mx

        with tempfile.TemporaryDirectory(prefix="switch-interval-") as tmp:
            owner = mlx_owner(args.hidden, args.layers, args.steps, Path(tmp), args.model)
            shape = Path(args.model).name if args.model else f"hidden {args.hidden}, {args.layers} layers"
            numbers["mlx"] = measure(
                f"mlx-lm generate_step ({shape}, {mx.default_device()})",
                owner, intervals, args.rounds, ui_spin, args.burst_ms, args.duty,
            )
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    sys.stdout.flush()
    os._exit(0)  # no MLX teardown at interpreter exit (NOTES-MLX.md)


if __name__ == "__main__":
    main()
