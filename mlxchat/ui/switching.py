"""Provides `SwitchIntervalPolicy`: how long a thread that wants the GIL waits for the one running Python.

The engine's owner thread spends most of each token waiting for MLX, which releases the GIL while it evaluates.
When the step is done the owner needs the GIL back, and if the UI thread is running Python (it is busy about 30 %
of the time while an answer streams, 7.5 ms a frame on the GPU run, BENCHMARKS.md issue 11), CPython lets the owner
wait up to the switch interval (5 ms by default) before it makes the UI thread drop the GIL. At 300 tok/s a token is
3.3 ms: the wait is a large share of it. `benchmarks/switch_interval.py` shows it without Textual, on a CPU, beside
a pure-Python thread busy in 7 ms bursts at 30 % duty (the UI's share on the GPU). An owner that waits 3 ms GIL-free,
then runs 0.3 ms of Python, kept 0.80 of its speed at the 5 ms interval, 0.87 at 1 ms, 0.89 at 0.5 ms, 0.91 at
0.2 ms (quiet machine), the busy thread's bursts 3–11 % longer. One that overlaps its Python with the device step, as
mlx-lm's `generate_step` does, kept 0.78 at 5 ms (the GPU run's TUI ÷ raw was 0.738) and 0.95 at 1 and 0.5 ms, 0.96 at
0.2 ms (load 2.6). Below 1 ms little more is won, and each forced switch costs the UI thread a hand-off: 0.5 ms.
Through the app (`ui_bench --tiny`, CPU) the keypress → repaint tail stayed in the range it has without the policy.
Not yet measured on the GPU, where it matters: `benchmarks/gpu_switch_interval.sh` compares off, 0.5 and 0.2 ms.

The policy holds while both threads live (from the engine's start to the app's unmount, after the engine has
closed) and `stop` restores the interval it found, so a process that runs many apps (the tests) gets its own back.
"""

from __future__ import annotations

import sys


class SwitchIntervalPolicy:
    """A short switch interval while the app runs, so the owner thread gets the GIL back soon after each step."""

    interval_s = 0.0005
    """The interval while the app runs (Python's default is 0.005). The UI benchmark sets it to compare values."""

    enabled = True
    """The UI benchmark turns it off to measure what it buys."""

    def __init__(self) -> None:
        self._saved: float | None = None

    def start(self) -> None:
        if not self.enabled or self._saved is not None:
            return
        self._saved = sys.getswitchinterval()
        sys.setswitchinterval(self.interval_s)

    def stop(self) -> None:
        if self._saved is None:
            return
        sys.setswitchinterval(self._saved)
        self._saved = None
