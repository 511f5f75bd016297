"""Provides `FrameBudget`: how often streamed text may be drawn, one rule for the answer and the thinking (issue 11).

A fast model sends text as often as the engine batches it (~30 ms). Drawing each batch as its own screen update keeps
the UI thread busy in Python, holding the GIL that the engine's owner thread needs between tokens, and nobody reads
a word every 30 ms. So what streams (the answer's `AnswerStream`, the live `ThinkingBlock`) is drawn at most once per
frame interval, and what arrives in between is coalesced into the next draw:

- `frame_interval_s` apart (25 draws a second) while text arrives at about reading speed, and `fast_interval_s`
  apart (10 a second) once it arrives faster than `fast_chars_per_s` (about 100 tok/s);
- further apart while the UI thread is busy: twice its CPU time since the last draw, up to `max_interval_s`, so
  drawing never takes more than about half the thread;
- never closer than `screen_gap_s`, in which the screen can draw (an update may hold the screen's drawing).

No Textual widget here, only the clock: the rule is tested with plain values, and the thinking block, which the
conversation imports with the first frame, does not pull in the Markdown with it.
"""

from __future__ import annotations

import time
from collections import deque

from textual.constants import MAX_FPS


class ArrivalRate:
    """How fast text arrives, in characters a second over the last `window_s` (0 until `min_span_s` is seen).

    Characters, not tokens: what matters for the frame rate is how fast text outpaces a reader, and it needs no
    tokenizer (3–4 characters make a token of English or code)."""

    window_s = 1.0
    min_span_s = 0.2

    def __init__(self) -> None:
        self.total = 0
        self._marks: deque[tuple[float, int]] = deque()

    def note(self, chars: int, now: float) -> None:
        self.total += chars
        self._marks.append((now, self.total))
        while len(self._marks) > 2 and now - self._marks[1][0] >= self.window_s:
            self._marks.popleft()

    def chars_per_s(self, now: float) -> float:
        if not self._marks:
            return 0.0
        since, chars = self._marks[0]
        span = now - since
        return (self.total - chars) / span if span >= self.min_span_s else 0.0


class FrameBudget:
    """The time one stream waits between two draws (see the module docstring). One per stream: it follows that
    stream's arrivals and the UI thread's CPU time since that stream last drew."""

    frame_interval_s = 0.04
    """The frame budget while text arrives at about reading speed (25 draws a second)."""
    fast_interval_s = 0.1
    """The frame budget once text arrives faster than `fast_chars_per_s` (10 draws a second)."""
    fast_chars_per_s = 400.0
    """About 100 tok/s: several times faster than anyone reads, so fewer, larger draws look the same."""
    max_interval_s = 0.2
    """The most a busy UI thread stretches the budget to."""
    screen_gap_s = 2 / MAX_FPS
    """The least time between two draws, in which the screen may draw: two of its update periods (Textual's screen
    timer runs at `MAX_FPS`), so one is due inside the gap whatever its phase."""

    def __init__(self, frame_interval_s: float | None = None) -> None:
        if frame_interval_s is not None:
            self.frame_interval_s = frame_interval_s
        self.arrivals = ArrivalRate()
        self._cpu_mark = time.thread_time()

    def note(self, chars: int) -> None:
        """`chars` characters arrived now."""
        self.arrivals.note(chars, time.perf_counter())

    def interval_s(self) -> float:
        """The frame interval from this draw to the next: `fast_interval_s` while text outpaces reading, else
        `frame_interval_s`; stretched while this (the UI) thread is busy to twice the CPU time it spent since the
        last call, up to `max_interval_s`, so the engine's owner thread gets the GIL between tokens."""
        now = time.thread_time()
        busy_s, self._cpu_mark = now - self._cpu_mark, now
        if not self.frame_interval_s:
            return 0.0
        fast = self.arrivals.chars_per_s(time.perf_counter()) > self.fast_chars_per_s
        budget = max(self.frame_interval_s, self.fast_interval_s) if fast else self.frame_interval_s
        return max(budget, min(self.max_interval_s, 2 * busy_s))

    def rest_s(self, started: float) -> float:
        """How long to wait, from now, before the next draw, after a draw that began at `started` (`perf_counter`):
        what is left of the frame interval, and never less than `screen_gap_s` (a draw slower than its budget
        followed at once by the next would leave the screen no moment to draw)."""
        return max(self.screen_gap_s, self.interval_s() - (time.perf_counter() - started))
