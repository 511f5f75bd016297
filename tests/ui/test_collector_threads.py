"""The collector policy across threads (review, round 9): its answer bookkeeping (mlxchat/ui/collector.py,
app.py `_engine_sink`).

`answering`/`answered` run on the engine's thread (or the ProcessEngine's reader thread); `stop` runs on the UI
thread in `MlxChatApp.on_unmount`. Each of the first two checked `_saved` and then set the process-wide thresholds
with no lock, so a `stop` that landed between the check and the set left the thresholds changed after the app had
given them back (e.g. `engine.close(timeout_s=10)` timed out with a turn still running, which then starts or ends
while the UI thread runs `stop`). The interleaving is forced here at exactly that point; the policy's lock now makes
the `stop` wait for the set."""

from __future__ import annotations

import gc
import threading

import pytest

import mlxchat.ui.collector as collector_module
from mlxchat.ui.collector import CollectorPolicy


class _RacingGc:
    """`gc` for the collector module: the engine thread's `set_threshold(*to)` waits until the UI thread's `stop`
    has run, as a thread switch between the policy's check and its set would."""

    def __init__(self, to: tuple[int, int, int]) -> None:
        self.to = to
        self.checked = threading.Event()
        self.stopped = threading.Event()
        self.engine_thread: int | None = None

    def __getattr__(self, name):
        return getattr(gc, name)

    def set_threshold(self, *thresholds: int) -> None:
        if threading.get_ident() == self.engine_thread and thresholds == self.to:
            self.checked.set()
            self.stopped.wait(5)
        gc.set_threshold(*thresholds)


@pytest.mark.parametrize("event", ["answering", "answered"])
def test_an_answer_starting_or_ending_as_the_app_stops_leaves_the_thresholds_given_back(monkeypatch, event):
    before = gc.get_threshold()
    policy = CollectorPolicy()
    policy.start()
    if event == "answered":
        policy.answering("chat-1")
    racing = _RacingGc(CollectorPolicy.ANSWERING_THRESHOLDS if event == "answering" else CollectorPolicy.THRESHOLDS)
    monkeypatch.setattr(collector_module, "gc", racing)

    def engine_thread() -> None:
        racing.engine_thread = threading.get_ident()
        getattr(policy, event)("chat-1")

    thread = threading.Thread(target=engine_thread)
    try:
        thread.start()
        assert racing.checked.wait(5)
        stopper = threading.Thread(target=policy.stop)  # the UI thread's on_unmount
        stopper.start()
        stopper.join(0.2)  # it stops now, or waits for the engine thread's check-and-set to finish
        racing.stopped.set()
        thread.join(5)
        stopper.join(5)
        assert gc.get_threshold() == before, f"left at {gc.get_threshold()} after the app gave back {before}"
    finally:
        racing.stopped.set()
        thread.join(5)
        gc.set_threshold(*before)
