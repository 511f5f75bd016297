"""A cancel that arrives before the answer's first forward pass ends the turn with no answer text, also when all of
the prompt's new tokens go into that pass (CUDA's rule, `generation.first_token_rows`: a follow-up's few new tokens
are the tail, and no prefill chunk runs before it, so no chunk boundary reads the cancel flag). Before, such a
cancel (Esc while a saved cache was read, say) still computed and sent one token of the answer."""

from __future__ import annotations

import pytest

from mlxchat.engine import ChatRequest, Engine, LoadModel, Message, PrefillProgress, SamplingParams, TextDelta
from mlxchat.engine.local import generation

GREEDY = SamplingParams(temperature=0, max_tokens=8)


class CancelAtPrefill:
    """An event sink that cancels `target` from the owner thread itself, at its first `PrefillProgress`: the
    moment the turn has read its cache and is about to compute (a cancel between two steps cannot be timed
    from another thread)."""

    def __init__(self, log) -> None:
        self.log = log
        self.engine: Engine | None = None
        self.target: str | None = None

    def __call__(self, event) -> None:
        self.log(event)
        if isinstance(event, PrefillProgress) and event.request_id == self.target and self.engine is not None:
            self.target = None
            self.engine.cancel(event.request_id)


@pytest.mark.parametrize("rows", [1, generation.FIRST_TOKEN_ROWS], ids=["cpu-rule", "cuda-rule"])
def test_a_cancel_before_the_first_pass_sends_no_text(event_log, tiny_model, monkeypatch, rows):
    monkeypatch.setattr(generation, "first_token_rows", lambda: rows)  # 128: CUDA's rule (not on this machine)
    sink = CancelAtPrefill(event_log)
    engine = sink.engine = Engine(sink).start()
    try:
        load = LoadModel(str(tiny_model))
        assert engine.submit(load) is None
        assert event_log.finished(load.request_id).reason == "stop"
        first = ChatRequest((Message("user", "Hello there"),), conversation_id="c", sampling=GREEDY)
        assert engine.submit(first) is None
        answer = event_log.finished(first.request_id)
        follow = ChatRequest(
            (Message("user", "Hello there"), Message("assistant", answer.text), Message("user", "And then?")),
            conversation_id="c", sampling=GREEDY,
        )
        sink.target = follow.request_id
        assert engine.submit(follow) is None
        finished = event_log.finished(follow.request_id)
        assert finished.usage.cached_tokens > 0
        assert 1 < finished.usage.prompt_tokens - finished.usage.cached_tokens <= generation.FIRST_TOKEN_ROWS
        assert (finished.reason, finished.text, finished.usage.generation_tokens) == ("cancelled", "", 0)
        assert not [e for e in event_log.of(follow.request_id) if isinstance(e, TextDelta)]
        # The cache still serves the conversation: the same follow-up, asked again, answers.
        again = ChatRequest(follow.messages, conversation_id="c", sampling=GREEDY)
        assert engine.submit(again) is None
        assert event_log.finished(again.request_id).reason == "length"
    finally:
        engine.close(timeout_s=30)
