"""Provides what differs between GGUF architectures: tensor names, config.json for mlx-lm, and each one's quirks.

One `Architecture` per `general.architecture` value we convert. The quirks, each from llama.cpp's converter
(`convert_hf_to_gguf.py`) and its model code:

* llama / mistral: Q and K rows are permuted for llama.cpp's rotary layout (undone here); Llama 3.1 keeps its
  rope scaling as a `rope_freqs` tensor; the output head is tied when `output.weight` is absent.
* qwen2: attention biases on Q, K and V. qwen3: per-head Q/K RMSNorm, head size from `attention.key_length`.
* gemma2 / gemma3: every RMSNorm weight is stored as 1 + w (mlx-lm's Gemma adds the 1 itself, so we subtract
  it); the output head is always the embedding; the query scale is 1/sqrt(head size), except the 27B models,
  which use 1/sqrt(hidden / heads) (llama.cpp keys this on the model size, and so do we: no GGUF key holds it).
  Gemma 2 caps attention and final logits; Gemma 3 alternates five sliding-window layers with one global layer
  (llama.cpp's fixed pattern of 6), with rope base 10000 on the local layers.
* phi3: fused `attn_qkv` and `ffn_up` (gate then up), which mlx-lm's phi3 keeps fused too; LongRoPE factors
  live in `rope_factors_long/short` tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from mlxchat.models.errors import GGUFImportError
from mlxchat.models.gguf_reader import GGUFHeader

_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_ATTENTION = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
}
_MLP = {"ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
_QK_NORM = {"attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}
_GEMMA_NORMS = {
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
_LLAMA_LAYER = {**_ATTENTION, "ffn_norm": "post_attention_layernorm", **_MLP}


@dataclass(frozen=True)
class Architecture:
    """How one GGUF architecture maps onto one mlx-lm model class."""

    gguf_name: str
    model_type: str
    hf_class: str
    layer_modules: dict[str, str]
    """GGUF per-layer module (`blk.N.<part>`) -> mlx-lm module under `model.layers.N.`."""
    required: tuple[str, ...]
    """Per-layer modules every block must have (an absent one is a damaged or foreign file)."""
    top_modules: dict[str, str] = field(default_factory=lambda: dict(_TOP))
    permuted_qk: bool = False
    norm_offset: float = 0.0
    """Subtracted from every `*norm.weight`: Gemma stores 1 + w."""
    extra_config: Callable[[GGUFHeader, dict[str, Any]], dict[str, Any]] = lambda header, config: {}
    ignored_tensors: tuple[str, ...] = ()
    """Tensors consumed into config.json instead of weights (rope tables)."""

    def mlx_name(self, gguf_name: str) -> str | None:
        """mlx-lm's name for a GGUF tensor (`blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight`)."""
        parts = gguf_name.split(".")
        suffix = ""
        if parts[-1] in ("weight", "bias"):
            suffix, parts = "." + parts[-1], parts[:-1]
        if len(parts) == 1 and parts[0] in self.top_modules:
            return self.top_modules[parts[0]] + suffix
        if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in self.layer_modules:
            return f"model.layers.{parts[1]}.{self.layer_modules[parts[2]]}{suffix}"
        return None


def meta(header: GGUFHeader, key: str, default: Any = None) -> Any:
    """`<architecture>.<key>` from the metadata; a missing required key or a per-layer list is refused by name."""
    full = f"{header.architecture}.{key}"
    value = header.metadata.get(full, default)
    if value is None:
        raise GGUFImportError(f"metadata key {full} is missing.")
    if isinstance(value, list):
        raise GGUFImportError(f"metadata key {full} varies per layer, which is not supported.")
    return value


def _gemma_query_scalar(header: GGUFHeader, config: dict[str, Any], large_block_count: int) -> int:
    if config["num_hidden_layers"] == large_block_count:  # 27B: llama.cpp scales by hidden / heads
        return config["hidden_size"] // config["num_attention_heads"]
    return config["head_dim"]


def _gemma2(header: GGUFHeader, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "attn_logit_softcapping": float(meta(header, "attn_logit_softcapping", 50.0)),
        "final_logit_softcapping": float(meta(header, "final_logit_softcapping", 30.0)),
        "query_pre_attn_scalar": _gemma_query_scalar(header, config, large_block_count=46),
        "sliding_window": int(meta(header, "attention.sliding_window", 4096)),
        "tie_word_embeddings": True,
    }


def _sliding_window_pattern(header: GGUFHeader) -> int:
    """Every n-th layer is global: llama.cpp's fixed 6 for Gemma 3, unless the file states it (a number, or one
    bool per layer, true for a sliding-window layer, as newer converters write it)."""
    key = f"{header.architecture}.attention.sliding_window_pattern"
    stated = header.metadata.get(key, 6)
    if isinstance(stated, list):
        period = stated.index(False) + 1 if False in stated else len(stated) + 1
        if any(bool(flag) != ((i + 1) % period != 0) for i, flag in enumerate(stated)):
            raise GGUFImportError(f"metadata key {key} is not a repeating pattern, which mlx-lm cannot express.")
        return period
    return int(stated)


def _gemma3(header: GGUFHeader, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "query_pre_attn_scalar": _gemma_query_scalar(header, config, large_block_count=62),
        "sliding_window": int(meta(header, "attention.sliding_window", 1024)),
        "sliding_window_pattern": _sliding_window_pattern(header),
        "rope_local_base_freq": 10000.0,
    }


def _phi3(header: GGUFHeader, config: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {"partial_rotary_factor": config.pop("rope_dimension_count") / config["head_dim"]}
    long, short = header.tensors.get("rope_factors_long.weight"), header.tensors.get("rope_factors_short.weight")
    if long is not None and short is not None:
        extra["rope_scaling"] = {
            "type": "longrope",
            "long_factor": _read_f32_table(header, "rope_factors_long.weight"),
            "short_factor": _read_f32_table(header, "rope_factors_short.weight"),
        }
        extra["original_max_position_embeddings"] = int(meta(header, "rope.scaling.original_context_length", 4096))
    return extra


def _llama(header: GGUFHeader, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "attention_bias": "blk.0.attn_q.bias" in header.tensors,
        "mlp_bias": "blk.0.ffn_gate.bias" in header.tensors,
    }


def _llama_family(name: str) -> Architecture:
    return Architecture(
        gguf_name=name,
        model_type="llama",
        hf_class="LlamaForCausalLM",
        layer_modules=_LLAMA_LAYER,
        required=tuple(_LLAMA_LAYER),
        permuted_qk=True,
        extra_config=_llama,
        ignored_tensors=("rope_freqs.weight",),
    )


ARCHITECTURES: dict[str, Architecture] = {
    "llama": _llama_family("llama"),
    "mistral": _llama_family("mistral"),
    "qwen2": Architecture("qwen2", "qwen2", "Qwen2ForCausalLM", _LLAMA_LAYER, tuple(_LLAMA_LAYER)),
    "qwen3": Architecture(
        "qwen3", "qwen3", "Qwen3ForCausalLM", {**_LLAMA_LAYER, **_QK_NORM}, (*_LLAMA_LAYER, *_QK_NORM)
    ),
    "gemma2": Architecture(
        "gemma2",
        "gemma2",
        "Gemma2ForCausalLM",
        {**_ATTENTION, **_GEMMA_NORMS, **_MLP},
        (*_ATTENTION, *_GEMMA_NORMS, *_MLP),
        top_modules={"token_embd": "model.embed_tokens", "output_norm": "model.norm"},
        norm_offset=1.0,
        extra_config=_gemma2,
    ),
    "gemma3": Architecture(
        "gemma3",
        "gemma3_text",
        "Gemma3ForCausalLM",
        {**_ATTENTION, **_QK_NORM, **_GEMMA_NORMS, **_MLP},
        (*_ATTENTION, *_QK_NORM, *_GEMMA_NORMS, *_MLP),
        top_modules={"token_embd": "model.embed_tokens", "output_norm": "model.norm"},
        norm_offset=1.0,
        extra_config=_gemma3,
    ),
    "phi3": Architecture(
        "phi3",
        "phi3",
        "Phi3ForCausalLM",
        {
            "attn_norm": "input_layernorm",
            "attn_qkv": "self_attn.qkv_proj",
            "attn_output": "self_attn.o_proj",
            "ffn_norm": "post_attention_layernorm",
            "ffn_up": "mlp.gate_up_proj",
            "ffn_down": "mlp.down_proj",
        },
        ("attn_norm", "attn_qkv", "attn_output", "ffn_norm", "ffn_up", "ffn_down"),
        extra_config=_phi3,
        ignored_tensors=("rope_factors_long.weight", "rope_factors_short.weight"),
    ),
}
SUPPORTED_ARCHITECTURES = tuple(ARCHITECTURES)
_DEFAULT_ROPE_BASE = {"qwen2": 1_000_000.0, "qwen3": 1_000_000.0, "gemma3": 1_000_000.0}


def architecture_of(header: GGUFHeader) -> Architecture:
    """The `Architecture` for this file, or a `GGUFImportError` naming it and the supported list."""
    name = header.architecture
    if name not in ARCHITECTURES:
        raise GGUFImportError(
            f"architecture {name!r} (general.architecture) is not supported; supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}."
        )
    if header.metadata.get(f"{name}.expert_count", 0):
        raise GGUFImportError(f"mixture-of-experts {name} models ({name}.expert_count) are not supported.")
    return ARCHITECTURES[name]


def model_config(header: GGUFHeader, arch: Architecture) -> dict[str, Any]:
    """config.json for mlx-lm's `arch.model_type` class, checked against the tensor table."""
    embed = header.tensors.get("token_embd.weight")
    if embed is None:
        raise GGUFImportError("tensor token_embd.weight is missing.")
    hidden, heads = int(meta(header, "embedding_length")), int(meta(header, "attention.head_count"))
    layers = int(meta(header, "block_count"))
    head_dim = int(meta(header, "attention.key_length", hidden // heads))
    rope_dims = int(meta(header, "rope.dimension_count", head_dim))
    _check_tensor_names(header, arch, layers)
    config: dict[str, Any] = {
        "model_type": arch.model_type,
        "architectures": [arch.hf_class],
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": int(meta(header, "feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta(header, "attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "rms_norm_eps": _float32_literal(meta(header, "attention.layer_norm_rms_epsilon", 1e-6)),
        "vocab_size": embed.shape[0],
        "max_position_embeddings": int(meta(header, "context_length", 4096)),
        "rope_theta": float(meta(header, "rope.freq_base", _DEFAULT_ROPE_BASE.get(arch.gguf_name, 10000.0))),
        "rope_traditional": False,
        "tie_word_embeddings": "output.weight" not in header.tensors,
        "rope_dimension_count": rope_dims,
    }
    if scaling := _rope_scaling(header, arch, head_dim, config["rope_theta"]):
        config["rope_scaling"] = scaling
    config.update(arch.extra_config(header, config))
    if config.pop("rope_dimension_count", head_dim) != head_dim:
        raise GGUFImportError(
            f"partial rotary embeddings ({arch.gguf_name}.rope.dimension_count {rope_dims} != head size "
            f"{head_dim}) are not supported for {arch.gguf_name}."
        )
    return config


def _check_tensor_names(header: GGUFHeader, arch: Architecture, layers: int) -> None:
    unknown = [n for n in header.tensors if n not in arch.ignored_tensors and arch.mlx_name(n) is None]
    if unknown:
        raise GGUFImportError(f"unexpected tensors for a {arch.gguf_name} model: {', '.join(unknown[:5])}.")
    missing = [
        f"blk.{i}.{part}.weight"
        for i in range(layers)
        for part in arch.required
        if f"blk.{i}.{part}.weight" not in header.tensors
    ]
    if "output_norm.weight" not in header.tensors:
        missing.append("output_norm.weight")
    if missing:
        raise GGUFImportError(f"tensors are missing: {', '.join(missing[:5])}.")


def _rope_scaling(header: GGUFHeader, arch: Architecture, head_dim: int, theta: float) -> dict[str, Any] | None:
    kind = header.metadata.get(f"{arch.gguf_name}.rope.scaling.type", "none")
    factor = header.metadata.get(f"{arch.gguf_name}.rope.scaling.factor")
    if kind == "linear" and factor:
        return {"type": "linear", "rope_type": "linear", "factor": float(factor)}
    if kind == "yarn" and factor:
        original = int(meta(header, "rope.scaling.original_context_length"))
        return {"type": "yarn", "rope_type": "yarn", "factor": float(factor),
                "original_max_position_embeddings": original}  # fmt: skip
    if kind == "longrope" and arch.gguf_name == "phi3":
        return None  # the factors are tensors; _phi3 reads them
    if kind not in ("none", "linear", "yarn"):
        raise GGUFImportError(
            f"rope scaling {kind!r} ({arch.gguf_name}.rope.scaling.type) is not supported; "
            "supported: none, linear, yarn, llama3 (and longrope for phi3)."
        )
    if "rope_freqs.weight" in header.tensors and arch.permuted_qk:
        return _llama3_scaling(header, head_dim, theta)
    return None


def _read_f32_table(header: GGUFHeader, name: str) -> list[float]:
    info = header.tensors[name]
    if info.type_name != "F32":
        raise GGUFImportError(f"tensor {name} has type {info.type_name}; expected F32.")
    count = math.prod(info.shape)
    return np.fromfile(header.path, dtype=np.float32, count=count, offset=header.data_offset + info.offset).tolist()


def _llama3_scaling(header: GGUFHeader, head_dim: int, theta: float) -> dict[str, Any]:
    """Recover Llama 3.1-style rope scaling from the `rope_freqs` tensor llama.cpp stores instead.

    The GGUF keeps only the per-frequency divisors; mlx-lm wants the four parameters that produce them.
    Every Llama 3.x release uses low/high frequency factors 1 and 4 and an original context of 8192, with
    the factor equal to the largest divisor, so we rebuild the divisors from those and check they match.
    """
    stored = _read_f32_table(header, "rope_freqs.weight")
    original = int(header.metadata.get(f"{header.architecture}.rope.scaling.original_context_length", 8192))
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


def _float32_literal(value: float) -> float:
    """1e-5 read back from a float32 is 9.9999997e-06; write the short decimal the author meant."""
    return float(f"{float(value):.7g}")
