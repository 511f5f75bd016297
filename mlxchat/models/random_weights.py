"""Provides random-weight llama model folders with a real tokenizer, built offline in about a second.

Tests use tiny ones where only the code path matters (no download, fast on a CPU); the GPU benchmark uses a
realistic size (about 1B parameters, 4-bit) to measure speed without fetching weights. The folders are
ordinary mlx-lm model folders: `mlx_lm.load` and mlxchat load them like any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
    "{% if not (loop.last and continue_final_message) %}{{ '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EOS_TOKEN = "<|im_end|>"

_CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Hello! How can I help you today? Tell me about the weather, code, cats and images.",
    "def add(a, b):\n    return a + b\n",
    "Once upon a time there was a small model that answered every question with random words.",
    "What is in this picture? A red square, a blue circle and a green line on a white background.",
]


@dataclass(frozen=True)
class RandomLlamaSpec:
    """Sizes of the model to build. The defaults are tiny: a step takes well under a millisecond on a CPU."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    intermediate_size: int = 128
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vocab_size: int = 512
    max_position_embeddings: int = 8192
    quantize_bits: int | None = None
    group_size: int = 64
    seed: int = 0
    dtype: str = "float32"
    """The weights' (and so the activations' and KV cache's) precision; real checkpoints ship bfloat16 or
    float16. float32 suits the CPU, whose quantized matmul is ~40x slower with half-precision scales."""


# About 1.2B parameters, llama-3.2-1B-like shapes: realistic work per token for GPU benchmarks.
ONE_B = RandomLlamaSpec(
    hidden_size=2048,
    num_hidden_layers=16,
    intermediate_size=8192,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=32768,
    max_position_embeddings=131072,
    quantize_bits=4,
)


def train_tokenizer_json(folder: Path, vocab_size: int, corpus: list[str]) -> None:
    """Write `tokenizer.json`: a byte-level BPE trained on `corpus`, with the ChatML special tokens at fixed ids
    (so a retrained tokenizer keeps the ids the model folder's config and template expect)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.save(str(folder / "tokenizer.json"))


def build_tokenizer(folder: Path, vocab_size: int) -> None:
    """A byte-level BPE trained on a few sentences, with ChatML special tokens and a chat template."""
    train_tokenizer_json(folder, vocab_size, _CORPUS * 4)
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": None,
                "eos_token": EOS_TOKEN,
                "pad_token": "<|endoftext|>",
                "unk_token": None,
                "chat_template": CHAT_TEMPLATE,
                "model_max_length": 1_000_000,
            },
            indent=2,
        )
    )


def build_random_llama(folder: Path, spec: RandomLlamaSpec = RandomLlamaSpec()) -> Path:
    """Write a random-weight llama model folder. Greedy decoding never picks the end-of-turn token (its output
    row is zero, so its logit is 0 while some random logit is always larger), so a tiny model keeps talking
    until it is stopped or reaches its token limit — what cancel and drain tests need."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_tokenizer(folder, spec.vocab_size)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    eos_id = next(t["id"] for t in tokenizer["added_tokens"] if t["content"] == EOS_TOKEN)

    config = {
        "model_type": "llama",
        "hidden_size": spec.hidden_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "intermediate_size": spec.intermediate_size,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "rms_norm_eps": 1e-5,
        "vocab_size": spec.vocab_size,
        "max_position_embeddings": spec.max_position_embeddings,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "eos_token_id": eos_id,
    }
    mx.random.seed(spec.seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    lm_head = model.lm_head.weight
    model.lm_head.weight = mx.where(mx.arange(lm_head.shape[0])[:, None] == eos_id, 0.0, lm_head)
    model.set_dtype(getattr(mx, spec.dtype))
    if spec.quantize_bits:
        nn.quantize(model, group_size=spec.group_size, bits=spec.quantize_bits)
        config["quantization"] = {"group_size": spec.group_size, "bits": spec.quantize_bits}
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder
