"""The overflow policy through the real engine: a conversation longer than the context keeps being answered."""

from __future__ import annotations

import pytest

from mlxchat.engine import ChatRequest, ContextWindow, Engine, LoadModel, Message, SamplingParams, Started

CONTEXT = 256


@pytest.fixture(scope="module")
def short_context_model(tmp_path_factory):
    """A tiny model that reads at most 256 tokens, with heads of 32 (small enough to be fast, big enough for
    MLX's smallest KV quantization group)."""
    from mlxchat.models.random_weights import RandomLlamaSpec, build_random_llama

    spec = RandomLlamaSpec(hidden_size=128, num_attention_heads=4, max_position_embeddings=CONTEXT)
    return build_random_llama(tmp_path_factory.mktemp("models") / "short-context", spec)


@pytest.fixture
def short_engine(event_log, short_context_model):
    engine = Engine(event_log).start()
    load = LoadModel(str(short_context_model))
    engine.submit(load)
    assert event_log.finished(load.request_id).reason == "stop"
    yield engine
    engine.close(timeout_s=30)


def long_chat(turns: int) -> tuple[Message, ...]:
    messages = [Message("system", "Be brief."), Message("user", "The capital of France is Paris.")]
    messages.append(Message("assistant", "Yes."))
    for turn in range(turns):
        messages.append(Message("user", f"Tell me about the weather, code, cats and images, number {turn}."))
        messages.append(Message("assistant", "Once upon a time there was a small model that answered."))
    messages.append(Message("user", "Hello! How can I help you today?"))
    return tuple(messages)


def ask(engine, event_log, messages, **options):
    sampling = options.pop("sampling", SamplingParams(temperature=0, max_tokens=4))
    request = ChatRequest(messages, conversation_id="long", sampling=sampling, **options)
    assert engine.submit(request) is None
    finished = event_log.finished(request.request_id)
    window = next((e for e in event_log.of(request.request_id) if isinstance(e, ContextWindow)), None)
    started = next((e for e in event_log.of(request.request_id) if isinstance(e, Started)), None)
    return finished, window, started


def test_a_conversation_longer_than_the_context_is_answered_with_the_middle_left_out(short_engine, event_log):
    messages = long_chat(20)
    finished, window, _ = ask(short_engine, event_log, messages)
    assert finished.reason == "length", finished.error
    assert window.hidden and window.policy == "truncate-middle"
    assert {0, 1, 2}.isdisjoint(window.hidden) and len(messages) - 1 not in window.hidden
    assert window.prompt_tokens + window.answer_room == CONTEXT


def test_every_later_message_is_answered_too(short_engine, event_log):
    messages = long_chat(20)
    for turn in range(3):
        finished, window, _ = ask(short_engine, event_log, messages)
        assert finished.reason == "length", finished.error
        messages = messages + (Message("assistant", finished.text), Message("user", f"And then {turn}?"))


def test_the_turn_after_the_window_moved_reuses_the_pinned_start(short_engine, event_log):
    ask(short_engine, event_log, long_chat(8))
    _finished, window, started = ask(short_engine, event_log, long_chat(20))
    assert window.hidden
    assert started.cached_tokens > 0


def test_stop_refuses_and_offers_the_other_policies(short_engine, event_log):
    finished, _, _ = ask(short_engine, event_log, long_chat(20), overflow="stop")
    assert finished.reason == "error"
    assert "truncate-middle" in finished.error and "new conversation" in finished.error
    assert finished.overflow_refused, "the client is told it is the stop policy's refusal, not any error"


def test_other_refusals_are_not_marked_as_the_stop_policys(short_engine, event_log):
    too_long = (Message("user", "word " * 400),)
    finished, _, _ = ask(short_engine, event_log, too_long)
    assert finished.reason == "error" and "alone" in finished.error
    assert not finished.overflow_refused


@pytest.mark.parametrize("history_turns", [0, 3])
def test_under_stop_a_message_too_long_by_itself_is_refused_as_too_long_not_as_an_overflow(
    short_engine, event_log, history_turns
):
    """No other policy and no summary can make a message fit that does not fit alone: the stop policy's offer
    would loop (its summary chat refuses the message again), so the plain "message too long" error comes."""
    messages = long_chat(history_turns)[:-1] + (Message("user", "word " * 400),)
    finished, _, _ = ask(short_engine, event_log, messages, overflow="stop")
    assert finished.reason == "error" and "last message alone" in finished.error, finished.error
    assert not finished.overflow_refused and "summary" not in finished.error


def test_an_answer_that_reaches_the_context_limit_ends_with_length_not_an_error(short_engine, event_log):
    sampling = SamplingParams(temperature=0, max_tokens=1000)
    finished, window, _ = ask(short_engine, event_log, (Message("user", "Hello!"),), sampling=sampling)
    assert finished.reason == "length" and finished.context_full
    assert finished.usage.prompt_tokens + finished.usage.generation_tokens == CONTEXT
    assert window.hidden == ()


def test_an_answer_that_reaches_its_own_limit_is_not_called_context_full(short_engine, event_log):
    finished, _, _ = ask(short_engine, event_log, (Message("user", "Hello!"),))
    assert finished.reason == "length" and not finished.context_full


def test_a_quantized_kv_cache_answers_and_is_reused_on_the_next_turn(short_engine, event_log):
    messages = long_chat(3)
    first, _, _ = ask(short_engine, event_log, messages, kv_bits=8)
    assert first.reason == "length", first.error
    follow_up = messages + (Message("assistant", first.text), Message("user", "More?"))
    second, _, started = ask(short_engine, event_log, follow_up, kv_bits=8)
    assert second.reason == "length", second.error
    assert started.cached_tokens > 0
    assert all(getattr(layer, "bits", None) == 8 for layer in short_engine._cache.cache)
