"""The first answer token comes from the forward pass over the prompt's last tokens (`generation.text_steps`), not
from a second pass over the last token alone: one forward pass fewer before every first token (issue 15: the
resumed follow-up's time to first token on a GPU). What is chosen must not change: the same tokens as mlx-lm's own
`generate_step` over the same prompt."""

from __future__ import annotations

import pytest

from mlxchat.engine import ChatRequest, Finished, Message, SamplingParams, TextDelta
from mlxchat.engine.local import generation


@pytest.fixture(scope="module")
def loaded(tiny_model):
    from mlx_lm import load

    return load(str(tiny_model))


def reference_tokens(model, prompt: list[int], count: int) -> list[int]:
    """mlx-lm's own greedy choice after `prompt`, from a fresh cache."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from mlx_lm.models.cache import make_prompt_cache

    steps = generate_step(mx.array(prompt), model, max_tokens=count, prompt_cache=make_prompt_cache(model))
    return [token for token, _ in steps]


def engine_tokens(model, tokenizer, prompt: list[int], count: int, chunk: int, rows: int) -> list[int]:
    """The engine's way: the head prefilled in chunks, then `text_steps` from the tail."""
    from mlx_lm.models.cache import make_prompt_cache

    from mlxchat.engine.control import RequestControl

    cache = make_prompt_cache(model)
    tail = generation.first_token_tail(prompt, chunk, rows)
    generation.prefill(
        model, cache, prompt[:-tail], chunker=generation.PrefillChunker(size=chunk),
        control=RequestControl("t", "chat", "prefill"), emit=lambda _event: None, done_before=0, total=len(prompt),
    )
    request = ChatRequest((Message("user", "x"),), sampling=SamplingParams(temperature=0.0, max_tokens=count))
    return [token for _, token in generation.text_steps(model, tokenizer, prompt[-tail:], cache, request)]


@pytest.mark.parametrize(
    ("length", "chunk", "rows"),
    [(1, 32, 64), (40, 32, 64), (55, 512, 64), (300, 32, 64), (300, 512, 64), (300, 512, 1)],
    ids=["one-token", "tail-a-chunk", "tail-all-of-it", "chunks-then-tail", "a-64-token-tail", "the-cpu-tail"],
)
def test_the_answer_is_what_mlx_lm_chooses(loaded, length, chunk, rows):
    model, tokenizer = loaded
    prompt = [(7 * index + 3) % 500 + 1 for index in range(length)]
    assert engine_tokens(model, tokenizer, prompt, 8, chunk, rows) == reference_tokens(model, prompt, 8)


def test_max_tokens_one_is_one_token(loaded):
    model, tokenizer = loaded
    prompt = list(range(1, 20))
    assert engine_tokens(model, tokenizer, prompt, 1, 32, 64) == reference_tokens(model, prompt, 1)


def test_the_tail_is_shared_on_cuda_only(monkeypatch):
    """On the CPU sharing the pass costs more than it saves (see `first_token_rows`)."""
    assert generation.first_token_tail(list(range(55)), 512) == 1  # this machine: the CPU
    monkeypatch.setattr(generation, "running_on_cuda", lambda: True)  # as on CUDA (not on this machine)
    assert generation.first_token_tail(list(range(55)), 512) == 55
    assert generation.first_token_tail(list(range(100)), 512) == 100  # a 71-token question paid two passes at 64
    assert generation.first_token_tail(list(range(300)), 512) == 128
    assert generation.first_token_tail(list(range(300)), 32) == 32


def test_a_follow_up_pays_one_forward_pass_before_its_first_token(loaded_engine, event_log, monkeypatch):
    """Through the engine, with CUDA's rule: a follow-up whose few new tokens fit the tail runs the model once
    before its first token (it ran twice: the new tokens but the last, then the last alone)."""
    from mlx_lm.models import llama

    monkeypatch.setattr(generation, "first_token_rows", lambda: generation.FIRST_TOKEN_ROWS)  # CUDA's (see above)

    calls: list[int] = []
    original = llama.Model.__call__

    def counted(self, inputs, *args, **kwargs):
        calls.append(int(inputs.shape[-1]))
        return original(self, inputs, *args, **kwargs)

    first = ChatRequest((Message("user", "Hello there"),), conversation_id="c",
                        sampling=SamplingParams(temperature=0.0, max_tokens=4))
    assert loaded_engine.submit(first) is None
    answer = event_log.finished(first.request_id)
    assert answer.reason == "length", answer.error
    monkeypatch.setattr(llama.Model, "__call__", counted)
    follow = ChatRequest(
        (Message("user", "Hello there"), Message("assistant", answer.text), Message("user", "And then?")),
        conversation_id="c", sampling=SamplingParams(temperature=0.0, max_tokens=4),
    )
    seen_at_first_text: list[int] = []

    def on_first_text(event) -> bool:
        if isinstance(event, TextDelta) and event.request_id == follow.request_id and not seen_at_first_text:
            seen_at_first_text.append(len(calls))
        return isinstance(event, Finished) and event.request_id == follow.request_id

    assert loaded_engine.submit(follow) is None
    finished = event_log.wait_until(on_first_text, 60, "the follow-up's end")
    assert finished.reason == "length" and finished.usage.cached_tokens > 0
    # Text goes out in batches, so by the first TextDelta later steps may have run: the first call is what counts.
    assert calls[0] > 1 and calls[0] == finished.usage.prompt_tokens - finished.usage.cached_tokens, calls
    assert all(rows == 1 for rows in calls[1:]), calls
