"""Provides attention for a follow-up's new tokens that MLX's CUDA build does not rebuild for every shape.

MLX 0.32's CUDA `scaled_dot_product_attention` runs every prefill (more than one query) through cuDNN and builds
a cuDNN graph for each new shape of queries and keys (and their strides). Measured on an H200 with the 1B bench
model (`benchmarks/resume_probe.py`): the 55-token prefill of a follow-up took 96 ms the first time its shape was
seen and 11 ms once the graph existed; a single attention call at a new shape, 58–60 ms against 0.34 ms. Every
follow-up has a shape of its own (its new tokens over the conversation's length), resumed after a restart or not,
so each paid it. For those, `attention` computes the same thing with plain MLX ops (two matmuls and a softmax),
which need no per-shape build. Chunks of 512 tokens and more (a long prompt's full prefill chunks) keep cuDNN's
fused kernel: their shapes recur (chunk i always reads (i + 1) · 512 keys) and their scores would be large; so do
the rare calls whose scores would exceed `MAX_SCORES`. Decoding (one query) is left to MLX. CUDA only: Metal
builds nothing per shape.

How it is hooked in: each model architecture module imports mlx-lm's (or mlx-vlm's) `scaled_dot_product_attention`
by value, so `install(model)` rebinds that name in the modules the loaded model's layers come from, to a function
that calls the library's own (and so `kv_attention`'s quantized path) for everything it does not handle.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import mlx.core as mx

PLAIN_BELOW = 512
"""Prefills with fewer queries than this attend with plain ops (the follow-up's new tokens, a prompt's last
partial chunk)."""

MAX_SCORES = 2**28
"""At most this many attention scores (heads × queries × keys) in one plain call: 512 MB in bfloat16."""


def plain_attention(queries: mx.array, keys: mx.array, values: mx.array, scale: float, mask) -> mx.array:
    """`mx.fast.scaled_dot_product_attention` with plain ops: queries (B, heads, L, D) over keys and values
    (B, kv_heads, S, ·); the query heads that share a KV head are folded into the matmul's rows. `mask` is None,
    "causal" (the last L of S positions), or a boolean or additive array broadcastable to (B, 1, L, S)."""
    batch, heads, length, head_size = queries.shape
    kv_heads, keys_length = keys.shape[1], keys.shape[2]
    repeats = heads // kv_heads
    folded = (queries * scale).reshape(batch, kv_heads, repeats * length, head_size)
    scores = (folded @ keys.swapaxes(-1, -2)).reshape(batch, kv_heads, repeats, length, keys_length)
    if mask is not None:
        if isinstance(mask, str):
            positions = mx.arange(keys_length - length, keys_length)
            mask = positions[:, None] >= mx.arange(keys_length)[None]
        elif mask.ndim == 4:
            mask = mx.expand_dims(mask, -3)
        if mask.dtype == mx.bool_:
            scores = mx.where(mask, scores, mx.finfo(scores.dtype).min)
        else:
            scores = scores + mask.astype(scores.dtype)
    weights = mx.softmax(scores, axis=-1, precise=True).reshape(batch, kv_heads, repeats * length, keys_length)
    return (weights @ values).reshape(batch, heads, length, values.shape[-1])


def running_on_cuda() -> bool:
    """Whether MLX computes on its CUDA build's GPU (`kv_attention` asks too)."""
    return mx.default_device().type == mx.gpu and not mx.metal.is_available()


def plain_suits(queries: mx.array, keys: mx.array) -> bool:
    """Whether a call of this shape attends with `plain_attention` rather than cuDNN (see the module docstring);
    `kv_attention` asks too, for the keys and values it dequantizes."""
    length = queries.shape[2]
    return 1 < length < PLAIN_BELOW and queries.shape[1] * length * keys.shape[2] <= MAX_SCORES


def attention_over(library: Callable) -> Callable:
    """The attention function that stands in for `library` (a library's `scaled_dot_product_attention`)."""

    def attention(queries, keys, values, cache=None, scale: float = 1.0, mask=None, sinks=None):
        if (
            not hasattr(cache, "bits")  # a quantized cache: the library's (kv_attention's) path. Asked first:
            # its keys are a (data, scales, biases) triple, which `plain_suits` cannot measure
            and sinks is None
            and plain_suits(queries, keys)
        ):
            return plain_attention(queries, keys, values, scale, mask)
        return library(queries, keys, values, cache=cache, scale=scale, mask=mask, sinks=sinks)

    attention.library = library
    return attention


def install(model: Any, on_cuda: bool | None = None) -> list[str]:
    """On MLX's CUDA build, make the modules `model`'s layers are defined in attend through `attention_over`
    their library's function. Returns the modules changed (none elsewhere). Idempotent."""
    if on_cuda is None:
        on_cuda = running_on_cuda()
    if not on_cuda:
        return []
    libraries = set()
    for base in ("mlx_lm.models.base", "mlx_vlm.models.base"):
        if base in sys.modules:
            libraries.add(sys.modules[base].scaled_dot_product_attention)
    changed = []
    for name in sorted({type(layer).__module__ for layer in model.modules()}):
        module = sys.modules.get(name)
        current = getattr(module, "scaled_dot_product_attention", None)
        if current not in libraries:  # already ours, or a module's own function with its own signature
            continue
        module.scaled_dot_product_attention = attention_over(current)
        changed.append(name)
    return changed
