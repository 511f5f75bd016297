"""Which quantized-attention shapes this MLX build runs, and what `kv_attention.dequantized_attention` costs.

    python benchmarks/kv_attention_probe.py OUT.json [--decode-keys 16384] [--quick] [--attention-only]
        [--without-folded] [--attention-shapes prefill,decode,prefill-long] [--repeats N]

Run on the H200 in round 5 (BENCHMARKS.md: the engine's CUDA path works there after a fix; mlx-lm's own path
still fails at every shape). The GPU fragment,
from the repo root, ~60-100 s on a fresh H200 (the import alone takes ~15 s there):

    timeout 75 python3 -m mlxchat.bench.long_bench --model /tmp/m/1b --sections memory --json $OUT/mem.json
    timeout 22 python3 benchmarks/kv_attention_probe.py $OUT/probe.json --attention-only --without-folded

The first gives kv_bits 16/8/4 at a ~16k-token prompt through the engine (KV bytes, peak memory, decode tok/s;
each setting's line is printed as it finishes); the second this probe's timings without the folded form, whose
kernels compile at run time on CUDA (its first prefill chunk had not finished after ~85 s).

1. (run second) `mx.quantized_matmul` at the shapes quantized attention makes (bits 8/4, head sizes 64/128,
   one query row to a 512-token chunk): mlx-lm's broadcast over query heads, query heads folded into rows, each
   with the cache's keys as a contiguous array and as its view (a slice of a buffer with room left). Each is run
   alone and its error, if any, recorded.
2. (run first) The attention functions at a Llama-3.2-1B layer's shape (32 query heads, 8 KV heads of 64, the activation
   dtype of the device's models): mlx-lm's, ours, and dequantize-then-`mx.fast.scaled_dot_product_attention`,
   each against full precision (max abs difference) and timed (median of repeated evaluations), for a prefill
   chunk and a decode step over a long cache.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import mlx.core as mx
from mlx_lm.models.base import quantized_scaled_dot_product_attention as mlx_lm_attention

from mlxchat.engine.local.kv_attention import dequantized_attention


def _run(fn) -> str:
    try:
        mx.eval(fn())
        return "ok"
    except Exception as exc:  # the point is to record what this build refuses
        return f"{type(exc).__name__}: {str(exc)[:200]}"


def _cache_view(shape, length, bits, group, dtype, contiguous):
    """A quantized (data, scales, biases) triple of `length` tokens: the whole array, or the view of a buffer
    with room for 256 more, as mlx-lm's QuantizedKVCache returns it."""
    capacity = length if contiguous else length + 256
    full = mx.random.normal((*shape[:-2], capacity, shape[-1])).astype(dtype)
    parts = mx.quantize(full, group_size=group, bits=bits)
    return tuple(part[..., :length, :] for part in parts)


def probe_shapes(dtype, quick: bool) -> list[dict]:
    rows = []
    heads, kv_heads = 32, 8
    repeats = heads // kv_heads
    # most needed first (a time limit may cut the rest); 96-wide heads (Phi-3) quantize in groups of 32
    for bits, head_size in ((8, 64), (4, 64), (8, 128), (8, 96), (4, 128), (4, 96)):
        group = 64 if head_size % 64 == 0 else 32
        if quick and head_size != 64:
            continue
        for (length, keys_length), contiguous in itertools.product(((1, 1000), (4, 1000), (512, 1024)), (True, False)):
            shape = (1, kv_heads, keys_length, head_size)
            keys = _cache_view(shape, keys_length, bits, group, dtype, contiguous)
            values = _cache_view(shape, keys_length, bits, group, dtype, contiguous)
            q5 = mx.random.normal((1, kv_heads, repeats, length, head_size)).astype(dtype)
            q4 = q5.reshape(1, kv_heads, repeats * length, head_size)
            s5 = mx.random.normal((1, kv_heads, repeats, length, keys_length)).astype(dtype)
            s4 = s5.reshape(1, kv_heads, repeats * length, keys_length)
            k5 = tuple(mx.expand_dims(p, -3) for p in keys)
            v5 = tuple(mx.expand_dims(p, -3) for p in values)

            def qmm(x, w, transpose, bits=bits, group=group):
                return mx.quantized_matmul(x, *w, transpose=transpose, group_size=group, bits=bits)

            cases = {
                "keys broadcast (mlx-lm)": lambda: qmm(q5, k5, True),
                "values broadcast (mlx-lm)": lambda: qmm(s5, v5, False),
                "keys folded": lambda: qmm(q4, keys, True),
                "values folded": lambda: qmm(s4, values, False),
                "keys folded, made contiguous": lambda: qmm(q4, [mx.contiguous(p) for p in keys], True),
                "values folded, made contiguous": lambda: qmm(s4, [mx.contiguous(p) for p in values], False),
            }
            for name, fn in cases.items():
                if contiguous and "made contiguous" in name:
                    continue
                cache = "contiguous" if contiguous else "view"
                result = _run(fn)
                rows.append(dict(case=name, bits=bits, head_size=head_size, group=group, queries=length,
                                 keys=keys_length, cache=cache, result=result))
                print(f"{name:32s} bits {bits} D {head_size:3d} L {length:3d} S {keys_length:5d} {cache:10s} "
                      f"{result[:120]}", flush=True)
    return rows


def folded_attention(
    queries: mx.array,
    q_keys: tuple[mx.array, mx.array, mx.array],
    q_values: tuple[mx.array, mx.array, mx.array],
    scale: float,
    mask,
    group_size: int = 64,
    bits: int = 8,
) -> mx.array:
    """(Tried for the engine first; on a fresh CUDA machine its kernels compiled for minutes.) Query heads that share
    a KV head folded into the matrix's rows, so the quantized keys need no broadcast, and the cache's views made
    contiguous: what MLX 0.32's CUDA quantized matmul requires. Bit-identical to mlx-lm's on the CPU.
    Scaled dot-product attention of `queries` (B, heads, L, D) over quantized keys and values
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


def _peak_extra_mb(fn) -> float:
    """Memory the call needs beyond what is already held (its transients and its output), in MB."""
    mx.synchronize()
    held = mx.get_active_memory()
    mx.reset_peak_memory()
    mx.eval(fn())
    return (mx.get_peak_memory() - held) / 1e6


ATTENTION_SHAPES = {  # label: (queries, keys or None for --decode-keys, mask)
    "prefill": ("prefill chunk", 512, 1024, "causal"),
    "decode": ("decode step", 1, None, None),
    "prefill-long": ("prefill chunk, long cache", 512, None, "causal"),
}


def compare_attention(dtype, decode_keys: int, repeats: int, folded: bool = True, shapes=tuple(ATTENTION_SHAPES)):
    """Each function against full precision (max abs difference, memory beyond what is held), then timed in
    alternation (round-robin over the functions, `repeats` rounds) so a busy machine's drift hits all alike."""
    rows = []
    heads, kv_heads, head_size = 32, 8, 64
    for label, length, keys_length, mask in (ATTENTION_SHAPES[name] for name in shapes):
        keys_length = keys_length or decode_keys
        queries = mx.random.normal((1, heads, length, head_size)).astype(dtype)
        capacity = keys_length + 200
        keys = mx.random.normal((1, kv_heads, capacity, head_size)).astype(dtype)
        values = mx.random.normal((1, kv_heads, capacity, head_size)).astype(dtype)
        mx.eval(queries, keys, values)
        scale = head_size**-0.5

        def sdpa():
            view_keys, view_values = keys[..., :keys_length, :], values[..., :keys_length, :]
            return mx.fast.scaled_dot_product_attention(queries, view_keys, view_values, scale=scale, mask=mask)

        full = sdpa()
        mx.eval(full)
        calls = [(dict(shape=label, queries=length, keys=keys_length, function="full precision sdpa"), sdpa)]
        for bits in (8, 4):
            q_keys = tuple(p[..., :keys_length, :] for p in mx.quantize(keys, group_size=64, bits=bits))
            q_values = tuple(p[..., :keys_length, :] for p in mx.quantize(values, group_size=64, bits=bits))
            mx.eval(q_keys, q_values)
            functions = [("mlx-lm quantized", mlx_lm_attention), ("ours: dequantize + sdpa", dequantized_attention)]
            for name, fn in functions + ([("folded", folded_attention)] if folded else []):
                call = lambda fn=fn, q_keys=q_keys, q_values=q_values, bits=bits: fn(  # noqa: E731
                    mx.array(queries), q_keys, q_values, scale=scale, mask=mask, group_size=64, bits=bits
                )
                calls.append((dict(shape=label, queries=length, keys=keys_length, bits=bits, function=name), call))
        timed = []
        for row, call in calls:
            try:
                out = call()
                row["max_abs_vs_full"] = mx.abs(out.astype(mx.float32) - full.astype(mx.float32)).max().item()
                row["peak_extra_mb"] = _peak_extra_mb(call)
                row["result"] = "ok"
                timed.append((row, call, []))
            except Exception as exc:
                row["result"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            print(json.dumps(row), flush=True)
            rows.append(row)
        for _ in range(repeats):
            for row, call, times in timed:
                started = time.perf_counter()
                mx.eval(call())
                times.append(time.perf_counter() - started)
        for row, call, times in timed:
            row["median_ms"] = statistics.median(times) * 1e3 if times else None
            bits = row.get("bits", 16)
            print(f"{label:26s} {bits:2} {row['function']:24s} median {row['median_ms']:.3f} ms", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json_out")
    parser.add_argument("--decode-keys", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="head size 64 only (a CPU)")
    parser.add_argument("--attention-only", action="store_true", help="skip the quantized_matmul shapes")
    parser.add_argument("--without-folded", action="store_true", help="skip the folded formulation (CUDA compiles)")
    names = ",".join(ATTENTION_SHAPES)
    parser.add_argument("--attention-shapes", default=names, help=f"which attention shapes, of {names}")
    args = parser.parse_args()
    gpu = mx.default_device() == mx.gpu
    dtype = mx.bfloat16 if gpu else mx.float32
    print("mlx", mx.__version__, mx.default_device(), dtype, flush=True)
    result = {"mlx": mx.__version__, "device": str(mx.default_device()), "dtype": str(dtype)}

    def write() -> None:  # after each part: a time limit keeps what finished
        with open(args.json_out, "w") as handle:
            json.dump(result, handle, indent=1)

    shapes = [name.strip() for name in args.attention_shapes.split(",") if name.strip()]
    result["attention"] = compare_attention(
        dtype, args.decode_keys, args.repeats, folded=not args.without_folded, shapes=shapes
    )
    write()
    if not args.attention_only:
        result["shapes"] = probe_shapes(dtype, args.quick)
        write()


if __name__ == "__main__":
    main()
