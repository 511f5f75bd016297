"""Image turns on a reasoning VLM go through the same thinking split as text turns: real MLX, a tiny random SmolVLM
whose template opens `<think>` in the generation prompt and whose `</think>` is silent, so it thinks until a budget
ends it. Its random tokens are not words, so these tests count tokens and events rather than read text."""

from __future__ import annotations

import pytest

from mlxchat.engine import ChatRequest, Engine, LoadModel, Message, ModelLoaded, SamplingParams, TextDelta
from mlxchat.engine import ThinkingDelta, ThinkingDone
from mlxchat.models.random_vision import build_tiny_vlm

GREEDY = SamplingParams(temperature=0.0, max_tokens=12)


@pytest.fixture(scope="module")
def thinking_vlm(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "thinking", "smolvlm", thinking=True)


@pytest.fixture
def picture(tmp_path):
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (220, 30, 30)).save(path)
    return path


@pytest.fixture
def vlm_engine(event_log, thinking_vlm):
    engine = Engine(event_log).start()
    load = LoadModel(str(thinking_vlm))
    assert engine.submit(load) is None
    info = event_log.wait_for(ModelLoaded, load.request_id, timeout_s=120).info
    yield engine, info
    engine.close(timeout_s=30)


def ask_about(engine, event_log, picture, **options):
    request = ChatRequest((Message("user", "What is this?", (picture,)),), sampling=GREEDY, **options)
    assert engine.submit(request) is None
    finished = event_log.finished(request.request_id, 120)
    return finished, event_log.of(request.request_id)


def test_an_image_turn_on_a_thinking_model_is_all_thinking_until_it_closes(vlm_engine, event_log, picture):
    engine, info = vlm_engine
    assert (info.kind, info.thinking) == ("vision", "<think> tags")
    finished, events = ask_about(engine, event_log, picture)
    assert finished.reason == "length" and finished.text == ""
    assert finished.usage.reasoning_tokens == finished.usage.generation_tokens == 12
    assert finished.stats.reasoning_tokens == 12
    assert sum(e.tokens for e in events if isinstance(e, ThinkingDelta)) == 12
    assert not [e for e in events if isinstance(e, TextDelta) and (e.text or e.tokens)], "no answer text"
    assert finished.reasoning == "".join(e.text for e in events if isinstance(e, ThinkingDelta))


def test_a_thinking_budget_ends_an_image_turns_thinking_and_the_model_answers(vlm_engine, event_log, picture):
    engine, _ = vlm_engine
    finished, events = ask_about(engine, event_log, picture, thinking_budget=3)
    done = [e for e in events if isinstance(e, ThinkingDone)]
    assert len(done) == 1 and done[0].by_budget
    assert finished.usage.reasoning_tokens == 3 + 1, "three tokens of thinking, then the forced </think>"
    assert finished.usage.generation_tokens == 12
    assert sum(e.tokens for e in events if isinstance(e, TextDelta)) == 12 - 4, "the rest is the answer"
    assert "</think>" not in finished.text and "</think>" not in finished.reasoning


def test_an_image_turn_answers_a_resumed_question_afresh(vlm_engine, event_log, picture):
    """Resuming thinking is a text-route feature: an image turn asked to resume thinks afresh, all of it (the old
    thought is neither in its prompt, nor in its reasoning, nor taken off its thinking budget)."""
    from mlxchat.engine.events import Started

    engine, _ = vlm_engine
    fresh, fresh_events = ask_about(engine, event_log, picture, thinking_budget=5)
    resumed, events = ask_about(engine, event_log, picture, thinking_budget=5, resume_thinking="red red red red")
    assert fresh.usage.reasoning_tokens == 5 + 1, "five tokens of thinking, then the forced </think>"
    assert resumed.usage.reasoning_tokens == fresh.usage.reasoning_tokens
    assert (resumed.reasoning, resumed.text) == (fresh.reasoning, fresh.text)
    assert [e.tokens for e in events if isinstance(e, ThinkingDone)] == [6]
    started = [next(e for e in log if isinstance(e, Started)) for log in (fresh_events, events)]
    assert started[0].prompt_tokens == started[1].prompt_tokens, "the old thought is not in the prompt"
