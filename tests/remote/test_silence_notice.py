"""A server silent mid-answer is told as such: from a second without text on, the engine sends a `Silence` at most
once a second, so the status pane says "waiting for the server · N s" instead of a rate as if tokens still flowed.

Against the scripted loopback server (a real server cannot be made to stall on demand)."""

from __future__ import annotations

import time

from remote_fakes import DONE, FakeHandler, chunk, stall, usage_chunk
from remote_turns import select

from mlxchat.engine import ChatRequest, Finished, Message, Silence, TextDelta
from mlxchat.engine.remote import RemoteEngine
from mlxchat.engine.streaming import SILENCE_NOTICE_S

BEFORE_FIRST_S = 1.5
"""The server's silence before its first piece (a prefill): not a silence mid-answer."""
STALL_S = 3.5
"""Long enough for three notices, one a second."""


class PausingStream:
    """Silent for `BEFORE_FIRST_S`, sends "Once upon", silent for `STALL_S` (no keep-alive either), then " a
    time.", the finish and [DONE]."""

    def __init__(self) -> None:
        self.stalled_at: float | None = None
        self.resumed_at: float | None = None

    def __call__(self, handler: FakeHandler) -> None:
        handler.start_stream()
        handler.write(chunk(role="assistant"))
        time.sleep(BEFORE_FIRST_S)  # the server's silences are the scenario, not a synchronisation
        handler.write(chunk("Once") + chunk(" upon"))
        self.stalled_at = time.monotonic()
        time.sleep(STALL_S)
        self.resumed_at = time.monotonic()
        handler.write(chunk(" a time.") + chunk(finish="stop") + usage_chunk(10, 3) + DONE)
        handler.end_stream()


def timed_log(event_log):
    """`event_log` with the monotonic time each event reached the sink."""
    arrivals: list[tuple[float, object]] = []

    def sink(event) -> None:
        arrivals.append((time.monotonic(), event))
        event_log(event)

    return sink, arrivals


def test_a_silence_mid_answer_is_told_once_a_second_until_text_comes_again(fake_server, event_log):
    sink, arrivals = timed_log(event_log)
    engine = RemoteEngine(sink, fake_server.url).start()
    try:
        select(engine, event_log, "model-b")
        scenario = PausingStream()
        fake_server.chat = scenario
        request = ChatRequest((Message("user", "A story"),))
        assert engine.submit(request) is None
        finished = event_log.finished(request.request_id, timeout_s=BEFORE_FIRST_S + STALL_S + 10)
    finally:
        assert engine.close(timeout_s=15)
    assert (finished.reason, finished.text) == ("stop", "Once upon a time.")

    ours = [(at, e) for at, e in arrivals if e.request_id == request.request_id]
    texts = [(at, e) for at, e in ours if isinstance(e, TextDelta) and e.text]
    silences = [(at, e) for at, e in ours if isinstance(e, Silence)]
    first_text_at, last_text_at = texts[0][0], texts[-1][0]
    # Nothing before the first text (the server's prefill is not a silence mid-answer), nothing after the answer
    # went on: every notice lies between "Once upon" and " a time.".
    assert "".join(e.text for _, e in texts) == finished.text
    assert all(first_text_at < at < last_text_at for at, _ in silences), [(at - first_text_at, e) for at, e in silences]
    # One a second: from a second of silence on, at most once a second, each saying how long it has lasted.
    told = [e.seconds for _, e in silences]
    assert 2 <= len(told) <= int(STALL_S / SILENCE_NOTICE_S), told
    assert told[0] >= SILENCE_NOTICE_S and told == sorted(told), told
    gaps = [later - earlier for earlier, later in zip(told, told[1:])]
    assert all(gap >= SILENCE_NOTICE_S for gap in gaps), gaps
    sent_gaps = [b[0] - a[0] for a, b in zip(silences, silences[1:])]
    assert all(gap >= SILENCE_NOTICE_S * 0.9 for gap in sent_gaps), sent_gaps  # arrival jitter of the sink
    assert told[-1] <= STALL_S + 0.5
    assert isinstance(ours[-1][1], Finished)


def test_keep_alives_are_silence_too(fake_server, remote_engines, event_log):
    """A server that keeps the connection alive (a comment every 10 ms, more often than the batch interval) but sends no text is silent: before, each
    keep-alive hid the silence from the engine."""
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = stall("Once", " upon", keepalive_s=0.01)
    request = ChatRequest((Message("user", "A story"),))
    assert engine.submit(request) is None
    silence = event_log.wait_for(Silence, request.request_id, timeout_s=10)
    assert silence.seconds >= SILENCE_NOTICE_S
    assert engine.cancel(request.request_id)
    finished = event_log.finished(request.request_id, timeout_s=5)
    assert (finished.reason, finished.text) == ("cancelled", "Once upon")


async def test_the_status_pane_waits_for_a_silent_server_then_shows_the_rate_again(fake_server, tmp_path):
    """The real app on the remote engine: during the stall the status pane says how long it has waited for the
    server, and once text comes again it shows the tokens and rate."""
    from mlxchat.engine.remote import remote_engine_factory
    from mlxchat.settings import ChatSettings
    from mlxchat.store import History
    from mlxchat.ui.app import make_app
    from mlxchat.ui.widgets.status import StatusBar

    scenario = PausingStream()
    fake_server.chat = scenario
    app = make_app(
        engine_factory=remote_engine_factory(fake_server.url, None, "model-b"),
        model="model-b",
        history=History(tmp_path),
        chat_settings=ChatSettings(temperature=0.0, model="model-b"),
    )
    host = fake_server.url.split("//", 1)[1].split("/", 1)[0]
    async with app.run_test(size=(120, 30)) as pilot:
        bar = app.chat.query_one(StatusBar)
        await until(pilot, lambda: app.chat.model is not None and not app.chat.busy, "the model")
        await pilot.press(*"A story", "enter")
        await until(pilot, lambda: f"waiting for {host} · 1 s" in bar.detail_text(), "the first notice")
        assert scenario.resumed_at is None
        await until(pilot, lambda: f"waiting for {host} · 2 s" in bar.detail_text(), "the second notice")
        await until(pilot, lambda: scenario.resumed_at is not None and "waiting" not in bar.detail_text(), "the text")
        await until(pilot, lambda: not app.chat.busy, "the end")
        assert "waiting" not in bar.detail_text()


async def until(pilot, condition, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.02)
