"""Provides `convert_gguf`: a llama-architecture GGUF file becomes a standard MLX model folder.

The folder holds what `mlx_lm.load(folder)` expects: `config.json`, `model.safetensors` with mlx-lm
parameter names, `tokenizer.json` and `tokenizer_config.json` (with the GGUF's own chat template).
Quantized GGUF tensors are not re-quantized: `mx.load` already maps Q4_0, Q4_1 and Q8_0 blocks onto MLX's
affine (weight, scales, biases) triples with group size 32, so the conversion is lossless and takes about a
second. Each module keeps its own bit width (the demo model's embedding is Q8_0, the rest Q4_1), written as
per-module entries of `config.json`'s `quantization`, which mlx-lm honours.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping

from mlxchat.models.errors import GGUFImportError
from mlxchat.models.gguf_reader import GGUFHeader, TensorInfo, read_header
from mlxchat.models.tokenizer_from_gguf import write_tokenizer_files

__all__ = [
    "CONVERTER_VERSION",
    "SUPPORTED_ARCHITECTURES",
    "SUPPORTED_TENSOR_TYPES",
    "GGUFImportError",
    "convert_gguf",
    "preferred_float_dtype",
]

CONVERTER_VERSION = 1
"""Stored in config.json; bump it when the output changes so cached conversions are redone."""

SUPPORTED_ARCHITECTURES = ("llama",)
SUPPORTED_TENSOR_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0")
_QUANT_BITS = {"Q4_0": 4, "Q4_1": 4, "Q8_0": 8}
_GROUP_SIZE = 32  # every ggml block type we accept has 32 weights per block

_TOP_MODULES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_LAYER_MODULES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}

Progress = Callable[[str], None]


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, *, progress: Progress | None = None) -> Path:
    """Convert `gguf_path` into an MLX model folder at `out_dir` (created if needed) and return it.

    Scales, biases and unquantized tensors are stored as float32 when MLX's default device is the CPU,
    because MLX's CPU quantized matmul is about 40x slower with float16 scales; on a GPU (Metal/CUDA)
    they are stored as float16 (bfloat16 for a BF16 GGUF), the fast and compact choice there. A folder
    converted on one kind of device therefore runs best on that kind.

    llama.cpp stores the Q and K projection rows permuted for its rotary layout; they are permuted back
    (weights, scales and biases alike), so the folder uses mlx-lm's standard `rope_traditional: false`.

    Raises `GGUFImportError` (naming the file, and the architecture or tensor type with what is
    supported) for a non-GGUF, truncated or unsupported file. `progress`, if given, receives short
    human-readable steps.
    """
    import mlx.core as mx

    report: Progress = progress or (lambda _message: None)
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    report(f"Reading {gguf_path.name}")
    header = read_header(gguf_path)
    try:
        _check_supported(header)
        config = _model_config(header)
    except GGUFImportError as error:
        raise GGUFImportError(f"{gguf_path}: {error}") from None

    # The tokenizer first: it is cheap, and an unsupported one should fail before the tensors are read.
    out_dir.mkdir(parents=True, exist_ok=True)
    report(f"Building tokenizer ({len(header.metadata.get('tokenizer.ggml.tokens') or [])} tokens)")
    try:
        stop_ids = write_tokenizer_files(header.metadata, out_dir)
    except GGUFImportError as error:
        raise GGUFImportError(f"{gguf_path}: {error}") from None

    types = Counter(info.type_name for info in header.tensors.values())
    report(f"Loading {len(header.tensors)} tensors ({', '.join(sorted(types))})")
    try:
        raw = mx.load(str(gguf_path), format="gguf")
    except (RuntimeError, ValueError) as error:
        raise GGUFImportError(f"{gguf_path}: its tensors could not be read ({error}).") from None
    weights = _mlx_weights(mx, raw, header, config, getattr(mx, preferred_float_dtype(types)))
    del raw
    report(f"Writing model.safetensors ({sum(w.nbytes for w in weights.values()) / 1e6:.0f} MB)")
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    del weights

    file_type = _dominant_matrix_type(header)
    config.update(_quantization_config(header))
    if stop_ids:
        config["eos_token_id"] = stop_ids[0] if len(stop_ids) == 1 else stop_ids
    if isinstance(bos := header.metadata.get("tokenizer.ggml.bos_token_id"), int):
        config["bos_token_id"] = bos
    config["gguf"] = {
        "file": gguf_path.name,
        "file_type": file_type,
        "tensor_types": dict(sorted(types.items())),
        "float_dtype": preferred_float_dtype(types),
        "converter_version": CONVERTER_VERSION,
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")  # last: marks the folder whole
    report(f"Converted {gguf_path.name} ({file_type})")
    return out_dir


def _check_supported(header: GGUFHeader) -> None:
    arch = header.architecture
    if arch not in SUPPORTED_ARCHITECTURES:
        raise GGUFImportError(
            f"architecture {arch!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)} "
            "(Llama, Mistral, SmolLM, TinyLlama and other llama-architecture models)."
        )
    if header.metadata.get("llama.expert_count", 0):
        raise GGUFImportError("mixture-of-experts llama models (Mixtral) are not supported.")
    bad = sorted({i.type_name for i in header.tensors.values()} - set(SUPPORTED_TENSOR_TYPES))
    if bad:
        example = next(i.name for i in header.tensors.values() if i.type_name in bad)
        raise GGUFImportError(
            f"tensor type {', '.join(bad)} (e.g. {example}) is not supported; "
            f"supported tensor types: {', '.join(SUPPORTED_TENSOR_TYPES)}."
        )


def _meta(header: GGUFHeader, key: str, default: Any = None) -> Any:
    value = header.metadata.get(f"llama.{key}", default)
    if value is None:
        raise GGUFImportError(f"metadata key llama.{key} is missing.")
    if isinstance(value, list):
        raise GGUFImportError(f"llama.{key} varies per layer, which is not supported.")
    return value


def _model_config(header: GGUFHeader) -> dict[str, Any]:
    embed = header.tensors.get("token_embd.weight")
    if embed is None:
        raise GGUFImportError("tensor token_embd.weight is missing.")
    hidden, heads = int(_meta(header, "embedding_length")), int(_meta(header, "attention.head_count"))
    kv_heads = int(_meta(header, "attention.head_count_kv", heads))
    layers = int(_meta(header, "block_count"))
    head_dim = int(_meta(header, "attention.key_length", hidden // heads))
    if int(_meta(header, "rope.dimension_count", head_dim)) != head_dim:
        raise GGUFImportError("partial rotary embeddings (rope.dimension_count != head size) are not supported.")
    _check_tensor_names(header, layers)
    config: dict[str, Any] = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": int(_meta(header, "feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": _float32_literal(_meta(header, "attention.layer_norm_rms_epsilon", 1e-5)),
        "vocab_size": embed.shape[0],
        "max_position_embeddings": int(_meta(header, "context_length", 2048)),
        "rope_theta": float(_meta(header, "rope.freq_base", 10000.0)),
        "rope_traditional": False,
        "tie_word_embeddings": "output.weight" not in header.tensors,
        "attention_bias": "blk.0.attn_q.bias" in header.tensors,
        "mlp_bias": "blk.0.ffn_gate.bias" in header.tensors,
    }
    if scaling := _rope_scaling(header, head_dim, config["rope_theta"]):
        config["rope_scaling"] = scaling
    return config


def _check_tensor_names(header: GGUFHeader, layers: int) -> None:
    unknown = [name for name in header.tensors if name != "rope_freqs.weight" and _mlx_name(name) is None]
    if unknown:
        raise GGUFImportError(f"unexpected tensors for a llama model: {', '.join(unknown[:5])}.")
    missing = [
        f"blk.{i}.{part}.weight"
        for i in range(layers)
        for part in _LAYER_MODULES
        if f"blk.{i}.{part}.weight" not in header.tensors
    ]
    if missing or "output_norm.weight" not in header.tensors:
        raise GGUFImportError(f"tensors are missing: {', '.join((missing or ['output_norm.weight'])[:5])}.")


def _rope_scaling(header: GGUFHeader, head_dim: int, theta: float) -> dict[str, Any] | None:
    kind = header.metadata.get("llama.rope.scaling.type", "none")
    factor = header.metadata.get("llama.rope.scaling.factor")
    if kind == "linear" and factor:
        return {"type": "linear", "factor": float(factor)}
    if kind not in ("none", "linear"):
        raise GGUFImportError(f"rope scaling {kind!r} is not supported; supported: none, linear, llama3.")
    if "rope_freqs.weight" in header.tensors:
        return _llama3_scaling(header, head_dim, theta)
    return None


def _llama3_scaling(header: GGUFHeader, head_dim: int, theta: float) -> dict[str, Any]:
    """Recover Llama 3.1-style rope scaling from the `rope_freqs` tensor llama.cpp stores instead.

    The GGUF keeps only the per-frequency divisors; mlx-lm wants the four parameters that produce them.
    Every Llama 3.x release uses low/high frequency factors 1 and 4 and an original context of 8192, with
    the factor equal to the largest divisor, so we rebuild the divisors from those and check they match.
    """
    import numpy as np

    info = header.tensors["rope_freqs.weight"]
    if info.type_name != "F32":
        raise GGUFImportError(f"tensor rope_freqs.weight has type {info.type_name}; expected F32.")
    stored = _read_raw(header, info, np.float32).tolist()
    original = int(header.metadata.get("llama.rope.scaling.original_context_length", 8192))
    scaling = {
        "rope_type": "llama3",
        "factor": max(stored),
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": original,
    }
    expected = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * math.pi * theta ** (i / head_dim)
        if wavelen < original / scaling["high_freq_factor"]:
            expected.append(1.0)
        elif wavelen > original / scaling["low_freq_factor"]:
            expected.append(scaling["factor"])
        else:
            smooth = (original / wavelen - 1.0) / 3.0
            expected.append(1.0 / ((1 - smooth) / scaling["factor"] + smooth))
    if len(expected) != len(stored) or any(not math.isclose(a, b, rel_tol=1e-3) for a, b in zip(expected, stored)):
        raise GGUFImportError("tensor rope_freqs.weight does not match Llama 3 rope scaling, the only kind supported.")
    return scaling


def _mlx_name(gguf_module: str) -> str | None:
    """Map a GGUF tensor or module name (with or without its `.weight` suffix) to mlx-lm's name."""
    parts = gguf_module.split(".")
    suffix = ""
    if parts[-1] in ("weight", "bias", "scales", "biases"):
        suffix, parts = "." + parts[-1], parts[:-1]
    if len(parts) == 1 and parts[0] in _TOP_MODULES:
        return _TOP_MODULES[parts[0]] + suffix
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _LAYER_MODULES:
        return f"model.layers.{parts[1]}.{_LAYER_MODULES[parts[2]]}{suffix}"
    return None


def preferred_float_dtype(tensor_types: Mapping[str, int]) -> str:
    """The float dtype a conversion stores for this device: see `convert_gguf` for why.

    `tensor_types` counts the GGUF's tensor types by name; a BF16 file keeps bfloat16 on a GPU.
    """
    import mlx.core as mx

    if mx.default_device() == mx.cpu:
        return "float32"
    return "bfloat16" if tensor_types.get("BF16") else "float16"


def _mlx_weights(mx: Any, raw: dict, header: GGUFHeader, config: dict, dtype: Any) -> dict:
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    weights = {}
    for key, value in raw.items():
        if key.startswith("rope_freqs"):
            continue
        module = key.rsplit(".", 1)[0]
        info = header.tensors.get(key)  # None for the scales/biases mx.load adds
        if info is not None and info.type_name == "BF16":
            value = _read_bf16(mx, header, info)  # mx.load would squeeze BF16 through float16
        if module.endswith(".attn_q"):
            value = _unpermute_rows(value, heads)
        elif module.endswith(".attn_k"):
            value = _unpermute_rows(value, kv_heads)
        if mx.issubdtype(value.dtype, mx.floating):
            value = value.astype(dtype)
        weights[_mlx_name(key)] = value
    mx.eval(weights)
    return weights


def _unpermute_rows(x: Any, n_heads: int) -> Any:
    """Undo llama.cpp's Q/K permutation: rows go from (head, half, pair) back to (head, pair, half)."""
    rows = x.shape[0]
    return x.reshape(n_heads, rows // n_heads // 2, 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


def _read_raw(header: GGUFHeader, info: TensorInfo, np_dtype: Any) -> Any:
    """Read one unquantized tensor's bytes straight from the file, as a flat numpy array."""
    import numpy as np

    offset = header.data_offset + info.offset
    return np.fromfile(header.path, dtype=np_dtype, count=math.prod(info.shape), offset=offset)


def _read_bf16(mx: Any, header: GGUFHeader, info: TensorInfo) -> Any:
    import numpy as np

    return mx.array(_read_raw(header, info, np.uint16)).view(mx.bfloat16).reshape(info.shape)


def _quantization_config(header: GGUFHeader) -> dict[str, Any]:
    """The `quantization` block: the most common bit width as default, other modules listed by name."""
    bits_by_module: dict[str, int | None] = {}
    for info in header.tensors.values():
        if len(info.shape) == 2 and info.name.endswith(".weight") and info.name != "rope_freqs.weight":
            bits_by_module[_mlx_name(info.name).removesuffix(".weight")] = _QUANT_BITS.get(info.type_name)
    counts = Counter(bits for bits in bits_by_module.values() if bits)
    if not counts:
        return {}
    default_bits = counts.most_common(1)[0][0]
    quantization: dict[str, Any] = {"group_size": _GROUP_SIZE, "bits": default_bits, "mode": "affine"}
    for module, bits in sorted(bits_by_module.items()):
        if bits is None:
            quantization[module] = False
        elif bits != default_bits:
            quantization[module] = {"group_size": _GROUP_SIZE, "bits": bits, "mode": "affine"}
    return {"quantization": quantization, "quantization_config": quantization}


def _dominant_matrix_type(header: GGUFHeader) -> str:
    """The ggml type holding most matrix weights, e.g. "Q4_1": what the file calls its quantization."""
    sizes: Counter = Counter()
    for info in header.tensors.values():
        if len(info.shape) == 2:
            sizes[info.type_name] += math.prod(info.shape)
    return sizes.most_common(1)[0][0] if sizes else "F32"


def _float32_literal(value: float) -> float:
    """1e-5 read back from a float32 is 9.9999997e-06; write the short decimal the author meant."""
    return float(f"{float(value):.7g}")
