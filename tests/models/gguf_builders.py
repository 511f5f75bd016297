"""Tiny GGUF files for tests and benchmarks, written with llama.cpp's own `GGUFWriter`.

Matrices of any ggml type are made of random blocks: types the `gguf` package can encode are quantized
from random floats; the rest (K-quants, IQ4) are random bytes whose f16/f32 scale fields are set to small
values, so every code and sub-block scale is exercised while the weights stay near 0.05 in size. The
reference numbers of a file are always `gguf.quants.dequantize` of its own bytes: nothing here shares code
with the converter under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

# ggml type -> (offsets of its f16 scale fields in a block, largest |scale code * weight code|), for random
# blocks of the types the gguf package cannot encode.
_RANDOM_BLOCK_SCALES: dict[str, tuple[tuple[int, ...], float]] = {
    "Q2_K": ((80, 82), 45.0),
    "Q3_K": ((108,), 128.0),
    "Q4_K": ((0, 2), 945.0),
    "Q5_K": ((0, 2), 1953.0),
    "Q6_K": ((208,), 4064.0),
    "IQ4_NL": ((0,), 127.0),
    "IQ4_XS": ((0,), 3600.0),
}
MATRIX_TYPES = (
    "Q4_K", "Q6_K", "Q5_K", "Q8_0", "Q3_K", "Q2_K", "Q4_0", "Q4_1",
    "Q5_0", "Q5_1", "Q8_K", "F16", "BF16", "F32", "IQ4_NL", "IQ4_XS",
)  # fmt: skip
EXACT = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K")
"""Types whose every value comes back bit for bit (Q8_K keeps its codes, but its float32 d can round)."""

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, LAYERS = 256, 4, 2, 64, 512, 2
WEIGHT_SIZE = 0.05


def random_tensor(rng: np.random.Generator, type_name: str, shape: tuple[int, int]) -> np.ndarray:
    """Random tensor data of `type_name`: a float array for float types, else the raw (rows, bytes) blocks."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import quantize

    values = (rng.standard_normal(shape) * WEIGHT_SIZE).astype(np.float32)
    if type_name == "F32":
        return values
    if type_name == "F16":
        return values.astype(np.float16)
    qtype = GGMLQuantizationType[type_name]
    if type_name in ("BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"):
        return quantize(values, qtype)
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(shape[0], shape[1] // block_elems * block_bytes), dtype=np.uint8)
    blocks = raw.reshape(-1, block_bytes)
    if type_name == "Q8_K":
        d = (rng.uniform(0.3, 1.0, len(blocks)) * WEIGHT_SIZE / 128).astype(np.float32)
        blocks[:, 0:4] = d.view(np.uint8).reshape(-1, 4)
        return raw
    offsets, largest = _RANDOM_BLOCK_SCALES[type_name]
    for offset in offsets:
        d = (rng.uniform(0.3, 1.0, len(blocks)) * 3 * WEIGHT_SIZE / largest).astype(np.float16)
        blocks[:, offset : offset + 2] = d.view(np.uint8).reshape(-1, 2)
    return raw


def reference_values(type_name: str, data: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """float32 values of tensor data, decoded by the gguf package (Q8_K, which it lacks, by its definition)."""
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import dequantize

    if type_name in ("F32", "F16"):
        return data.astype(np.float32).reshape(shape)
    if type_name == "Q8_K":
        blocks = data.reshape(-1, 292)
        d = blocks[:, 0:4].copy().view(np.float32)
        return (d * blocks[:, 4:260].view(np.int8).astype(np.float32)).reshape(shape)
    return dequantize(data, GGMLQuantizationType[type_name]).reshape(shape)


def _layer_tensors(arch: str) -> dict[str, tuple[int, ...]]:
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    if arch == "phi3":
        return {
            "attn_norm": (HIDDEN,), "attn_qkv": (q + 2 * kv, HIDDEN), "attn_output": (HIDDEN, q),
            "ffn_norm": (HIDDEN,), "ffn_up": (2 * FFN, HIDDEN), "ffn_down": (HIDDEN, FFN),
        }  # fmt: skip
    tensors = {
        "attn_norm": (HIDDEN,), "attn_q": (q, HIDDEN), "attn_k": (kv, HIDDEN), "attn_v": (kv, HIDDEN),
        "attn_output": (HIDDEN, q), "ffn_gate": (FFN, HIDDEN), "ffn_up": (FFN, HIDDEN), "ffn_down": (HIDDEN, FFN),
    }  # fmt: skip
    if arch in ("gemma2", "gemma3"):
        tensors.update(post_attention_norm=(HIDDEN,), ffn_norm=(HIDDEN,), post_ffw_norm=(HIDDEN,))
    else:
        tensors["ffn_norm"] = (HIDDEN,)
    if arch in ("qwen3", "gemma3"):
        tensors.update(attn_q_norm=(HEAD_DIM,), attn_k_norm=(HEAD_DIM,))
    return tensors


def byte_level_vocab() -> list[str]:
    from tokenizers.pre_tokenizers import ByteLevel

    return sorted(ByteLevel.alphabet()) + ["he", "<|end|>"]


def write_tiny_gguf(
    path: Path, arch: str, matrix_types: Iterable[str], *, seed: int = 0, tied: bool | None = None
) -> dict[str, tuple[str, np.ndarray]]:
    """Write a tiny random `arch` model whose matrices take `matrix_types` in turn; return its tensors.

    The result maps each GGUF tensor name to (ggml type, float32 reference values). Norm weights are near 1
    (Gemma's stored 1 + w near 2, as llama.cpp writes them); Qwen2 gets attention biases.
    """
    from gguf import GGUFWriter

    rng = np.random.default_rng(seed)
    types = list(matrix_types)
    layers = 6 if arch == "gemma3" else LAYERS  # one full Gemma 3 pattern: five sliding-window layers, one global
    tokens = byte_level_vocab()
    tied = arch in ("gemma2", "gemma3") if tied is None else tied
    writer = GGUFWriter(str(path), arch)
    for key, value in (
        ("block_count", layers), ("embedding_length", HIDDEN), ("feed_forward_length", FFN),
        ("attention.head_count", HEADS), ("attention.head_count_kv", KV_HEADS), ("context_length", 512),
        ("attention.key_length", HEAD_DIM), ("attention.value_length", HEAD_DIM),
        ("rope.dimension_count", HEAD_DIM),
    ):  # fmt: skip
        writer.add_uint32(f"{arch}.{key}", value)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_float32(f"{arch}.rope.freq_base", 10000.0)
    if arch == "gemma3":
        writer.add_uint32("gemma3.attention.sliding_window", 8)  # shorter than the test prompt: the window matters
    if arch == "gemma2":
        writer.add_uint32("gemma2.attention.sliding_window", 8)
        writer.add_float32("gemma2.attn_logit_softcapping", 50.0)
        writer.add_float32("gemma2.final_logit_softcapping", 30.0)
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_string("tokenizer.ggml.pre", "default")
    writer.add_array("tokenizer.ggml.tokens", tokens)
    writer.add_array("tokenizer.ggml.token_type", [1] * (len(tokens) - 1) + [3])
    writer.add_array("tokenizer.ggml.merges", ["h e"])
    writer.add_uint32("tokenizer.ggml.eos_token_id", len(tokens) - 1)

    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (len(tokens), HIDDEN)}
    for layer in range(layers):
        for part, shape in _layer_tensors(arch).items():
            shapes[f"blk.{layer}.{part}.weight"] = shape
        if arch == "qwen2":
            for part, rows in (("attn_q", HEADS), ("attn_k", KV_HEADS), ("attn_v", KV_HEADS)):
                shapes[f"blk.{layer}.{part}.bias"] = (rows * HEAD_DIM,)
    shapes["output_norm.weight"] = (HIDDEN,)
    if not tied:
        shapes["output.weight"] = (len(tokens), HIDDEN)

    tensors: dict[str, tuple[str, np.ndarray]] = {}
    matrix_index = 0
    for name, shape in shapes.items():
        if len(shape) == 2:
            type_name = types[matrix_index % len(types)]
            matrix_index += 1
            data = random_tensor(rng, type_name, shape)
        else:
            type_name = "F32"
            center = 2.0 if name.endswith("norm.weight") and arch.startswith("gemma") else 1.0
            center = center if name.endswith("norm.weight") else 0.0
            data = (center + rng.standard_normal(shape) * 0.1).astype(np.float32)
        from gguf.constants import GGMLQuantizationType

        qtype = GGMLQuantizationType[type_name]
        writer.add_tensor(name, data, raw_dtype=None if type_name in ("F32", "F16") else qtype)
        tensors[name] = (type_name, reference_values(type_name, data, shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tensors
