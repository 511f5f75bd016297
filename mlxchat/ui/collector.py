"""Provides `CollectorPolicy`: Python's garbage collector set for a long-lived app that streams text.

Measured while an answer streamed (BENCHMARKS.md, issue 11): the collector's full collections took 100–470 ms each
at random moments, 11 of them (2.5 s) in one 2,500-token answer, and gen-1 collections up to 211 ms. Any thread's
allocations can start one, and it holds the GIL: the prompt waits to repaint a keypress, and the engine's owner
thread waits between tokens. Nearly everything a collection walks lives as long as the app: the objects Textual and
the screens make at start, and the model's modules made when it loads. `gc.freeze` moves them out of every later
collection, and larger thresholds make collections rarer (memory held by cycles waits a little longer: these
apps' short-lived objects are strings and events, freed by reference counting, not by the collector).

The policy lasts as long as the app: `stop` unfreezes and restores the thresholds, so a process that runs many
apps (the tests) does not keep their objects out of collection.
"""

from __future__ import annotations

import gc


class CollectorPolicy:
    """Freeze what exists at start and after each model load; collect less often while the app runs."""

    THRESHOLDS = (5000, 20, 100)
    """Python's defaults are (700, 10, 10): a gen-0 pass every 700 allocations net, a full one every 100 of them."""

    enabled = True
    """The UI benchmark turns it off to measure what it buys."""

    def __init__(self) -> None:
        self._saved: tuple[int, int, int] | None = None

    def start(self) -> None:
        if not self.enabled or self._saved is not None:
            return
        self._saved = gc.get_threshold()
        gc.set_threshold(*self.THRESHOLDS)
        gc.freeze()

    def settle(self) -> None:
        """Called once a model has loaded: its modules and weights' wrappers live until it is unloaded.

        Garbage is collected first: a frozen object is never collected again, so a cycle left by the model this
        load replaced (and the memory its arrays hold) must not be frozen with the rest. One full collection per
        model load, while the load's own seconds are on screen."""
        if self._saved is not None:
            gc.collect()
            gc.freeze()

    def stop(self) -> None:
        if self._saved is None:
            return
        gc.unfreeze()
        gc.set_threshold(*self._saved)
        self._saved = None
