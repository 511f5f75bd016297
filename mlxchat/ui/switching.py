"""Provides `SwitchIntervalPolicy`: how long a thread that wants the GIL waits for the one running Python.

The engine's owner thread spends most of each token waiting for MLX, which releases the GIL while it evaluates.
When the step is done the owner needs the GIL back, and if the UI thread is running Python (it is busy about 30 %
of the time while an answer streams, 7.5 ms a frame on the GPU run, BENCHMARKS.md issue 11), CPython lets the owner
wait up to the switch interval (5 ms by default) before it makes the UI thread drop the GIL. At 300 tok/s a token is
3.3 ms: the wait is a large share of it. `benchmarks/switch_interval.py` shows it without Textual: a GIL-free
3 ms step plus 0.3 ms of Python a step ran at 0.80 of its speed beside a pure-Python thread busy 7 ms bursts at
30 % duty with the 5 ms interval, 0.87 at 1 ms, 0.89 at 0.5 ms and 0.91 at 0.2 ms, while the busy thread's bursts
stretched by 3–11 %. A shorter interval costs a few more GIL hand-offs, each some microseconds.

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
