"""Provides attention over a quantized KV cache for MLX's CUDA build.

mlx-lm's and mlx-vlm's `quantized_scaled_dot_product_attention` (both `models/base.py`) attend with
`mx.quantized_matmul` directly on the quantized keys and values. On MLX 0.32's CUDA build that fails or stalls
(issue 15, measured on an H200 with MLX 0.32.4):

- as the libraries call it, "No implementation for problem shape 512x1024x64x32": every CUDA quantized-matmul
  kernel (`supports_qmm_sm90/sm80/naive`, `supports_qmv` in `backend/cuda/quantized/qmm/qmm.cu`) needs the
  quantized matrix, scales and biases contiguous, and the libraries broadcast the keys over the query heads of a
  KV head (grouped-query attention) and pass the cache's view (`keys[..., :offset, :]` of a buffer grown 256
  tokens at a time, with a gap after each head);
- reformulated to fit those rules (query heads folded into the matrix's rows, the views made contiguous:
  `benchmarks/kv_attention_probe.py`, bit-identical on the CPU), the first 512-token prefill chunk had not
  finished after 85 s on a fresh machine (twice). Most likely compiling, not a hang (not told apart): those
  kernels are compiled at run time (NVRTC, CUTLASS) per variant (bits, transpose, tile), and a bfloat16 model
  without quantized weights has compiled none of them.

So on CUDA `dequantized_attention` dequantizes each layer's keys and values for the call (MLX's precompiled
`affine_dequantize` kernel) and attends as full-precision turns do there: `mx.fast.scaled_dot_product_attention`,
or `cuda_attention`'s plain ops for a follow-up's few new tokens (one rule for both: `plain_suits`). The stored
cache stays quantized (the memory kv_bits saves); what it costs is one layer's keys and values at full precision
as a transient per call (for a Llama-3.2-1B shape at 16k tokens, 33 MB against the cache's 525 MB at full
precision) and the memory traffic of writing and reading them each step. On the CPU it is bit-identical to the
libraries' path for float32 (tested); in bfloat16 it differs by bfloat16 rounding. On the H200 (BENCHMARKS.md,
round 5) kv_bits 8 keeps 0.53 of the KV cache's bytes and 4 keeps 0.28, at 0.57 of full precision's decode speed
at 16k tokens (each step dequantizes every layer's keys and values).

How it is hooked in: both libraries' `scaled_dot_product_attention` pick the quantized path with
`hasattr(cache, "bits")` and then call the module-level name `quantized_scaled_dot_product_attention` at call
time; nothing else calls it. `install` rebinds that one name when a model loads, on CUDA only (Metal and the CPU
keep the libraries' own path, which works there; on the CPU it decodes 1.6-2.2x faster per attention call than
this one, BENCHMARKS.md), so every model architecture gets it (each imports
`scaled_dot_product_attention` by value, which rules out replacing that), full-precision caches are untouched, and
no library file changes. A cache subclass could not do it: it never sees the attention call, so its keys would
have to be full precision for every layer at once.
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

import mlx.core as mx

from .cuda_attention import plain_attention, plain_suits, running_on_cuda

replaced: dict[str, Callable] = {}
"""The library functions `use_in` replaced, by module name (tests compare against them)."""


def dequantized_attention(
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
    `quantized_scaled_dot_product_attention` so it can stand in for it (unlike it, it leaves `queries` as they
    are: mlx-lm scales them in place). `mask` is whatever the fused attention takes: None, "causal", a boolean
    or an additive array."""
    keys = mx.dequantize(*q_keys, group_size=group_size, bits=bits).astype(queries.dtype)
    values = mx.dequantize(*q_values, group_size=group_size, bits=bits).astype(queries.dtype)
    if plain_suits(queries, keys):  # a follow-up's few new tokens: no cuDNN graph per shape (cuda_attention)
        return plain_attention(queries, keys, values, scale, mask)
    return mx.fast.scaled_dot_product_attention(queries, keys, values, scale=scale, mask=mask)


def use_in(base_module: ModuleType) -> None:
    """Make `base_module` (`mlx_lm.models.base` or `mlx_vlm.models.base`) attend over quantized caches with
    `dequantized_attention`. Idempotent; affects only caches that have `bits` (see the module docstring)."""
    current = base_module.quantized_scaled_dot_product_attention
    if current is not dequantized_attention:
        replaced[base_module.__name__] = current
        base_module.quantized_scaled_dot_product_attention = dequantized_attention


def needed() -> bool:
    """Whether this MLX build needs `dequantized_attention`: its CUDA build (see the module docstring)."""
    return running_on_cuda()


def install(vision: bool) -> None:
    """On CUDA, attend over quantized caches with `dequantized_attention` in the models mlx-lm loads, and in
    mlx-vlm's when `vision` (mlx-vlm's language models attend through its own `models/base.py`, for text turns as
    for image turns). Called when a model loads, before any turn: a saved quantized cache may be resumed before
    anything is quantized in this process."""
    if not needed():
        return
    import mlx_lm.models.base

    use_in(mlx_lm.models.base)
    if vision:
        import mlx_vlm.models.base

        use_in(mlx_vlm.models.base)
