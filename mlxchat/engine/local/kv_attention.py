"""Provides attention over a quantized KV cache that MLX's CUDA build can run.

mlx-lm's and mlx-vlm's `quantized_scaled_dot_product_attention` (both `models/base.py`) serve grouped-query
attention by reshaping the queries to (B, kv_heads, repeats, L, D) and giving the quantized keys and values an
extra axis of size 1, which `mx.quantized_matmul` broadcasts over the repeats. On MLX 0.32's CUDA build every
quantized-matmul kernel (`supports_qmm_sm90/sm80/naive`, `supports_qmv` in `backend/cuda/quantized/qmm/qmm.cu`)
requires the quantized matrix, its scales and biases to be *contiguous*: a broadcast input is not, and neither is
the cache's view of its keys (`keys[..., :offset, :]` of a buffer grown 256 tokens at a time leaves a gap after
each head). So the first prefill chunk failed with "No implementation for problem shape" (issue 15).

`quantized_attention` computes the same thing without either: the query heads that share a KV head are folded
into the matrix's rows (B, kv_heads, repeats·L, D), so keys and values need no broadcast, and the cache's views
are made contiguous (a copy of the quantized cache per layer and step, a quarter to a half of what a
full-precision cache would read; free when the buffer is full). Masking and the softmax run on the
(…, repeats, L, S) view of the scores, as mlx-lm's do, so the results match mlx-lm's path (tested on the CPU).

How it is hooked in: both libraries' `scaled_dot_product_attention` pick the quantized path with
`hasattr(cache, "bits")` and then call the module-level name `quantized_scaled_dot_product_attention` at call
time, and nothing else calls it. `use_in(base_module)` rebinds that one name, so every model architecture (each
imports `scaled_dot_product_attention` by value, which rules out replacing that) gets it, full-precision caches
are untouched, and no library file changes. A cache subclass was the alternative: it cannot reach the attention
call, so it could only hand full-precision (dequantized) keys to `mx.fast.scaled_dot_product_attention`, which
keeps the stored cache small but costs a full-precision copy of the whole cache per layer and step.
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

import mlx.core as mx

replaced: dict[str, Callable] = {}
"""The library functions `use_in` replaced, by module name (tests compare against them)."""


def quantized_attention(
    queries: mx.array,
    q_keys: tuple[mx.array, mx.array, mx.array],
    q_values: tuple[mx.array, mx.array, mx.array],
    scale: float,
    mask,
    group_size: int = 64,
    bits: int = 8,
) -> mx.array:
    """Scaled dot-product attention of `queries` (B, heads, L, D) over quantized keys and values
    ((B, kv_heads, S, ·) triples of data, scales, biases), with the signature of mlx-lm's
    `quantized_scaled_dot_product_attention` so it can stand in for it. `mask` is None, "causal", a boolean or
    an additive array of shape (L, S) or (B, 1, L, S), as the libraries' take."""
    batch, heads, length, head_size = queries.shape
    kv_heads = q_keys[0].shape[-3]
    repeats = heads // kv_heads
    queries = (queries * scale).reshape(batch, kv_heads, repeats * length, head_size)
    q_keys = tuple(mx.contiguous(part) for part in q_keys)
    q_values = tuple(mx.contiguous(part) for part in q_values)

    scores = mx.quantized_matmul(queries, *q_keys, transpose=True, group_size=group_size, bits=bits)
    keys_length = scores.shape[-1]
    scores = scores.reshape(batch, kv_heads, repeats, length, keys_length)
    if mask is not None:
        if isinstance(mask, str):
            q_indices = mx.arange(keys_length - length, keys_length)
            mask = q_indices[:, None] >= mx.arange(keys_length)[None]
        elif mask.ndim == 4:
            mask = mx.expand_dims(mask, -3)
        if mask.dtype == mx.bool_:
            scores = mx.where(mask, scores, mx.finfo(scores.dtype).min)
        else:
            scores = scores + mask
    scores = mx.softmax(scores, axis=-1, precise=True)
    scores = scores.reshape(batch, kv_heads, repeats * length, keys_length)
    out = mx.quantized_matmul(scores, *q_values, transpose=False, group_size=group_size, bits=bits)
    return out.reshape(batch, heads, length, head_size)


def use_in(base_module: ModuleType) -> None:
    """Make `base_module` (`mlx_lm.models.base` or `mlx_vlm.models.base`) attend over quantized caches with
    `quantized_attention`. Idempotent; affects only caches that have `bits` (see the module docstring)."""
    current = base_module.quantized_scaled_dot_product_attention
    if current is not quantized_attention:
        replaced[base_module.__name__] = current
        base_module.quantized_scaled_dot_product_attention = quantized_attention


def install(vision: bool) -> None:
    """Use `quantized_attention` for the models mlx-lm loads, and for mlx-vlm's when `vision` (mlx-vlm's
    language models attend through its own `models/base.py`, for text turns as for image turns). Called when a
    model is loaded, before any turn: a saved quantized cache may be resumed before anything is quantized here."""
    import mlx_lm.models.base

    use_in(mlx_lm.models.base)
    if vision:
        import mlx_vlm.models.base

        use_in(mlx_vlm.models.base)
