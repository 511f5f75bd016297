"""The first answer token shares the tail's forward pass (`generation.text_steps`), and what the logits processors
see must not change with it: at every step they read the prompt's last token and the tokens generated so far, as
they did when mlx-lm's `generate_step` started from the prompt's last token over the prefilled cache (the route
before the shared pass). A repetition penalty that lost the prompt's last token from its window after the first
step chose other tokens, on the CPU's rule too; the CUDA rule (a 64-token tail) is forced on here by passing its
row count, as on a machine with CUDA (not this one)."""

from __future__ import annotations

import pytest

from mlxchat.engine import ChatRequest, Message, SamplingParams
from mlxchat.engine.local import generation


@pytest.fixture(scope="module")
def loaded(tiny_model):
    from mlx_lm import load

    return load(str(tiny_model))


def route_before(model, prompt: list[int], sampling: SamplingParams, kv_bits: int | None = None) -> list[int]:
    """The route before the shared pass: the prompt but its last token prefilled (quantized as the engine does),
    then mlx-lm's `generate_step` from the last token, with mlx-lm's own processors and sampler."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from mlx_lm.models.cache import make_prompt_cache
    from mlx_lm.sample_utils import make_logits_processors, make_sampler

    from mlxchat.engine.local.prompt_cache import quantize_cache

    if sampling.seed is not None:
        mx.random.seed(sampling.seed)
    cache = make_prompt_cache(model)
    for start in range(0, len(prompt) - 1, 32):
        model(mx.array(prompt[start : min(start + 32, len(prompt) - 1)])[None], cache=cache)
        quantize_cache(cache, kv_bits)
    quantize_cache(cache, kv_bits)
    processors = make_logits_processors(repetition_penalty=sampling.repetition_penalty)
    sampler = make_sampler(temp=sampling.temperature, top_p=sampling.top_p, min_p=sampling.min_p, top_k=sampling.top_k)
    steps = generate_step(
        mx.array(prompt[-1:]), model, max_tokens=sampling.max_tokens, sampler=sampler,
        logits_processors=processors, prompt_cache=cache,
    )
    return [token for token, _ in steps]


def engine_tokens(model, tokenizer, prompt: list[int], sampling: SamplingParams, rows: int, kv_bits=None) -> list[int]:
    """The engine's way: the head prefilled in chunks, then `text_steps` from the tail (`rows` long at most)."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    from mlxchat.engine.control import RequestControl
    from mlxchat.engine.local.prompt_cache import quantize_cache

    if sampling.seed is not None:
        mx.random.seed(sampling.seed)
    cache = make_prompt_cache(model)
    tail = generation.first_token_tail(prompt, 32, rows)
    generation.prefill(
        model, cache, prompt[:-tail], chunker=generation.PrefillChunker(size=32),
        control=RequestControl("t", "chat", "prefill"), emit=lambda _event: None, done_before=0, total=len(prompt),
        kv_bits=kv_bits,
    )
    quantize_cache(cache, kv_bits)
    request = ChatRequest((Message("user", "x"),), sampling=sampling)
    steps = generation.text_steps(model, tokenizer, prompt[-tail:], cache, request, kv_bits=kv_bits)
    return [token for _, token in steps]


PROMPT = [(7 * index + 3) % 500 + 1 for index in range(40)] + [3]
"""Ends with a token the free answer repeats (3), so the penalty's window decides tokens from the second on."""


@pytest.mark.parametrize("rows", [1, 64], ids=["cpu-rule", "cuda-rule"])
def test_a_repetition_penalty_sees_what_it_saw_before(loaded, rows):
    model, tokenizer = loaded
    sampling = SamplingParams(temperature=0.0, top_p=1.0, min_p=0.0, top_k=0, repetition_penalty=1.8, max_tokens=12)
    before = route_before(model, PROMPT, sampling)
    free = route_before(model, PROMPT, SamplingParams(temperature=0.0, top_p=1.0, min_p=0.0, top_k=0, max_tokens=12))
    assert before != free  # the penalty changes this answer, so the comparison below means something
    assert engine_tokens(model, tokenizer, PROMPT, sampling, rows) == before


@pytest.mark.parametrize("rows", [1, 64], ids=["cpu-rule", "cuda-rule"])
def test_a_seeded_sampled_answer_with_a_penalty_draws_what_it_drew_before(loaded, rows):
    model, tokenizer = loaded
    sampling = SamplingParams(
        temperature=1.0, top_p=0.95, min_p=0.0, top_k=0, repetition_penalty=1.3, max_tokens=12, seed=11
    )
    assert engine_tokens(model, tokenizer, PROMPT, sampling, rows) == route_before(model, PROMPT, sampling)
