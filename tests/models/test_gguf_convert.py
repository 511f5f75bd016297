"""The demo GGUF converts into a folder mlx-lm loads, computes the same logits as the GGUF, and answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxchat.models.gguf_reader import read_header

# Independent of the converter's own table on purpose: the reference must not share its mistakes.
_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm"}
_LAYER = {
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


def test_config_describes_the_gguf(converted_demo: Path) -> None:
    config = json.loads((converted_demo / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert (config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]) == (576, 30, 1536)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]) == (9, 3, 64)
    assert config["rope_theta"] == 100000.0 and config["rms_norm_eps"] == 1e-5
    assert config["rope_traditional"] is False and config["tie_word_embeddings"] is True
    assert config["vocab_size"] == 49152 and config["max_position_embeddings"] == 8192


def test_quantization_keeps_each_modules_bit_width(converted_demo: Path) -> None:
    """Q4_1 everywhere except the Q8_0 token embedding, which gets its own entry."""
    quantization = json.loads((converted_demo / "config.json").read_text())["quantization"]
    assert (quantization["bits"], quantization["group_size"]) == (4, 32)
    assert quantization["model.embed_tokens"] == {"group_size": 32, "bits": 8, "mode": "affine"}
    assert not any(key.startswith("model.layers") for key in quantization)


def test_scales_are_float32_on_the_cpu(converted_demo: Path) -> None:
    import mlx.core as mx

    if mx.default_device() != mx.cpu:
        pytest.skip("float32 scales are the CPU choice")
    weights = mx.load(str(converted_demo / "model.safetensors"))
    assert weights["model.layers.0.self_attn.q_proj.scales"].dtype == mx.float32
    assert weights["model.layers.0.self_attn.q_proj.biases"].dtype == mx.float32
    assert weights["model.embed_tokens.weight"].dtype == mx.uint32
    assert "lm_head.weight" not in weights


def test_tokenizer_files_carry_special_tokens_and_chat_template(converted_demo: Path, demo_gguf: Path) -> None:
    tokenizer_config = json.loads((converted_demo / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == "<|im_end|>"
    assert tokenizer_config["chat_template"] == read_header(demo_gguf).metadata["tokenizer.chat_template"]


def test_tokenizer_round_trips_and_splits_digits(loaded_demo) -> None:
    _, tokenizer = loaded_demo
    text = "Héllo wörld!  123\n\tdone <|im_end|>"
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert ids[-1] == 2  # <|im_end|> is matched whole, as a special token
    digits = tokenizer.encode("123")
    assert len(digits) == 3  # the "smollm" pre-tokenizer splits digits individually


def _dense_reference(gguf: Path, config: dict, *, rope_traditional: bool):
    """A float32 mlx-lm llama built from the GGUF's own (still permuted) weights, dequantized."""
    import mlx.core as mx
    from mlx_lm.models import llama

    raw = mx.load(str(gguf))
    dense = {}
    for key, value in raw.items():
        if not key.endswith(".weight"):
            continue
        base = key.removesuffix(".weight")
        if f"{base}.scales" in raw:
            scales, biases = raw[f"{base}.scales"], raw[f"{base}.biases"]
            bits = value.shape[-1] // scales.shape[-1]  # packed uint32s per 32-weight group
            value = mx.dequantize(value, scales.astype(mx.float32), biases.astype(mx.float32), group_size=32, bits=bits)
        parts = base.split(".")
        name = _TOP[base] if base in _TOP else f"model.layers.{parts[1]}.{_LAYER[parts[2]]}"
        dense[f"{name}.weight"] = value.astype(mx.float32)
    args = {k: v for k, v in config.items() if not k.startswith("quantization")}
    model = llama.Model(llama.ModelArgs.from_dict({**args, "rope_traditional": rope_traditional}))
    model.load_weights(list(dense.items()))
    return model


def test_logits_equal_a_dense_reference_from_the_same_gguf(converted_demo, loaded_demo, demo_gguf) -> None:
    """llama.cpp's rotary layout (permuted Q/K + traditional rope) must equal ours (unpermuted + default rope).

    The second reference, permuted weights with default rope, is what a converter that forgot to undo the
    permutation would produce: it must be far off, or this test could not catch that mistake.
    """
    import mlx.core as mx

    model, tokenizer = loaded_demo
    config = json.loads((converted_demo / "config.json").read_text())
    tokens = mx.array([tokenizer.encode("The capital of France is")])
    ours = model(tokens).astype(mx.float32)
    reference = _dense_reference(demo_gguf, config, rope_traditional=True)(tokens)
    assert mx.allclose(ours, reference, atol=2e-3, rtol=1e-4).item()
    assert (ours.argmax(-1) == reference.argmax(-1)).all().item()
    unpermuted_mistake = _dense_reference(demo_gguf, config, rope_traditional=False)(tokens)
    assert mx.abs(unpermuted_mistake - reference).max().item() > 1.0


def test_greedy_answer_names_paris(loaded_demo) -> None:
    from mlx_lm import generate

    model, tokenizer = loaded_demo
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    answer = generate(model, tokenizer, prompt, max_tokens=12)
    assert "Paris" in answer
