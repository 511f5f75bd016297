"""The engine's contract, with real MLX on the CPU and a tiny random model: events, busy, cancel, drain, close."""

from __future__ import annotations

import threading
import time

import pytest

from mlxchat.engine import (
    Busy,
    ChatRequest,
    Draining,
    Engine,
    EngineClosed,
    Finished,
    LoadModel,
    Message,
    ModelLoadFailed,
    PrefillProgress,
    SamplingParams,
    Started,
    Stats,
    TextDelta,
)
from mlx_probe import probe_mlx

GREEDY = SamplingParams(temperature=0.0, max_tokens=40)
ENDLESS = SamplingParams(temperature=0.0, max_tokens=1_000_000)


def ask(text: str, sampling: SamplingParams = GREEDY, **kwargs) -> ChatRequest:
    return ChatRequest((Message("user", text),), sampling=sampling, **kwargs)


def test_a_turn_streams_deltas_then_exactly_one_finished(loaded_engine, event_log):
    request = ask("Hello there")
    assert loaded_engine.submit(request) is None
    finished = event_log.finished(request.request_id)
    events = event_log.of(request.request_id)
    assert isinstance(events[0], Started) and events[0].route == "text"
    assert any(isinstance(e, PrefillProgress) for e in events)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert deltas and "".join(d.text for d in deltas) == finished.text
    assert sum(d.tokens for d in deltas) == finished.usage.generation_tokens == 40
    assert finished.reason == "length"
    assert [type(e) for e in events].count(Finished) == 1 and events[-1] is finished
    assert isinstance(finished.stats, Stats) and finished.stats.ttft_s > 0
    assert finished.stats.context_used == finished.usage.prompt_tokens + 40
    assert loaded_engine.state().phase == "idle"


def test_text_deltas_are_batched_by_time_not_per_token(loaded_engine, event_log):
    request = ask("Tell me a story", SamplingParams(temperature=0.0, max_tokens=400))
    loaded_engine.submit(request)
    event_log.finished(request.request_id)
    deltas = [e for e in event_log.of(request.request_id) if isinstance(e, TextDelta)]
    assert len(deltas) < 400 / 4, "a tiny model makes hundreds of tokens in a few batches"


def test_a_request_while_busy_is_refused_at_once_naming_the_active_one(loaded_engine, event_log):
    first = ask("Keep talking", ENDLESS)
    loaded_engine.submit(first)
    event_log.wait_for(TextDelta, first.request_id)
    second = ask("Me too")
    started = time.perf_counter()
    busy = loaded_engine.submit(second)
    assert time.perf_counter() - started < 0.05
    assert isinstance(busy, Busy)
    assert busy.active_request_id == first.request_id and busy.phase == "generating"
    assert busy.message.startswith("Engine busy: answering another message (generating, ")
    loaded_engine.cancel(first.request_id)
    event_log.finished(first.request_id)
    assert event_log.of(second.request_id) == [], "a refused request gets no events"


def test_cancel_drains_and_the_engine_refuses_until_finished(tiny_model, event_log):
    """Seed 001's regression: cancel mid-decode and submit again at once → busy until Finished(cancelled)."""
    with probe_mlx() as probe:
        engine = Engine(event_log).start()
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        event_log.finished(load.request_id)
        first = ask("Keep talking", ENDLESS)
        engine.submit(first)
        event_log.wait_for(TextDelta, first.request_id)
        assert engine.cancel(first.request_id) is True
        refusals = 0
        while True:
            retry = ask("Again")
            busy = engine.submit(retry)
            if busy is None:
                break
            assert busy.active_request_id == first.request_id and busy.phase == "draining"
            refusals += 1
        # Accepted only once the cancelled request had finished.
        finished = next(e for e in event_log.drain() if isinstance(e, Finished) and e.request_id == first.request_id)
        assert finished.reason == "cancelled" and finished.text
        assert event_log.finished(retry.request_id).reason == "length"
        engine.close()
    assert probe.threads_seen == {engine.owner_thread.ident}, probe.thread_names
    assert probe.max_concurrent == 1


def test_cancel_returns_at_once_with_draining_before_finished(loaded_engine, event_log):
    request = ask("Keep talking", ENDLESS)
    loaded_engine.submit(request)
    event_log.wait_for(TextDelta, request.request_id)
    started = time.perf_counter()
    assert loaded_engine.cancel(request.request_id)
    assert time.perf_counter() - started < 0.05
    assert loaded_engine.state().phase in ("draining", "idle")
    finished = event_log.finished(request.request_id)
    kinds = [type(e) for e in event_log.of(request.request_id)]
    assert kinds.index(Draining) < kinds.index(Finished) == len(kinds) - 1
    assert finished.reason == "cancelled"
    assert finished.text == "".join(e.text for e in event_log.of(request.request_id) if isinstance(e, TextDelta))


def test_cancel_of_another_request_id_does_nothing(loaded_engine, event_log):
    request = ask("Hi", SamplingParams(temperature=0.0, max_tokens=5))
    loaded_engine.submit(request)
    assert loaded_engine.cancel("chat-does-not-exist") is False
    assert event_log.finished(request.request_id).reason == "length"
    assert loaded_engine.cancel() is False, "nothing is active any more"


def test_prefill_cancel_lands_within_one_chunk(loaded_engine, event_log):
    request = ask("The cat sat on the mat. " * 500)
    loaded_engine.submit(request)
    event_log.wait_until(
        lambda e: isinstance(e, PrefillProgress) and e.request_id == request.request_id and e.done > 0
    )
    loaded_engine.cancel(request.request_id)
    seen_at_cancel = len([e for e in event_log.drain() if isinstance(e, PrefillProgress) and e.request_id == request.request_id])
    finished = event_log.finished(request.request_id)
    steps = [e for e in event_log.of(request.request_id) if isinstance(e, PrefillProgress)]
    assert finished.reason == "cancelled" and finished.usage.generation_tokens == 0
    assert len(steps) - seen_at_cancel <= 1, "at most the chunk already running completes"
    assert steps[-1].done < steps[-1].total, "the rest of the prompt was never read"


def test_a_follow_up_prefills_only_what_is_new(loaded_engine, event_log):
    first = ask("What is the capital of France?")
    loaded_engine.submit(first)
    answer = event_log.finished(first.request_id)
    follow_up = ChatRequest(
        first.messages + (Message("assistant", answer.text), Message("user", "And of Italy?")),
        sampling=GREEDY,
    )
    loaded_engine.submit(follow_up)
    second = event_log.finished(follow_up.request_id)
    assert second.usage.cached_tokens >= answer.usage.prompt_tokens
    assert second.usage.cached_tokens < second.usage.prompt_tokens


def test_another_conversation_or_an_edited_history_does_not_reuse_stale_cache(loaded_engine, event_log):
    base = ask("What is the capital of France?", conversation_id="a")
    loaded_engine.submit(base)
    event_log.finished(base.request_id)
    other = ask("What is the capital of France?", conversation_id="b")
    loaded_engine.submit(other)
    assert event_log.finished(other.request_id).usage.cached_tokens == 0
    edited = ask("What is the capital of Spain?", conversation_id="b")
    loaded_engine.submit(edited)
    reused = event_log.finished(edited.request_id).usage.cached_tokens
    assert 0 < reused < other_prompt_tokens(event_log, other.request_id)


def other_prompt_tokens(event_log, request_id: str) -> int:
    return next(e for e in event_log.of(request_id) if isinstance(e, Finished)).usage.prompt_tokens


def test_chat_without_a_model_is_an_error_event_not_a_crash(engine, event_log):
    request = ask("Hello")
    engine.submit(request)
    finished = event_log.finished(request.request_id)
    assert finished.reason == "error" and "No model is loaded" in finished.error
    assert engine.state().phase == "idle"


def test_a_missing_model_fails_readably_and_the_engine_stays_usable(loaded_engine, event_log, tmp_path):
    bad = LoadModel(str(tmp_path / "nowhere"))
    loaded_engine.submit(bad)
    failed = event_log.wait_for(ModelLoadFailed, bad.request_id)
    assert "nowhere" in failed.message
    assert failed.still_loaded == loaded_engine.model.name, "a bad path never drops the loaded model"
    assert event_log.finished(bad.request_id).reason == "error"
    request = ask("Still there?", SamplingParams(temperature=0.0, max_tokens=3))
    loaded_engine.submit(request)
    assert event_log.finished(request.request_id).reason == "length"


def test_images_on_a_text_model_are_refused_with_a_reason(loaded_engine, event_log, tmp_path):
    request = ChatRequest((Message("user", "What is this?", images=(tmp_path / "cat.png",)),))
    loaded_engine.submit(request)
    finished = event_log.finished(request.request_id)
    assert finished.reason == "error" and "text-only" in finished.error


def test_close_mid_answer_ends_it_with_shutdown_and_refuses_later_requests(loaded_engine, event_log):
    request = ask("Keep talking", ENDLESS)
    loaded_engine.submit(request)
    event_log.wait_for(TextDelta, request.request_id)
    assert loaded_engine.close(timeout_s=30) is True
    finished = event_log.finished(request.request_id)
    assert finished.reason == "shutdown"
    assert any(isinstance(e, Draining) and e.reason == "shutdown" for e in event_log.of(request.request_id))
    assert loaded_engine.state().phase == "closed"
    assert loaded_engine.owner_thread.is_alive(), "the owner thread parks instead of returning"
    with pytest.raises(EngineClosed):
        loaded_engine.submit(ask("After close"))


def test_the_harness_would_catch_a_stream_used_off_its_thread():
    """MLX's own rule, shown here: a stream made on one thread cannot be used from another."""
    import mlx.core as mx

    made: dict = {}

    def make_stream():
        made["stream"] = mx.new_stream(mx.default_device())

    maker = threading.Thread(target=make_stream)
    maker.start()
    maker.join()
    with pytest.raises(RuntimeError, match="There is no Stream"):
        with mx.stream(made["stream"]):
            mx.eval(mx.ones((2, 2)) + 1)


def test_the_probe_sees_a_second_thread_entering_mlx():
    """The instrumentation is not vacuous: MLX work on two threads shows up as two threads."""
    import mlx.core as mx

    with probe_mlx() as probe:
        worker = threading.Thread(target=lambda: mx.eval(mx.ones((4,)) * 2))
        worker.start()
        worker.join()
        mx.eval(mx.ones((4,)) * 3)
    assert len(probe.threads_seen) == 2
