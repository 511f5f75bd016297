"""Adversarial review of `ProcessEngine` (engine/process.py): real MLX in a real child, the tiny random model.

tests/engine/test_process_engine.py checks the contract on the paths the TUI takes every day; these tests go
after the edges a process adds: a call that never gets its answer (the child stopped, dying, or the answer
queued behind events the sink is slow to take), a request bigger than the socket's buffers, a consumer that asks
the engine something from inside its sink, a child that cannot build its engine, and `start` called twice. Each
was a real bug when the review found it (a strict xfail then); all are fixed, and each test fails on the code
before its fix.
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time

import pytest

from events import EventLog
from mlxchat.engine import (
    Engine,
    EngineClosed,
    Finished,
    SamplingParams,
    TextDelta,
)
from process_engines import ENDLESS, READER, ask, engines, load  # noqa: F401 (engines: a fixture)


def in_thread(fn, results: dict, name: str) -> threading.Thread:
    """Runs `fn` on a thread of its own; its value (or the exception it raised) lands in `results[name]`."""

    def run():
        try:
            results[name] = fn()
        except BaseException as exc:  # the test looks at what came out, whatever it was
            results[name] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_cancel_and_state_asked_while_the_child_dies_answer_instead_of_raising(engines, event_log, tiny_model):
    """The person presses Escape (cancel) and the status line asks `state()` just as the child dies (the OOM killer
    mid-answer; here: stopped, then SIGKILLed while both calls wait). A moment later both calls answer without a
    child (False, phase "closed"), so they must answer the same way while it dies: the chat screen calls
    `engine.cancel` on the UI thread with no `except EngineClosed`, so a raise there is a crash of the app."""
    engine = engines(event_log, Engine, answer_timeout_s=20.0)
    load(engine, event_log, tiny_model)
    request = ask("Keep talking", ENDLESS)
    assert engine.submit(request) is None
    event_log.wait_for(TextDelta, request.request_id)
    os.kill(engine.process.pid, signal.SIGSTOP)
    results: dict = {}
    threads = [
        in_thread(lambda: engine.cancel(request.request_id), results, "cancel"),
        in_thread(engine.state, results, "state"),
    ]
    time.sleep(0.3)  # both calls are waiting for answers the stopped child will never send
    os.kill(engine.process.pid, signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=10)
    assert event_log.finished(request.request_id, timeout_s=10).reason == "error"
    assert results["cancel"] in (True, False), f"cancel raised {results['cancel']!r}"
    assert getattr(results["state"], "phase", None) == "closed", f"state gave {results['state']!r}"


def test_a_call_that_times_out_behind_a_slow_sink_leaves_one_finished_per_request(engines, tiny_model):
    """Answers travel in the same stream as events, so a call's answer waits behind every event the sink has not
    taken yet. Here the sink holds the reader on the first event of an answer (a consumer that stalls) while
    the child finishes the whole answer; `state()` then times out, the engine is treated as gone and the request
    is ended with an error. The events already in the socket must not follow it: no event after a request's
    `Finished`, and exactly one `Finished`."""
    event_log = EventLog()
    stalled = threading.Event()
    release = threading.Event()

    def sink(event):
        if stalled.is_set() and threading.current_thread().name == READER:
            release.wait(10)
        event_log(event)

    engine = engines(sink, Engine, answer_timeout_s=0.8)
    load(engine, event_log, tiny_model)
    request = ask("Hello there", SamplingParams(temperature=0.0, max_tokens=16))
    stalled.set()
    assert engine.submit(request) is None
    time.sleep(1.0)  # the child decodes the 16 tokens and sends its Finished; the reader waits in the sink
    assert engine.state().phase == "closed"  # its answer is behind the events: the call times out, the child is gone
    release.set()
    time.sleep(0.5)  # the reader delivers what it had read
    events = event_log.drain()
    of_request = [e for e in events if getattr(e, "request_id", None) == request.request_id]
    finished_at = [i for i, e in enumerate(of_request) if isinstance(e, Finished)]
    assert len(finished_at) == 1, f"{len(finished_at)} Finished events: {[of_request[i] for i in finished_at]}"
    assert finished_at[0] == len(of_request) - 1, f"events after Finished: {of_request[finished_at[0] + 1 :]}"


def test_submitting_a_large_request_never_waits_for_the_child(engines, event_log):
    """A pasted document of a few MB is an ordinary chat. `submit` while idle promises never to wait for the child,
    but a request larger than the socket's buffers (about 200 KB) is written only as fast as the child's main
    thread reads it, and that thread may not be reading: waiting to send an answer behind events the parent's
    sink is slow to take, starved of its GIL, or stopped (as here, to make it deterministic). Nothing bounds the
    write, and it holds `_send_lock`, so `close` (the app's exit path) waits behind it too. (Right after `start`
    a 10 MB submit took 0.11 s here: the child reads at once while MLX loads on its owner thread.)"""
    engine = engines(event_log, Engine, answer_timeout_s=20.0)
    assert engine.state().phase == "idle"  # the child is up and serving
    big = ask("word " * 2_000_000)  # 10 MB of text
    os.kill(engine.process.pid, signal.SIGSTOP)
    results: dict = {}
    try:
        thread = in_thread(lambda: engine.submit(big), results, "submit")
        thread.join(timeout=2.0)
        assert "submit" in results, "submit of a 10 MB request waited for the stopped child"
    finally:
        os.kill(engine.process.pid, signal.SIGCONT)
    thread.join(timeout=20)
    assert results["submit"] is None
    assert event_log.finished(big.request_id, timeout_s=20).reason == "error"  # no model loaded: it still ends


def test_a_sink_that_cancels_from_inside_the_sink_gets_a_cancelled_answer(engines, tiny_model):
    """A consumer that stops an answer from its sink ("enough words", a stop string of its own) works with the
    in-process engine: `cancel` returns at once there, Draining and then Finished("cancelled") follow. Across the
    process it must either work the same or refuse at once, not stall every event for the answer timeout and
    then kill the engine."""
    event_log = EventLog()
    holder: dict = {}

    def sink(event):
        event_log(event)
        if isinstance(event, TextDelta) and event.request_id == holder.get("id") and "cancelled" not in holder:
            started = time.perf_counter()
            try:
                holder["cancelled"] = holder["engine"].cancel(event.request_id)
            except Exception as exc:
                holder["cancelled"] = exc
            holder["took_s"] = time.perf_counter() - started

    engine = engines(sink, Engine, answer_timeout_s=2.0)
    holder["engine"] = engine
    load(engine, event_log, tiny_model)
    request = ask("Keep talking", ENDLESS)
    holder["id"] = request.request_id
    assert engine.submit(request) is None
    finished = event_log.finished(request.request_id, timeout_s=10)
    deadline = time.monotonic() + 5.0
    while "took_s" not in holder and time.monotonic() < deadline:  # an error Finished may come from inside cancel
        time.sleep(0.05)
    assert holder["took_s"] < 1.0, f"cancel from the sink took {holder['took_s']:.1f} s ({holder['cancelled']!r})"
    assert finished.reason == "cancelled", finished.error
    assert engine.process.poll() is None, "the child was killed"


FACTORY_MODULE = """
from mlxchat.engine import Engine


def build(sink):
    return Engine(sink)
"""


def test_a_child_that_cannot_build_its_engine_says_why(engines, event_log, tmp_path, monkeypatch):
    """The factory's module imports here but not in the child (a path added to sys.path by the app, not to the
    environment the child inherits): unpickling the factory fails in the child. The traceback is in the log, and
    the first request must end with an error (or `submit` raise `EngineClosed`) that names the failure, not just
    'exit code 0' (which reads as a clean exit)."""
    (tmp_path / "review_only_here.py").write_text(textwrap.dedent(FACTORY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import review_only_here

    log_path = tmp_path / "engine.log"
    engine = engines(event_log, review_only_here.build, log_path=log_path)
    request = ask("Anyone there?")
    try:
        engine.submit(request)
    except EngineClosed as exc:
        said = str(exc)
    else:
        said = event_log.finished(request.request_id, timeout_s=20).error
    engine.process.wait(timeout=10)
    assert "ModuleNotFoundError" in log_path.read_text(), "the log has the child's traceback"
    assert str(log_path) in said
    assert "review_only_here" in said or "ModuleNotFoundError" in said, said  # was: "... (exit code 0). Its log: ..."
    assert engine.process.returncode != 0, "a child that failed exits with a failure code"


def test_start_twice_is_refused(engines, event_log):
    """The in-process engine's `start` raises RuntimeError the second time (a thread starts once). A second
    `start` here must not leave a child that `close` does not end, nor two readers on one connection."""
    engine = engines(event_log, Engine)
    first = engine.process
    try:
        with pytest.raises(RuntimeError):
            engine.start()
    finally:
        if first.poll() is None and first is not engine.process:  # before the fix: still running, and nobody ended it
            first.kill()
            first.wait()


ODD_ERROR_MODULE = """
from mlxchat.engine import Engine


class OddError(Exception):
    '''An exception whose __init__ takes other arguments than its args: it pickles, but does not unpickle.'''

    def __init__(self, what, why):
        super().__init__(f"{what}: {why}")


class OddEngine(Engine):
    def waiting_on(self):
        raise OddError("waiting_on", "a library's exception")
"""


def test_an_answer_that_does_not_unpickle_leaves_the_engine_usable_or_closed(engines, event_log, tmp_path, monkeypatch):
    """Any exception an engine call raises crosses the socket as the answer. Many exceptions pickle but do not
    unpickle (an `__init__` whose arguments are not its `args`). Whatever one such answer does, the reader must
    go on: the next request still ends with exactly one `Finished` (its own, or an error saying the engine
    process is gone)."""
    (tmp_path / "review_odd_error.py").write_text(textwrap.dedent(ODD_ERROR_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep))
    import review_odd_error

    engine = engines(event_log, review_odd_error.OddEngine, answer_timeout_s=1.0)
    first = ask("Up yet?")  # no model loaded: ends with an error from the child once it is up (posted, no timeout)
    assert engine.submit(first) is None
    assert event_log.finished(first.request_id, timeout_s=20).reason == "error"
    try:
        # The child sends the engine's error as words (a `RuntimeError`), which always unpickle; raised here as the
        # in-process engine would raise its own.
        with pytest.raises(RuntimeError, match="OddError: waiting_on: a library's exception"):
            engine.waiting_on()
        request = ask("Anyone there?")
        try:
            engine.submit(request)
        except EngineClosed:
            return
        assert event_log.finished(request.request_id, timeout_s=3).reason == "error"
    finally:
        engine.close(timeout_s=0.5)  # with the reader dead, close waits out its own answer timeout


def test_the_child_imports_what_the_app_imports_whatever_the_working_directory(
    engines, event_log, tmp_path, monkeypatch
):
    """The person runs `mlxchat` in a folder of their own scripts, one of them named logging.py (or in a checkout
    of another mlxchat version). The app's process never looks in its working directory for modules; the engine
    process must not either: here the shadow module refuses to import, so the engine never starts."""
    (tmp_path / "logging.py").write_text('raise ImportError("the logging.py of the working directory was imported")\n')
    monkeypatch.chdir(tmp_path)
    engine = engines(event_log, Engine, log_path=tmp_path / "engine.log")
    request = ask("Anyone there?")  # no model loaded: the child's engine ends it with "No model is loaded"
    try:
        engine.submit(request)
    except EngineClosed as exc:
        pytest.fail(f"submit: {exc}")
    error = event_log.finished(request.request_id, timeout_s=20).error
    assert "No model is loaded" in error, f"{error}\n{(tmp_path / 'engine.log').read_text()[-300:]}"
