"""A scripted engine answers exactly its script through the real model: the seam tests and benchmarks use for
real text (code fences, thinking blocks) at the model's real cost."""

from __future__ import annotations

from mlxchat.engine import ChatRequest, Engine, Finished, LoadModel, Message, SamplingParams, TextDelta

SCRIPT = "Here is code:\n\n```python\ndef double(x):\n    return x * 2\n```\n\n- one\n- two\n"


def test_a_scripted_engine_streams_its_script_exactly_and_stops(event_log, tiny_model):
    engine = Engine(event_log, script=lambda request: SCRIPT).start()
    try:
        load = LoadModel(str(tiny_model))
        assert engine.submit(load) is None
        assert event_log.finished(load.request_id).reason == "stop"
        chat = ChatRequest((Message("user", "hi"),), sampling=SamplingParams(max_tokens=500))
        assert engine.submit(chat) is None
        finished = event_log.finished(chat.request_id)
        streamed = "".join(e.text for e in event_log.drain() if isinstance(e, TextDelta) and e.request_id == chat.request_id)
    finally:
        engine.close(timeout_s=30)
    assert finished.reason == "stop"
    assert finished.text == SCRIPT
    assert streamed == SCRIPT


def test_a_script_that_returns_none_leaves_the_model_free(event_log, tiny_model):
    engine = Engine(event_log, script=lambda request: None).start()
    try:
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        event_log.finished(load.request_id)
        chat = ChatRequest((Message("user", "hi"),), sampling=SamplingParams(temperature=0, max_tokens=5))
        engine.submit(chat)
        finished = event_log.finished(chat.request_id)
    finally:
        engine.close(timeout_s=30)
    assert isinstance(finished, Finished) and finished.reason == "length"
