"""Provides tiny random-weight model folders, one per thinking family, with the family's tokenizer and chat template.

Each family is a random llama of `random_weights` with the family's special tokens added to its tokenizer and the
family's chat template in `tokenizer_config.json`. The engine loads them like any model folder; tests and the
thinking benchmark answer through them with `Engine(sink, script=...)`, so the compute is real and the text exact.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlxchat.models.random_weights import RandomLlamaSpec, build_random_llama

_TURNS = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
)

QWEN3_TEMPLATE = _TURNS + (
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}"
    "{% endif %}"
)
"""Qwen3: the model opens `<think>` itself; `enable_thinking=false` writes an empty thinking block instead."""

OPENS_IN_PROMPT_TEMPLATE = _TURNS + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
"""DeepSeek-R1 distills, Qwen3-thinking-2507: the generation prompt opens `<think>`; the model only closes it."""

HARMONY_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|start|>' + message['role'] + '<|channel|>final<|message|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start|>assistant' }}{% endif %}"
)
"""gpt-oss: answers in channels; thinking is the `analysis` channel."""

GEMMA_TEMPLATE = _TURNS + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

FAMILIES = {
    "qwen3": (["<think>", "</think>"], QWEN3_TEMPLATE),
    "opens-in-prompt": (["<think>", "</think>"], OPENS_IN_PROMPT_TEMPLATE),
    "harmony": (["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>"], HARMONY_TEMPLATE),
    "gemma": (["<|channel>", "<channel|>"], GEMMA_TEMPLATE),
}


def build_thinking_model(folder: Path, family: str, spec: RandomLlamaSpec = RandomLlamaSpec()) -> Path:
    """A random model folder of `family` (a key of `FAMILIES`)."""
    from tokenizers import AddedToken, Tokenizer

    special, template = FAMILIES[family]
    build_random_llama(folder, spec)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in special])
    if tokenizer.get_vocab_size() > spec.vocab_size:
        raise ValueError(f"the {family} tokens do not fit a vocabulary of {spec.vocab_size}")
    tokenizer.save(str(folder / "tokenizer.json"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder
