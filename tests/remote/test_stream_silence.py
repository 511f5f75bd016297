"""Text read just before the server goes silent (a stall, a slow tool, a long think) reaches the UI within the batch
interval, not when the stream goes on: the answer must not stop mid-word on screen while the server has sent more.

Against the scripted loopback server (a real server cannot be made to stall on demand). Before the fix, a piece that
came within the batch interval after the last flush waited in the batch until the next piece or the end."""

from __future__ import annotations

import threading
import time

from remote_fakes import DONE, FakeHandler, chunk, usage_chunk
from remote_turns import select

from mlxchat.engine import ChatRequest, Draining, Finished, Message, TextDelta

STALL_S = 2.0
"""Far above the batch interval (tens of ms) and any scheduling delay on two loaded cores."""


class StallingStream:
    """Sends `before` in one write (so the pieces come in one read, well inside one batch interval), stays silent
    for `STALL_S` (no keep-alive either), then sends `after`, the finish and [DONE]."""

    def __init__(self, before: tuple[str, ...], after: tuple[str, ...]) -> None:
        self.before, self.after = before, after
        self.sent_at: float | None = None
        self.resumed = threading.Event()

    def __call__(self, handler: FakeHandler) -> None:
        handler.start_stream()
        handler.write(chunk(role="assistant"))
        handler.write("".join(chunk(piece) for piece in self.before))
        self.sent_at = time.monotonic()
        time.sleep(STALL_S)  # the server's silence is the scenario, not a synchronisation
        self.resumed.set()
        for piece in self.after:
            handler.write(chunk(piece))
        handler.write(chunk(finish="stop") + usage_chunk(10, len(self.before) + len(self.after)) + DONE)
        handler.end_stream()


def said_so_far(event_log, request_id: str) -> str:
    return "".join(e.text for e in event_log.of(request_id) if isinstance(e, TextDelta))


def test_text_read_before_a_silence_is_shown_before_the_silence_ends(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    scenario = StallingStream(("Once", " up", "on", " a", " ti"), ("me", "."))
    fake_server.chat = scenario
    request = ChatRequest((Message("user", "A story"),))
    assert engine.submit(request) is None

    event_log.wait_until(
        lambda e: said_so_far(event_log, request.request_id) == "Once upon a ti",
        timeout_s=STALL_S + 5,
        what="the text sent before the stall",
    )
    shown_at = time.monotonic()
    assert not scenario.resumed.is_set(), (
        f"'Once upon a ti' was shown only {shown_at - scenario.sent_at:.2f} s after it was sent, once the stall ended"
    )
    finished = event_log.finished(request.request_id, timeout_s=STALL_S + 10)
    assert (finished.reason, finished.text) == ("stop", "Once upon a time.")
    assert said_so_far(event_log, request.request_id) == finished.text
    assert isinstance(event_log.of(request.request_id)[-1], Finished)


def test_a_cancel_during_the_silence_lands_at_once_and_nothing_follows_finished(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    scenario = StallingStream(("Once", " upon"), (" a time.",))
    fake_server.chat = scenario
    request = ChatRequest((Message("user", "A story"),))
    assert engine.submit(request) is None
    event_log.wait_until(lambda e: said_so_far(event_log, request.request_id) == "Once upon", timeout_s=STALL_S + 5)
    cancelled_at = time.monotonic()
    assert engine.cancel(request.request_id)
    finished = event_log.finished(request.request_id, timeout_s=5)
    assert time.monotonic() - cancelled_at < 1.0 and not scenario.resumed.is_set()
    assert (finished.reason, finished.text) == ("cancelled", "Once upon")
    time.sleep(0.2)  # nothing may arrive after Finished: give a stray flush the chance to show itself
    events = event_log.of(request.request_id)
    kinds = [type(e).__name__ for e in events]
    assert kinds.index(Draining.__name__) < kinds.index(Finished.__name__) == len(kinds) - 1


def test_a_stream_read_to_its_end_does_not_hang_up_the_pooled_connection(monkeypatch):
    """Once the reading thread has read the response to its end, httpx has closed it and a keep-alive connection
    may be back in the pool, serving the next request: stopping must not shut that socket down. The thread is made
    to linger after the end (as on a busy machine) so the stop finds it alive; before, the stop shut the socket
    down then (the review saw 53-69 new connections per 200 requests on a keep-alive server). A stream the owner
    leaves at [DONE] before the thread has read the end is still hung up (as before the reading thread existed).
    A stand-in response: only its bytes matter here, and the socket is a recorder."""
    from mlxchat.engine.remote import stream

    hung_up: list[object] = []

    class Recorder:
        def shutdown(self, how) -> None:
            hung_up.append(how)

    class ReadToTheEnd:
        def iter_bytes(self):
            yield b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n'
            yield b"data: [DONE]\n\n"

    hand_over = stream._EventPump._hand_over

    def lingering(self, item) -> bool:
        handed = hand_over(self, item)
        if item is stream._EventPump._END:
            time.sleep(0.3)
        return handed

    monkeypatch.setattr(stream, "socket_of", lambda response: Recorder())
    monkeypatch.setattr(stream._EventPump, "_hand_over", lingering)
    pump = stream._EventPump(ReadToTheEnd())
    events = [event for event in pump.events(0.03) if event is not None]
    assert [event.data for event in events] == ['{"choices": [{"delta": {"content": "Hi"}}]}', "[DONE]"]
    assert hung_up == [], "the stop hung up a connection the thread had read to its end"
