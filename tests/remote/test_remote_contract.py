"""The remote backend keeps the engine's contract, checked against the scripted loopback server: model selection,
the same events as the local engine, cancel that drains until the connection is closed, busy refusal, close."""

from __future__ import annotations

import threading
import time

import pytest
from remote_fakes import DONE, chunk, raw_events, stall, stream
from remote_turns import ask, select

from mlxchat.engine import (
    Busy,
    ChatRequest,
    Draining,
    Finished,
    Message,
    ModelLoaded,
    Started,
    Stats,
    TextDelta,
)
from mlxchat.engine.remote import RemoteError


def test_selecting_a_model_by_its_short_name_sends_its_full_id(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    finished = select(engine, event_log, "model-b")
    info = event_log.wait_for(ModelLoaded, finished.request_id).info
    assert (info.name, info.path, info.kind, info.endpoint) == ("model-b", "/srv/models/model-b", "remote", fake_server.url)
    ask(engine, event_log, "Hi")
    assert fake_server.chats[-1].body["model"] == "/srv/models/model-b"


def test_no_model_named_selects_the_engines_default_else_the_first_listed(fake_server, remote_engines, event_log):
    first = remote_engines(fake_server.url)
    select(first, event_log, None)
    assert first.model.path == "fake/model-a"
    preferred = remote_engines(fake_server.url, model="model-b")
    select(preferred, event_log, None)
    assert preferred.model.path == "/srv/models/model-b"


def test_a_server_without_a_model_list_takes_the_name_unchecked(fake_server, remote_engines, event_log):
    fake_server.models_status = 404
    engine = remote_engines(fake_server.url)
    assert select(engine, event_log, "whatever/model").reason == "stop"
    assert ask(engine, event_log, "Hi").text == "Hello world"
    assert fake_server.chats[-1].body["model"] == "whatever/model"


def test_list_models_for_the_picker_and_a_readable_error_when_it_cannot(fake_server, remote_engines):
    engine = remote_engines(fake_server.url)
    assert [(m.id, m.name) for m in engine.list_models()] == [
        ("fake/model-a", "fake/model-a"),
        ("/srv/models/model-b", "model-b"),
    ]
    fake_server.models_status = 500
    with pytest.raises(RemoteError, match="HTTP 500 Internal Server Error for /models"):
        engine.list_models()


def test_a_turn_emits_the_local_engines_events_with_the_servers_usage(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = stream("The", " capital", " is", " Paris", ".", usage=(37, 6), delay_s=0.02)
    finished = ask(engine, event_log, "What is the capital of France?")
    events = event_log.of(finished.request_id)
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    assert {type(e) for e in events} <= {Started, TextDelta, Stats, Finished}
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == finished.text == "The capital is Paris."
    assert finished.reason == "stop"
    stats = finished.stats
    assert (stats.prompt_tokens, stats.generation_tokens, stats.context_used) == (37, 6, 43)
    assert (finished.usage.prompt_tokens, finished.usage.generation_tokens) == (37, 6)
    assert stats.ttft_s > 0 and stats.decode_tps > 0 and stats.peak_memory_bytes == 0


def test_length_is_reported_when_the_server_stops_at_max_tokens(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = stream("one", " two", finish="length")
    assert ask(engine, event_log, "Count", max_tokens=2).reason == "length"
    assert fake_server.chats[-1].body["max_tokens"] == 2


def test_reasoning_sent_apart_stays_apart_from_the_answer(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = raw_events(chunk(reasoning="Paris, surely."), chunk("Paris."), chunk(finish="stop"), DONE)
    finished = ask(engine, event_log, "Capital?")
    assert (finished.text, finished.reasoning) == ("Paris.", "Paris, surely.")


def test_an_image_turn_sends_the_image_as_a_data_url(fake_server, remote_engines, event_log, tmp_path):
    from PIL import Image

    picture = tmp_path / "red.png"
    Image.new("RGB", (16, 16), (255, 0, 0)).save(picture)
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    request = ChatRequest((Message("user", "What colour?", (picture,)),))
    assert engine.submit(request) is None
    assert event_log.finished(request.request_id).reason == "stop"
    assert event_log.wait_for(Started, request.request_id).route == "vision"
    image_part, text_part = fake_server.chats[-1].body["messages"][0]["content"]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert text_part == {"type": "text", "text": "What colour?"}


def test_cancel_hangs_up_at_once_even_on_a_silent_server_and_finishes_cancelled_with_the_partial_text(
    fake_server, remote_engines, event_log
):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = stall("Once", " upon", keepalive_s=None)  # then silent: no keep-alive to notice a flag at
    request = ChatRequest((Message("user", "A long story"),))
    assert engine.submit(request) is None
    event_log.wait_until(lambda e: isinstance(e, TextDelta) and e.request_id == request.request_id)
    cancelled_at = time.monotonic()
    assert engine.cancel(request.request_id)
    assert any(isinstance(e, Draining) for e in event_log.of(request.request_id))  # emitted before cancel returned
    finished = event_log.finished(request.request_id, timeout_s=5)
    assert time.monotonic() - cancelled_at < 1.0, "the socket is shut down; no waiting for the read timeout"
    # " upon" may or may not have been read when the cancel came (the cancel follows the first delta, and the two
    # pieces can arrive in one read or two), so the partial text is either; what must hold is that it is all said,
    # once: the deltas add up to the finished text. (That text read before a silence is shown during it:
    # test_stream_silence.py.)
    assert finished.reason == "cancelled" and finished.text in ("Once", "Once upon")
    said = "".join(e.text for e in event_log.of(request.request_id) if isinstance(e, TextDelta))
    assert said == finished.text
    assert fake_server.client_closed.wait(2), "the server never saw the connection close"
    kinds = [type(e).__name__ for e in event_log.of(request.request_id)]
    assert kinds.index("Draining") < kinds.index("Finished") and kinds.count("Finished") == 1

    fake_server.chat = stream("Hello", " world")
    assert ask(engine, event_log, "Hi").text == "Hello world"


def test_cancel_lands_at_a_keep_alive_before_any_text(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = stall(keepalive_s=0.05)  # a server prefilling a long prompt, sending keep-alives
    request = ChatRequest((Message("user", "A very long prompt"),))
    engine.submit(request)
    event_log.wait_for(Started, request.request_id)
    cancelled_at = time.monotonic()
    engine.cancel(request.request_id)
    finished = event_log.finished(request.request_id, timeout_s=5)
    assert (finished.reason, finished.text) == ("cancelled", "")
    assert time.monotonic() - cancelled_at < 1.0


def test_a_second_request_while_one_streams_is_refused_at_once(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = stall("Once", keepalive_s=0.05)
    first = ChatRequest((Message("user", "story"),))
    engine.submit(first)
    event_log.wait_for(TextDelta, first.request_id)
    refusal = engine.submit(ChatRequest((Message("user", "another"),)))
    assert isinstance(refusal, Busy) and refusal.active_request_id == first.request_id
    engine.cancel()
    event_log.finished(first.request_id, timeout_s=5)
    assert len(fake_server.chats) == 1  # the refused request never reached the server


def test_close_during_a_stream_finishes_it_as_shutdown_and_parks(fake_server, event_log):
    from mlxchat.engine.remote import RemoteEngine

    engine = RemoteEngine(event_log, fake_server.url).start()
    select(engine, event_log, "model-b")
    fake_server.chat = stall("Once", keepalive_s=0.05)
    request = ChatRequest((Message("user", "story"),))
    engine.submit(request)
    event_log.wait_for(TextDelta, request.request_id)
    closer = threading.Thread(target=lambda: engine.close(timeout_s=5))
    closer.start()
    closer.join(6)
    assert not closer.is_alive()
    assert event_log.finished(request.request_id).reason == "shutdown"
    assert engine.state().phase == "closed"
