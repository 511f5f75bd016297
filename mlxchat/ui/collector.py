"""Provides `CollectorPolicy`: Python's garbage collector set for a long-lived app that streams text.

Measured while an answer streamed (BENCHMARKS.md, issue 11): the collector's full collections took 100–470 ms each
at random moments, 11 of them (2.5 s) in one 2,500-token answer, and gen-1 collections up to 211 ms. Any thread's
allocations can start one, and it holds the GIL: the prompt waits to repaint a keypress, and the engine's owner
thread waits between tokens. Nearly everything a collection walks lives as long as the app: the objects Textual and
the screens make at start, and the model's modules made when it loads. `gc.freeze` moves them out of every later
collection, and larger thresholds make collections rarer (memory held by cycles waits a little longer: these
apps' short-lived objects are strings and events, freed by reference counting, not by the collector).

While an answer streams, full (gen-2) collections wait for its end: on this CPU they still took 70–97 ms each,
three in a 15 s answer, and each one is a keypress that waits (`benchmarks/ui_stalls.py`, round 9). The young
generations are still collected, in smaller and so shorter passes, so the answer's short-lived cycles are freed
as it streams. A second after the answer ends, with no other answer streaming, one full collection runs: while the
person reads.

The policy lasts as long as the app: `stop` unfreezes and restores the thresholds, so a process that runs many
apps (the tests) does not keep their objects out of collection.
"""

from __future__ import annotations

import gc
import threading


class CollectorPolicy:
    """Freeze what exists at start and after each model load; collect less often while the app runs."""

    THRESHOLDS = (5000, 20, 100)
    """Python's defaults are (700, 10, 10): a gen-0 pass every 700 allocations net, a full one every 100 of them."""

    enabled = True
    """The UI benchmark turns it off to measure what it buys."""

    ANSWERING_THRESHOLDS = (700, 10, 1_000_000)
    """While an answer streams: no full collection, and Python's own young-generation thresholds, so a young
    collection walks a few thousand objects at most. At (5000, 20) a gen-1 pass took 31–59 ms on this CPU while an
    answer streamed; at (700, 10) the longest took 6–11 ms, for about the same total (`benchmarks/ui_stalls.py`)."""

    def __init__(self) -> None:
        self._saved: tuple[int, int, int] | None = None
        self._answering: set[str] = set()
        self._lock = threading.RLock()  # a finaliser run by a collection may come back here
        """`answering` and `answered` run on the engine's event thread, `start`, `settle` and `stop` elsewhere:
        each reads the state and sets the collector under this lock, so a stop never lands in between."""

    def start(self) -> None:
        with self._lock:
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
        with self._lock:
            if self._saved is not None:
                gc.collect()
                gc.freeze()

    def answering(self, request_id: str) -> None:
        """An answer started streaming: full collections wait for `answered`."""
        with self._lock:
            if self._saved is None:
                return
            self._answering.add(request_id)
            gc.set_threshold(*self.ANSWERING_THRESHOLDS)

    def answered(self, request_id: str) -> bool:
        """An answer (or a request that never started one) ended. True when no answer streams any more: the caller
        then runs `collect_between_answers` a little later."""
        with self._lock:
            if self._saved is None or request_id not in self._answering:
                return False
            self._answering.discard(request_id)
            if self._answering:
                return False
            gc.set_threshold(*self.THRESHOLDS)
            return True

    def collect_between_answers(self) -> None:
        """The full collection the answer held back, unless another answer has started since."""
        with self._lock:
            if self._saved is not None and not self._answering:
                gc.collect()

    def stop(self) -> None:
        with self._lock:
            self._answering.clear()
            if self._saved is None:
                return
            gc.unfreeze()
            gc.set_threshold(*self._saved)
            self._saved = None
