"""Plain-op attention for a follow-up's few new tokens (used on MLX's CUDA build, where every new prefill shape
costs a cuDNN graph build): it computes what MLX's fused attention computes. The CUDA build is not on this
machine, so `install` is forced on here; the arithmetic is the same on the CPU."""

from __future__ import annotations

import sys

import mlx.core as mx
import pytest

from mlxchat.engine.local.cuda_attention import PLAIN_BELOW, attention_over, install, plain_attention


@pytest.mark.parametrize("heads, kv_heads, length, keys_length", [(4, 2, 55, 300), (8, 8, 3, 40), (6, 2, 1, 17)])
@pytest.mark.parametrize("mask", [None, "causal", "bool", "additive"])
def test_plain_attention_matches_the_fused_kernel(heads, kv_heads, length, keys_length, mask):
    mx.random.seed(0)
    queries = mx.random.normal((1, heads, length, 64))
    buffer = mx.random.normal((2, 1, kv_heads, keys_length + 30, 64))
    keys, values = buffer[0][..., :keys_length, :], buffer[1][..., :keys_length, :]  # views, as a cache gives
    if mask == "bool":
        mask = mx.random.uniform(shape=(length, keys_length)) > 0.3
        mask[..., -1] = True
    elif mask == "additive":
        mask = mx.random.normal((1, 1, length, keys_length))
    expected = mx.fast.scaled_dot_product_attention(queries, keys, values, scale=0.125, mask=mask)
    got = plain_attention(queries, keys, values, 0.125, mask)
    assert got.shape == expected.shape
    assert mx.allclose(got, expected, atol=1e-4).item()


def test_only_a_follow_ups_prefill_takes_the_plain_path():
    calls = []
    attention = attention_over(lambda *args, **kwargs: calls.append(args[0].shape[2]) or args[0])
    keys = mx.zeros((1, 2, 600, 64))
    for length in (1, 2, 55, PLAIN_BELOW - 1, PLAIN_BELOW, 1024):
        attention(mx.zeros((1, 4, length, 64)), keys, keys, cache=None, scale=1.0, mask="causal" if length > 1 else None)
    assert calls == [1, PLAIN_BELOW, 1024]

    class Quantized:
        bits = 8

    quantized = mx.quantize(keys, group_size=64, bits=8)  # a quantized cache's keys: (data, scales, biases)
    attention(mx.zeros((1, 4, 55, 64)), quantized, quantized, cache=Quantized(), scale=1.0, mask="causal")
    assert calls[-1] == 55  # a quantized cache keeps the library's (kv_attention's) path
    # (before the fix, the shape test ran first and failed on the triple: "'list' object has no attribute
    # 'shape'", which on the H200 failed every kv_bits 8 and 4 turn whose last prefill chunk was short)


def test_installed_into_a_models_module_the_answer_is_unchanged(tiny_model, monkeypatch):
    from mlx_lm import load
    from mlx_lm.models.cache import make_prompt_cache

    model, _ = load(str(tiny_model))
    module = sys.modules[type(model).__module__]
    monkeypatch.setattr(module, "scaled_dot_product_attention", module.scaled_dot_product_attention)
    assert install(model, on_cuda=False) == []

    def run(cache):
        out = [model(mx.array([list(range(1, 120))]), cache=cache)]  # a short prompt (plain once installed)
        out.append(model(mx.array([[7, 8, 9, 10, 11]]), cache=cache))  # a follow-up's few new tokens
        out.append(model(mx.array([[12]]), cache=cache))  # a decode step
        return out

    before = run(make_prompt_cache(model))
    assert type(model).__module__ in install(model, on_cuda=True)
    assert install(model, on_cuda=True) == []  # idempotent
    after = run(make_prompt_cache(model))
    for a, b in zip(before, after):
        assert mx.allclose(a, b, atol=1e-4).item()
