"""`ProcessEngine` keeps the engine's contract with the engine in a child process: real MLX, the tiny random model.

The TUI runs its local engine through `ProcessEngine` (engine/process.py), so everything the UI relies on from the
in-process `Engine` (tests/engine/test_engine_contract.py) must hold across the socket too: events in the order
the engine emitted them, one `Finished` per accepted request, `Busy` at once, `Draining` before `cancel` returns.
On top of that come the things only a process can get wrong: the child dies (its requests still end, later
calls say why), the parent dies (the child must not live on holding the GPU), `close` must really end the child,
and `submit` must never wait for the child. No fakes: the child builds the real `Engine` from a pickled factory.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from events import EventLog
from mlxchat.engine import (
    Busy,
    Draining,
    Engine,
    EngineClosed,
    Finished,
    PrepareConversation,
    Started,
    TextDelta,
)
from mlxchat.engine.process import ProcessEngine
from process_engines import ENDLESS, SHORT, ask, engines, load  # noqa: F401 (engines: a fixture)

ROUND_TRIP_S = 1.0
"""A generous bound on one call across the socket while the child decodes (2 CPU cores, GIL shared there)."""


@pytest.fixture
def loaded(engines, event_log, tiny_model) -> ProcessEngine:
    """A `ProcessEngine` whose child has the tiny model loaded."""
    engine = engines(event_log, functools.partial(Engine))
    load(engine, event_log, tiny_model)
    return engine


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for a reaper that is not us counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_a_turn_streams_in_order_and_matches_the_in_process_engine(loaded, event_log, tiny_model):
    """The events cross the socket complete and in order (Started, then TextDeltas, then exactly one Finished
    "length"), and the child's engine is the real one: its greedy answer is token for token the in-process
    `Engine`'s on the same model. Catches events reordered or dropped by the reader thread, a Finished sent twice,
    and a child that runs some other engine (or another model, or other sampling) than it was given."""
    request = ask("Hello there")
    assert loaded.submit(request) is None
    finished = event_log.finished(request.request_id)
    events = event_log.of(request.request_id)
    kinds = [type(e) for e in events]
    assert kinds[0] is Started
    assert TextDelta in kinds and kinds.index(Started) < kinds.index(TextDelta)
    assert kinds.count(Finished) == 1 and events[-1] is finished
    assert finished.reason == "length" and finished.usage.generation_tokens == SHORT.max_tokens
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(d.text for d in deltas) == finished.text and finished.text
    assert sum(d.tokens for d in deltas) == SHORT.max_tokens
    state = loaded.state()
    assert state.phase == "idle" and state.model is not None and state.model.name
    assert loaded.waiting_on() is None

    here = EventLog()
    local = Engine(here).start()
    try:
        load(local, here, tiny_model)
        same = ask("Hello there")
        local.submit(same)
        expected = here.finished(same.request_id)
    finally:
        local.close(timeout_s=30)
    assert expected.reason == "length"
    assert finished.text == expected.text, "the child's greedy answer differs from the in-process engine's"


def test_a_request_while_busy_is_refused_at_once_naming_the_active_one(loaded, event_log):
    """While an answer streams, a second `submit` is a round trip the child answers on its main thread, not
    behind the owner thread: `Busy` comes back within a round trip and names the running request; the refused
    request never gets an event, and after the first one ends the engine takes a new request. Catches a refusal
    queued behind decoding (it would take as long as the answer), a Busy lost on the way back (submit returning
    None for a request that never runs), and a refused request left counted as open."""
    first = ask("Keep talking", ENDLESS)
    assert loaded.submit(first) is None
    event_log.wait_for(TextDelta, first.request_id)
    assert first.request_id in loaded.waiting_on()
    assert loaded.state().active_request_id == first.request_id
    second = ask("Me too")
    started = time.perf_counter()
    busy = loaded.submit(second)
    assert time.perf_counter() - started < ROUND_TRIP_S
    assert isinstance(busy, Busy)
    assert busy.refused_request_id == second.request_id
    assert busy.active_request_id == first.request_id and busy.phase == "generating"
    assert loaded.cancel(first.request_id) is True
    assert event_log.finished(first.request_id).reason == "cancelled"
    third = ask("Now me")
    assert loaded.submit(third) is None
    assert event_log.finished(third.request_id).reason == "length"
    assert event_log.of(second.request_id) == [], "a refused request gets no events"
    counts = event_log.terminal_counts()
    assert counts[first.request_id] == counts[third.request_id] == 1 and second.request_id not in counts


def test_cancel_has_draining_in_the_sink_when_it_returns_then_finished_cancelled(loaded, event_log):
    """`cancel` keeps the in-process promise across the socket: the child emits `Draining` before it answers,
    and the reader hands events to the sink before it wakes the caller, so the `Draining` is already in the sink
    when `cancel` returns (the UI greys the answer on it). Then comes one Finished "cancelled" with the text so
    far, and the engine takes the next request. A cancel naming another request, or with nothing running, is
    False. Catches an answer that overtakes its events, and a cancel that never reaches the owner thread."""
    request = ask("Keep talking", ENDLESS)
    assert loaded.submit(request) is None
    event_log.wait_for(TextDelta, request.request_id)
    assert loaded.cancel("chat-not-running") is False
    started = time.perf_counter()
    assert loaded.cancel(request.request_id) is True
    assert time.perf_counter() - started < ROUND_TRIP_S
    seen = [e for e in event_log.drain() if e.request_id == request.request_id]
    assert any(isinstance(e, Draining) and e.reason == "cancel" for e in seen), "Draining after cancel returned"
    finished = event_log.finished(request.request_id)
    assert finished.reason == "cancelled" and finished.text
    events = event_log.of(request.request_id)
    assert [type(e) for e in events].count(Finished) == 1 and events[-1] is finished
    assert finished.text == "".join(e.text for e in events if isinstance(e, TextDelta))
    assert loaded.cancel() is False, "nothing runs any more"
    after = ask("Again")
    assert loaded.submit(after) is None
    assert event_log.finished(after.request_id).reason == "length"


def test_the_child_dying_mid_answer_ends_its_request_and_closes_the_engine(engines, event_log, tiny_model, tmp_path):
    """The OOM killer or a GPU abort takes the child mid-answer: the open request still ends, once, with an error
    that says the engine process stopped and how (SIGKILL) and where its log is; a request refused just before
    gets nothing; later submits raise `EngineClosed` with the same words, the other calls answer without a
    child, and `close` returns at once. Catches a UI left waiting forever on a dead child, a second Finished, a
    Finished for a refused request, and calls that wait out the answer timeout on a dead socket."""
    log_path = tmp_path / "logs" / "engine.log"
    engine = engines(event_log, Engine, log_path=log_path)
    load(engine, event_log, tiny_model)
    request = ask("Keep talking", ENDLESS)
    assert engine.submit(request) is None
    event_log.wait_for(TextDelta, request.request_id)
    refused = ask("Me too")
    assert isinstance(engine.submit(refused), Busy)
    os.kill(engine.process.pid, signal.SIGKILL)
    finished = event_log.finished(request.request_id, timeout_s=15)
    assert finished.reason == "error"
    assert "The engine process stopped" in finished.error and "killed by SIGKILL" in finished.error
    assert str(log_path) in finished.error
    assert log_path.exists()
    with pytest.raises(EngineClosed) as closed:
        engine.submit(ask("Anyone there?"))
    assert str(closed.value) == finished.error
    started = time.perf_counter()
    assert engine.cancel() is False
    assert engine.state().phase == "closed"
    assert engine.waiting_on() is None
    engine.prepare(PrepareConversation("chat-1"))
    engine.close(timeout_s=30)
    assert time.perf_counter() - started < 2.0
    time.sleep(0.2)
    assert event_log.terminal_counts().get(request.request_id) == 1
    assert event_log.of(refused.request_id) == [], "a refused request gets no events, even when the child dies"
    assert engine.process.returncode == -signal.SIGKILL


def test_close_ends_the_child_and_a_second_close_is_harmless(engines, event_log, tiny_model):
    """`close` mid-answer ends the answer as the in-process engine does (Draining "shutdown", one Finished
    "shutdown", both in the sink when close returns), and the child has exited with code 0 by then: it does not
    outlive the app holding the model's memory. The child ignores SIGINT (a Ctrl+C in the terminal reaches its
    old process group, not the app's choice). Closing again returns at once, and submit raises `EngineClosed`.
    Catches a close that only asks, a child that needs killing, and a spurious error Finished for a request
    ended by the close when the child's socket then closes."""
    # Started with SIGINT handled here, as in a terminal (a shell's background job would hand the child SIGINT
    # already ignored, and the test would prove nothing about the child's own choice).
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        engine = engines(event_log, Engine)
    finally:
        signal.signal(signal.SIGINT, handler)
    load(engine, event_log, tiny_model)
    os.kill(engine.process.pid, signal.SIGINT)
    request = ask("Keep talking", ENDLESS)
    assert engine.submit(request) is None
    event_log.wait_for(TextDelta, request.request_id)
    assert engine.close(timeout_s=30) is True
    assert engine.process.returncode == 0
    seen = [e for e in event_log.drain() if e.request_id == request.request_id]
    assert any(isinstance(e, Draining) and e.reason == "shutdown" for e in seen)
    assert [e.reason for e in seen if isinstance(e, Finished)] == ["shutdown"]
    started = time.perf_counter()
    engine.close(timeout_s=30)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(EngineClosed):
        engine.submit(ask("After close"))
    assert engine.state().phase == "closed"
    time.sleep(0.2)
    assert event_log.terminal_counts()[request.request_id] == 1


PARENT = textwrap.dedent(
    """
    import queue, sys, time
    from mlxchat.engine import ChatRequest, Engine, Finished, LoadModel, Message, SamplingParams, TextDelta
    from mlxchat.engine.process import ProcessEngine

    events = queue.SimpleQueue()
    engine = ProcessEngine(events.put, Engine).start()

    def until(kind, request_id):
        while True:
            event = events.get(timeout=60)
            if isinstance(event, kind) and event.request_id == request_id:
                return event

    load = LoadModel(sys.argv[1])
    engine.submit(load)
    assert until(Finished, load.request_id).reason == "stop"
    endless = ChatRequest((Message("user", "Go on"),), sampling=SamplingParams(temperature=0, max_tokens=10**6))
    engine.submit(endless)
    until(TextDelta, endless.request_id)
    print(engine.process.pid, flush=True)
    time.sleep(600)
    """
)


def test_the_child_exits_by_itself_when_its_parent_is_killed(tiny_model):
    """The app is SIGKILLed (or crashes) mid-answer without closing the engine: the child, in a session of its
    own so no signal reaches it, sees its socket end and stops within seconds instead of decoding on for ever
    with the model in memory. Catches a child that only stops when told to, or whose socket end is inherited
    somewhere that keeps it open."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tiny_model)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    child = None
    try:
        line = parent.stdout.readline()
        if not line.strip().isdigit():
            parent.kill()
            _, err = parent.communicate(timeout=10)
            pytest.fail(f"the parent script said {line!r}:\n{err}")
        child = int(line)
        assert alive(child)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the engine process outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)


def test_an_unwritable_log_path_still_starts_the_engine(engines, event_log, tmp_path, caplog):
    """The log is a convenience: a log path that cannot be made (under a regular file here; a read-only or full
    disk in life) is warned about and the child's output discarded, and the engine starts and answers anyway.
    Catches the TUI failing to start its engine over its log file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with caplog.at_level("WARNING", logger="mlxchat.engine.process"):
        engine = engines(event_log, Engine, log_path=blocker / "engine.log")
    assert engine.log_path is None
    assert any("cannot be written" in r.getMessage() for r in caplog.records)
    request = ask("Hello")
    assert engine.submit(request) is None
    assert event_log.finished(request.request_id).reason == "error"
    assert engine.process.poll() is None


def test_submit_while_idle_never_waits_for_the_child_and_what_it_cannot_run_still_ends(engines, event_log):
    """A click must never wait for the child (nor its start-up, the first model load): with the child stopped
    (SIGSTOP) before it has read anything, an idle `submit` still returns None at once. When the child runs
    again, a chat with no model loaded ends with one Finished "error" saying so, word for word the in-process
    engine's; a non-request given to `submit` (a `PrepareConversation`) also ends, with one Finished "error",
    since it was counted as accepted. Catches a submit that round-trips to the child (it would wait the whole
    answer timeout here), and a request the child refuses or fails on that never ends."""
    engine = engines(event_log, Engine, answer_timeout_s=3.0)
    os.kill(engine.process.pid, signal.SIGSTOP)
    try:
        request = ask("Hello")
        started = time.perf_counter()
        assert engine.submit(request) is None
        assert time.perf_counter() - started < 0.5
    finally:
        os.kill(engine.process.pid, signal.SIGCONT)
    finished = event_log.finished(request.request_id)

    here = EventLog()
    local = Engine(here).start()
    try:
        same = ask("Hello")
        local.submit(same)
        expected = here.finished(same.request_id)
    finally:
        local.close(timeout_s=30)
    assert (finished.reason, finished.error) == (expected.reason, expected.error)
    assert finished.reason == "error" and "No model is loaded" in finished.error

    odd = PrepareConversation("chat-1")
    assert engine.submit(odd) is None
    failed = event_log.finished(odd.request_id)
    assert failed.reason == "error" and "not an engine request" in failed.error
    time.sleep(0.2)
    assert event_log.terminal_counts() == {request.request_id: 1, odd.request_id: 1}
    assert engine.state().phase == "idle"


def test_two_threads_submitting_at_once_each_get_busy_or_a_finished(loaded, event_log):
    """Two threads submit at once (the in-process engine's submit is atomic: one is accepted, the other gets
    Busy). The race is forced by delaying the posted submit's queueing by 0.5 s, as a preempted thread would be.
    Every submit that returned None must end with exactly one Finished; a Busy one gets no events."""
    outbox = loaded._outbox

    class SlowOutbox:
        """The engine's outbox, whose first `put` (the posted submit) takes half a second."""

        delayed = False

        def put(self, message):
            if not self.delayed:
                self.delayed = True
                time.sleep(0.5)
            outbox.put(message)

        def get(self):
            return outbox.get()

    loaded._outbox = SlowOutbox()
    first = ask("Keep talking", ENDLESS)
    second = ask("Me too", ENDLESS)
    answers: dict[str, object] = {}
    thread = threading.Thread(target=lambda: answers.__setitem__("first", loaded.submit(first)))
    thread.start()
    time.sleep(0.1)
    answers["second"] = loaded.submit(second)
    thread.join()
    time.sleep(0.3)
    for request in (first, second):
        loaded.cancel(request.request_id)
    for name, request in (("first", first), ("second", second)):
        if isinstance(answers[name], Busy):
            assert event_log.of(request.request_id) == []
        else:
            assert answers[name] is None
            assert event_log.finished(request.request_id, timeout_s=5).reason in ("cancelled", "length")


def _unpicklable_factory():
    return lambda sink: Engine(sink)


def test_close_after_a_failed_start_returns_at_once(event_log):
    """A factory that does not pickle makes `start` raise (the caller's mistake, said at once); the caller's
    `close` in its cleanup must then return at once and leave no child behind, not wait for an answer that no
    reader thread will ever see."""
    engine = ProcessEngine(event_log, _unpicklable_factory(), answer_timeout_s=1.5)
    try:
        with pytest.raises(Exception, match="pickle"):
            engine.start()
        started = time.perf_counter()
        engine.close(timeout_s=1.5)
        assert time.perf_counter() - started < 1.0, "close waited for an answer nobody reads"
        assert engine.process.poll() is not None
    finally:
        if engine.process is not None and engine.process.poll() is None:
            engine.process.kill()
            engine.process.wait()


def test_waiting_on_a_child_that_does_not_answer_waits_a_second_and_keeps_it(engines, event_log):
    """`waiting_on` is asked on the UI thread while the person waits for a slow quit: with the child stopped it
    must come back within about a second with words that say so, not hold the screen for the whole answer
    timeout, and not treat the child as gone (a close is already under way): running again, it answers."""
    engine = engines(event_log, Engine, answer_timeout_s=20.0)
    assert engine.waiting_on() is None  # idle, and the child is up
    os.kill(engine.process.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        said = engine.waiting_on()
        assert time.perf_counter() - started < 2.0
        assert "not answered" in said
    finally:
        os.kill(engine.process.pid, signal.SIGCONT)
    assert engine.waiting_on() is None
    assert engine.state().phase == "idle"
