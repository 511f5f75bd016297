"""A tiny random llama written by hand as llama.cpp would (permuted Q/K, mixed F32/F16/BF16/Q4_0 tensors,
untied output) converts with `keep_float` into a folder whose logits equal the original Hugging Face-layout
weights. (test_gguf_architectures covers every architecture and type through llama.cpp's own writer.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mlxchat.models.gguf import convert_gguf

HIDDEN, HEADS, KV_HEADS, FFN, LAYERS = 64, 4, 2, 96, 2
F32, F16, Q4_0, BF16 = 0, 1, 2, 30


def _permute_like_llama_cpp(w: np.ndarray, heads: int) -> np.ndarray:
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _as_f16(w: np.ndarray) -> tuple[np.ndarray, bytes]:
    half = w.astype(np.float16)
    return half.astype(np.float32), half.tobytes()


def _as_bf16(w: np.ndarray) -> tuple[np.ndarray, bytes]:
    bits = (w.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32), bits.tobytes()


def _as_q4_0(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, bytes]:
    """Random Q4_0 blocks: per 32 weights an f16 scale d, weights d * (q - 8) with q in 0..15."""
    rows, cols = shape
    q = rng.integers(0, 16, size=(rows, cols // 32, 32), dtype=np.uint8)
    d = (rng.random((rows, cols // 32)) * 0.02 + 0.005).astype(np.float16)
    packed = q[..., :16] | (q[..., 16:] << 4)
    raw = b"".join(d[r, b].tobytes() + packed[r, b].tobytes() for r in range(rows) for b in range(cols // 32))
    values = d.astype(np.float32)[..., None] * (q.astype(np.float32) - 8)
    return values.reshape(rows, cols), raw


def _tiny_llama(tmp_path: Path, gguf_writer) -> tuple[Path, dict[str, np.ndarray], int]:
    from tokenizers.pre_tokenizers import ByteLevel

    rng = np.random.default_rng(0)
    tokens = sorted(ByteLevel.alphabet()) + ["<|end|>"]
    vocab = len(tokens)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.08).astype(np.float32)

    hf: dict[str, np.ndarray] = {}
    tensors = []

    def add(gguf_name: str, hf_name: str, values: np.ndarray, type_id: int, raw: bytes | None = None) -> None:
        hf[hf_name] = values
        tensors.append((gguf_name, type_id, values.shape, raw if raw is not None else values.tobytes()))

    add("token_embd.weight", "model.embed_tokens.weight", normal(vocab, HIDDEN), F32)
    add("output_norm.weight", "model.norm.weight", 1 + normal(HIDDEN), F32)
    output, raw = _as_f16(normal(vocab, HIDDEN))
    add("output.weight", "lm_head.weight", output, F16, raw)
    head_dim = HIDDEN // HEADS
    for i in range(LAYERS):
        prefix, blk = f"model.layers.{i}.", f"blk.{i}."
        add(blk + "attn_norm.weight", prefix + "input_layernorm.weight", 1 + normal(HIDDEN), F32)
        add(blk + "ffn_norm.weight", prefix + "post_attention_layernorm.weight", 1 + normal(HIDDEN), F32)
        wq, _ = _as_f16(normal(HEADS * head_dim, HIDDEN))
        hf[prefix + "self_attn.q_proj.weight"] = wq
        tensors.append((blk + "attn_q.weight", F16, wq.shape, _permute_like_llama_cpp(wq, HEADS).astype(np.float16).tobytes()))
        wk, _ = _as_bf16(normal(KV_HEADS * head_dim, HIDDEN))
        hf[prefix + "self_attn.k_proj.weight"] = wk
        tensors.append((blk + "attn_k.weight", BF16, wk.shape, _as_bf16(_permute_like_llama_cpp(wk, KV_HEADS))[1]))
        add(blk + "attn_v.weight", prefix + "self_attn.v_proj.weight", normal(KV_HEADS * head_dim, HIDDEN), F32)
        add(blk + "attn_output.weight", prefix + "self_attn.o_proj.weight", normal(HIDDEN, HEADS * head_dim), F32)
        add(blk + "ffn_gate.weight", prefix + "mlp.gate_proj.weight", normal(FFN, HIDDEN), F32)
        add(blk + "ffn_up.weight", prefix + "mlp.up_proj.weight", normal(FFN, HIDDEN), F32)
        down, raw = _as_q4_0(rng, (HIDDEN, FFN))
        add(blk + "ffn_down.weight", prefix + "mlp.down_proj.weight", down, Q4_0, raw)
    metadata = {
        "general.architecture": "llama",
        "llama.block_count": LAYERS,
        "llama.embedding_length": HIDDEN,
        "llama.feed_forward_length": FFN,
        "llama.attention.head_count": HEADS,
        "llama.attention.head_count_kv": KV_HEADS,
        "llama.context_length": 256,
        "llama.rope.freq_base": 10000.0,
        "llama.attention.layer_norm_rms_epsilon": 1e-6,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [1] * (vocab - 1) + [3],
        "tokenizer.ggml.merges": [],
        "tokenizer.ggml.eos_token_id": vocab - 1,
    }
    return gguf_writer(tmp_path / "tiny-llama.gguf", metadata, tensors), hf, vocab


def test_tiny_llama_logits_match_the_original_weights(tmp_path: Path, gguf_writer) -> None:
    import mlx.core as mx
    import mlx_lm
    from mlx_lm.models import llama

    gguf, hf_weights, vocab = _tiny_llama(tmp_path, gguf_writer)
    folder = convert_gguf(gguf, tmp_path / "tiny", keep_float=True)  # dense: the original weights exactly
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["num_key_value_heads"] == KV_HEADS
    assert "quantization" not in config

    model, tokenizer = mlx_lm.load(str(folder))
    reference_args = {k: v for k, v in config.items() if not k.startswith("quantization")}
    reference = llama.Model(llama.ModelArgs.from_dict(reference_args))
    reference.load_weights([(k, mx.array(v)) for k, v in hf_weights.items()])
    tokens = mx.array([[5, 17, 42, 99, 3, vocab - 1, 64, 7]])
    ours, expected = model(tokens), reference(tokens)
    assert mx.allclose(ours, expected, atol=1e-4, rtol=1e-4).item()
    assert tokenizer.eos_token_ids == {vocab - 1}
