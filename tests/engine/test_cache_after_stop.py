"""An answer that ends at the end-of-sequence token leaves a prompt cache that holds exactly the tokens recorded for
it. mlx-lm's `generate_step` runs one step ahead: by the time it hands out a token, that token is already fed to
the model, the end-of-sequence token too, which the answer's tokens leave out. The cache then held one token more
than it said, and the follow-up's new tokens were written one position late, after a stale end-of-sequence token:
the follow-up over the reused cache answered other tokens than the same conversation read from scratch. The end
token is now recorded with the answer (the follow-up's template repeats it, so it is reused)."""

from __future__ import annotations

import pytest

from mlxchat.engine import ChatRequest, Engine, LoadModel, Message, SamplingParams
from mlxchat.engine.local import generation

ANSWER = "Hello world, here I am."


@pytest.fixture
def scripted_engine(event_log, tiny_model):
    """The first answer is scripted (it ends with the end-of-sequence token); later ones are the model's own."""
    engine = Engine(event_log, script=lambda request: ANSWER if len(request.messages) == 1 else None).start()
    load = LoadModel(str(tiny_model))
    assert engine.submit(load) is None
    assert event_log.finished(load.request_id).reason == "stop"
    yield engine
    engine.close(timeout_s=30)


def answer(engine, event_log, messages, conversation_id: str, max_tokens: int = 12):
    request = ChatRequest(
        tuple(messages), conversation_id=conversation_id, sampling=SamplingParams(temperature=0, max_tokens=max_tokens)
    )
    assert engine.submit(request) is None
    return event_log.finished(request.request_id)


@pytest.mark.parametrize("rows", [1, generation.FIRST_TOKEN_ROWS], ids=["cpu-rule", "cuda-rule"])
def test_a_follow_up_after_a_stop_answers_as_if_read_from_scratch(scripted_engine, event_log, monkeypatch, rows):
    monkeypatch.setattr(generation, "first_token_rows", lambda: rows)  # 128: CUDA's rule (not on this machine)
    first = answer(scripted_engine, event_log, [Message("user", "hi")], "chat", max_tokens=50)
    assert (first.reason, first.text) == ("stop", ANSWER)
    follow = [Message("user", "hi"), Message("assistant", first.text), Message("user", "And then?")]
    reused = answer(scripted_engine, event_log, follow, "chat")
    # The end token the cache holds is the one this template closes the answer with: recorded, it is reused.
    assert reused.usage.cached_tokens == first.usage.prompt_tokens + first.usage.generation_tokens + 1
    fresh = answer(scripted_engine, event_log, follow, "another chat")
    assert fresh.usage.cached_tokens == 0
    assert reused.text == fresh.text


@pytest.mark.parametrize("rows", [1, generation.FIRST_TOKEN_ROWS], ids=["cpu-rule", "cuda-rule"])
def test_a_follow_up_after_an_answer_that_ended_at_once_answers_as_if_read_from_scratch(
    event_log, tiny_model, monkeypatch, rows
):
    """The end token as the first token comes from the engine's own pass (`text_steps`) and is never fed to the
    model: the cache holds the prompt alone, as recorded."""
    monkeypatch.setattr(generation, "first_token_rows", lambda: rows)  # 128: CUDA's rule (not on this machine)
    engine = Engine(event_log, script=lambda request: "" if len(request.messages) == 1 else None).start()
    try:
        load = LoadModel(str(tiny_model))
        assert engine.submit(load) is None
        assert event_log.finished(load.request_id).reason == "stop"
        first = answer(engine, event_log, [Message("user", "hi")], "chat")
        assert (first.reason, first.text, first.usage.generation_tokens) == ("stop", "", 0)
        follow = [Message("user", "hi"), Message("assistant", ""), Message("user", "And then?")]
        reused = answer(engine, event_log, follow, "chat")
        assert reused.usage.cached_tokens > 0
        fresh = answer(engine, event_log, follow, "another chat")
        assert reused.text == fresh.text
    finally:
        engine.close(timeout_s=30)
