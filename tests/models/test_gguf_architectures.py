"""Every architecture, with every matrix type, converts into a folder `mlx_lm.load` opens and that computes
what a float32 model built from the GGUF's own dequantized numbers computes.

Tolerances, per weight: a type with an exact mapping (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K) comes back
bit for bit, Q8_K to float32 rounding, a re-quantized one (Q2_K, Q3_K, Q6_K, IQ4_*, float matrices) within
one quantization step of its group (MLX's own bound: its rounding keeps the group's zero exact, which can
cost more than half a step). Per logit: a file of exact types only matches the float32 reference to 1e-4
(kernel rounding), quantized or `keep_float`; a file mixing every type, converted with `bits=8`, keeps a
cosine similarity of at least 0.995 with it. (At the default 4 bits, random weights carry the re-quantization
error of their float matrices through every layer, so logits of tiny random models say little there: the
quality of each path on a real model is measured in benchmarks/gguf_quality.py.)
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from gguf_builders import EXACT, HEADS, KV_HEADS, MATRIX_TYPES, write_tiny_gguf
from mlxchat.models.gguf import convert_gguf

ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3")
PROMPT = [[5, 17, 42, 99, 3, 200, 64, 7, 120, 33, 250, 1]]

# Independent of the converter's own tables on purpose: the reference must not share its mistakes.
_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_LAYER = {
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "attn_qkv": "self_attn.qkv_proj",
    "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm", "ffn_gate": "mlp.gate_proj",
    "ffn_down": "mlp.down_proj",
}  # fmt: skip
_BY_ARCH = {
    "gemma": {"post_attention_norm": "post_attention_layernorm", "ffn_norm": "pre_feedforward_layernorm",
              "post_ffw_norm": "post_feedforward_layernorm", "ffn_up": "mlp.up_proj"},
    "phi3": {"ffn_norm": "post_attention_layernorm", "ffn_up": "mlp.gate_up_proj"},
    "other": {"ffn_norm": "post_attention_layernorm", "ffn_up": "mlp.up_proj"},
}  # fmt: skip


def _hf_name(arch: str, gguf_name: str) -> str:
    module, suffix = gguf_name.rsplit(".", 1)
    if module in _TOP:
        return f"{_TOP[module]}.{suffix}"
    _, layer, part = module.split(".")
    table = {**_LAYER, **_BY_ARCH["gemma" if arch.startswith("gemma") else arch if arch == "phi3" else "other"]}
    return f"model.layers.{layer}.{table[part]}.{suffix}"


def _llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's own Q/K permutation (convert_hf_to_gguf.py LlamaModel.permute)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _reference_model(arch: str, config: dict, tensors: dict):
    """A float32 mlx-lm model from the GGUF's dequantized numbers; llama keeps llama.cpp's permuted Q/K with
    traditional rope, the layout they were permuted for, so the converter's un-permutation is tested too."""
    import mlx.core as mx

    module = importlib.import_module(f"mlx_lm.models.{config['model_type']}")
    args = {k: v for k, v in config.items() if not k.startswith("quantization")}
    if arch in ("llama", "mistral"):
        args["rope_traditional"] = True
    model = module.Model(module.ModelArgs.from_dict(args))
    weights = {}
    for name, (_, values) in tensors.items():
        if arch.startswith("gemma") and name.endswith("norm.weight"):
            values = values - 1.0  # llama.cpp stores Gemma's norms as 1 + w
        weights[_hf_name(arch, name)] = mx.array(values)
    if hasattr(model, "sanitize"):
        weights = model.sanitize(weights)
    model.load_weights(list(weights.items()))
    return model


def _check_weights(arch: str, model, tensors: dict) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    params = dict(tree_flatten(model.parameters()))
    for name, (type_name, reference) in tensors.items():
        hf = _hf_name(arch, name)
        base = hf.removesuffix(".weight")
        if f"{base}.scales" in params:
            scales, biases = params[f"{base}.scales"], params[f"{base}.biases"]
            bits = params[hf].shape[-1] * 32 // reference.shape[-1]
            ours = np.array(mx.dequantize(params[hf], scales, biases, group_size=32, bits=bits))
        else:
            ours = np.array(params[hf].astype(mx.float32))
            scales = None
        if arch.startswith("gemma") and name.endswith("norm.weight"):
            ours = ours + 1.0
        if arch in ("llama", "mistral") and ".attn_q." in name:
            ours = _llama_cpp_permute(ours, HEADS)
        elif arch in ("llama", "mistral") and ".attn_k." in name:
            ours = _llama_cpp_permute(ours, KV_HEADS)
        if type_name in EXACT or scales is None:
            assert np.array_equal(ours, reference), f"{name} ({type_name}) changed"
        elif type_name == "Q8_K":  # float32 rounding of d * (q + 128) - 128 d: far below a step
            step = np.abs(np.repeat(np.array(scales), 32, axis=-1))
            assert (np.abs(ours - reference) <= step * 1e-4).all(), f"{name} (Q8_K) beyond float32 rounding"
        else:
            step = np.abs(np.repeat(np.array(scales), 32, axis=-1))  # MLX may store a negative scale
            if arch in ("llama", "mistral") and (".attn_q." in name or ".attn_k." in name):
                step = _llama_cpp_permute(step, HEADS if ".attn_q." in name else KV_HEADS)
            assert (np.abs(ours - reference) <= step * (1 + 1e-5) + 1e-7).all(), f"{name} ({type_name})"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_matrix_type_converts_exactly_or_within_one_step(tmp_path: Path, arch: str) -> None:
    """Default conversion (exact types kept, others to 4 or 8 bits) and `bits=8` (every matrix in 8 bits,
    exact types widened without loss): every weight within its bound; 8-bit logits close to the reference."""
    import mlx.core as mx
    import mlx_lm

    shift = ARCHITECTURES.index(arch) * 3  # each architecture meets the types in other tensors
    types = MATRIX_TYPES[shift:] + MATRIX_TYPES[:shift]
    tensors = write_tiny_gguf(tmp_path / f"{arch}.gguf", arch, types, seed=ARCHITECTURES.index(arch))
    for bits in (None, 8):
        folder = convert_gguf(tmp_path / f"{arch}.gguf", tmp_path / f"out-{bits}", bits=bits)
        model, tokenizer = mlx_lm.load(str(folder))
        _check_weights(arch, model, tensors)
    assert tokenizer.eos_token_ids == {257}
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"]["bits"] == 8 and len(config["quantization"]) == 3  # nothing stays dense

    reference = _reference_model(arch, config, tensors)
    tokens = mx.array(PROMPT)
    ours, expected = np.array(model(tokens)), np.array(reference(tokens))
    cosine = (ours * expected).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(expected, axis=-1)
    assert cosine.min() >= 0.995, f"{arch}: {cosine.round(4)}"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_exact_types_compute_the_reference_logits_quantized_and_dense(tmp_path: Path, arch: str) -> None:
    """Exact types only: the quantized folder and the `keep_float` folder both hold the GGUF's own numbers, so
    their logits differ from the float32 reference only by the rounding of MLX's kernels."""
    import mlx.core as mx
    import mlx_lm

    tensors = write_tiny_gguf(tmp_path / f"{arch}.gguf", arch, EXACT, seed=7)
    tokens = mx.array(PROMPT)
    for keep_float in (False, True):
        folder = convert_gguf(tmp_path / f"{arch}.gguf", tmp_path / f"out-{keep_float}", keep_float=keep_float)
        config = json.loads((folder / "config.json").read_text())
        assert ("quantization" in config) is not keep_float
        model, _ = mlx_lm.load(str(folder))
        _check_weights(arch, model, tensors)
        ours, expected = model(tokens), _reference_model(arch, config, tensors)(tokens)
        assert mx.allclose(ours, expected, atol=1e-4, rtol=1e-4).item(), f"keep_float={keep_float}"


def test_gemma3_sliding_window_pattern_from_the_file_or_llama_cpps_default() -> None:
    from mlxchat.models.errors import GGUFImportError
    from mlxchat.models.gguf_architectures import _sliding_window_pattern
    from mlxchat.models.gguf_reader import GGUFHeader

    def header(**metadata) -> GGUFHeader:
        return GGUFHeader(Path("g.gguf"), 3, {"general.architecture": "gemma3", **metadata}, {}, 0, 0)

    key = "gemma3.attention.sliding_window_pattern"
    assert _sliding_window_pattern(header()) == 6
    assert _sliding_window_pattern(header(**{key: ([True] * 3 + [False]) * 2})) == 4
    with pytest.raises(GGUFImportError, match="not a repeating pattern"):
        _sliding_window_pattern(header(**{key: [True, False, False]}))
