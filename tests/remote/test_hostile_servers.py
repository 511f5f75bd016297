"""Hostile loopback servers cannot make a remote answer unbounded: a server that ignores max_tokens, one that
sends only keep-alives, an endless line, an endless stream. Each ends in one `Finished(error)` with its own
message, keeps the text received so far, and the engine answers the next request. Also: how busy servers are
told apart (`Finished.busy`), including vllm-mlx's generic error frame before any text."""

from __future__ import annotations

import time

import pytest
from remote_fakes import DONE, chunk, error_response, raw_events, stall, stream
from remote_turns import ask, select

from mlxchat.engine.remote import sse
from mlxchat.engine.remote.request import RemoteTimeouts


def endless_chunks(handler) -> None:
    """A server that ignores max_tokens: one word after another until the client hangs up."""
    handler.start_stream()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        handler.write(chunk("word "))


def endless_line(handler) -> None:
    """A `data:` line that never ends."""
    handler.start_stream()
    handler.write('data: {"choices": [{"index": 0, "delta": {"content": "')
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        handler.write("a" * 65536)


def endless_comments(handler) -> None:
    """Big comment lines forever: each line is short enough, the stream is not."""
    handler.start_stream()
    handler.write(chunk("Hi"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        handler.write(": " + "x" * 65536 + "\n")


def finish(engine, event_log, fake_server, scenario, **request):
    fake_server.chat = scenario
    finished = ask(engine, event_log, "Hi", timeout_s=30, **request)
    fake_server.chat = stream("still", " here")
    assert ask(engine, event_log, "again").text == "still here", "the engine answers the next request"
    return finished


@pytest.fixture
def engine(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url, timeouts=RemoteTimeouts(idle_s=0.5))
    assert select(engine, event_log, "model-b").reason == "stop"
    return engine


def test_a_server_that_ignores_max_tokens_is_stopped_on_the_client(engine, event_log, fake_server):
    finished = finish(engine, event_log, fake_server, endless_chunks, max_tokens=20)
    assert finished.reason == "error" and not finished.busy
    assert "kept sending past max_tokens (20)" in finished.error, finished.error
    assert finished.text == "word " * 20


def test_a_server_that_sends_only_keep_alives_meets_the_idle_timeout(engine, event_log, fake_server):
    finished = finish(engine, event_log, fake_server, stall("Hel", keepalive_s=0.05))
    assert finished.reason == "error" and finished.text == "Hel"
    assert "sent no answer text for over 0.5 s, only keep-alives (idle timeout)" in finished.error, finished.error


def empty_chunks_forever(handler) -> None:
    """Well-formed chunks that say nothing (a role, no text), as fast as keep-alives."""
    handler.start_stream()
    handler.write(chunk("Hel"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        handler.write(chunk(role="assistant"))
        time.sleep(0.02)


def test_chunks_that_say_nothing_meet_the_idle_timeout_too(engine, event_log, fake_server):
    finished = finish(engine, event_log, fake_server, empty_chunks_forever)
    assert finished.reason == "error" and finished.text == "Hel"
    assert "(idle timeout)" in finished.error, finished.error


def test_an_endless_line_is_cut_at_the_line_cap(engine, event_log, fake_server):
    finished = finish(engine, event_log, fake_server, endless_line)
    assert finished.reason == "error"
    assert "sent a stream line of over 1 MiB with no end" in finished.error, finished.error


def test_an_endless_stream_is_cut_at_the_size_cap(engine, event_log, fake_server, monkeypatch):
    monkeypatch.setattr(sse, "MAX_STREAM_BYTES", 4 << 20)
    finished = finish(engine, event_log, fake_server, endless_comments)
    assert finished.reason == "error" and finished.text == "Hi"
    assert "sent over 4 MiB for one answer" in finished.error, finished.error


VLLM_MLX_BUSY_FRAME = 'data: {"error": {"code": 500, "message": "Internal server error"}}\n\n'


def test_a_generic_error_frame_before_any_text_says_the_server_may_be_busy(engine, event_log, fake_server):
    finished = finish(engine, event_log, fake_server, raw_events(chunk(role="assistant"), VLLM_MLX_BUSY_FRAME, DONE))
    assert finished.reason == "error" and finished.busy
    assert "may be busy with another request: try again" in finished.error, finished.error
    assert "Internal server error" in finished.error


def test_an_error_frame_after_text_is_an_error_not_busy(engine, event_log, fake_server):
    finished = finish(engine, event_log, fake_server, raw_events(chunk("Hel"), VLLM_MLX_BUSY_FRAME, DONE))
    assert finished.reason == "error" and not finished.busy and finished.text == "Hel"
    assert "busy" not in finished.error.lower()


@pytest.mark.parametrize(
    "scenario",
    [
        error_response(503, {"error": {"message": "queue is full", "code": "text_generation_busy"}}),
        error_response(429, {"error": {"message": "slow down"}}),
        raw_events('data: {"error": {"message": "queue is full", "code": "text_generation_busy"}}\n\n', DONE),
    ],
    ids=["503", "429", "busy frame"],
)
def test_a_busy_server_is_marked_busy_on_the_finish(engine, event_log, fake_server, scenario):
    finished = finish(engine, event_log, fake_server, scenario)
    assert finished.reason == "error" and finished.busy and finished.error.startswith("Server busy")
