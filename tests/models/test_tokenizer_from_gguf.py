"""Tokenizer files rebuilt from GGUF metadata behave like the llama.cpp tokenizer they describe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxchat.models.errors import GGUFImportError
from mlxchat.models.tokenizer_from_gguf import write_tokenizer_files


def _byte_level_alphabet() -> list[str]:
    from tokenizers.pre_tokenizers import ByteLevel

    return sorted(ByteLevel.alphabet())


def _load(folder: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json"))


def test_sentencepiece_vocab_merges_by_score_and_falls_back_to_bytes(tmp_path: Path) -> None:
    pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "llo", "hello", "▁hello", "▁w", "or", "▁wor", "ld", "▁world"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces)
    scores = [0.0] * 259 + [-100.0 + len(p) for p in pieces]  # longer pieces score higher
    metadata = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
    }
    assert write_tokenizer_files(metadata, tmp_path) == [2]
    tokenizer = _load(tmp_path)
    encoding = tokenizer.encode("hello world")
    assert encoding.tokens == ["<s>", "▁hello", "▁world"]  # BOS added by default, space prefixed
    accented = tokenizer.encode("hé", add_special_tokens=False).tokens
    assert accented == ["▁", "h", "<0xC3>", "<0xA9>"]
    assert tokenizer.decode(tokenizer.encode("hello héllo").ids, skip_special_tokens=True) == "hello héllo"
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert (config["bos_token"], config["eos_token"], config["add_bos_token"]) == ("<s>", "</s>", True)


def test_llama3_style_byte_level_adds_bos_and_stops_on_eot(tmp_path: Path) -> None:
    alphabet = _byte_level_alphabet()
    tokens = alphabet + ["Ġw", "or", "Ġwor", "ld", "Ġworld", "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>"]
    begin = len(alphabet) + 5
    metadata = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "llama-bpe",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [1] * (len(alphabet) + 5) + [3, 3, 3],
        "tokenizer.ggml.merges": ["Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"],
        "tokenizer.ggml.bos_token_id": begin,
        "tokenizer.ggml.eos_token_id": begin + 2,
        "tokenizer.ggml.eot_token_id": begin + 1,
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.chat_template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}",
    }
    assert write_tokenizer_files(metadata, tmp_path) == [begin + 2, begin + 1]
    tokenizer = _load(tmp_path)
    encoding = tokenizer.encode("hi world<|eot_id|>")
    assert encoding.tokens == ["<|begin_of_text|>", "h", "i", "Ġworld", "<|eot_id|>"]
    assert tokenizer.decode(encoding.ids, skip_special_tokens=False) == "<|begin_of_text|>hi world<|eot_id|>"
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["chat_template"] == metadata["tokenizer.chat_template"]


def test_unknown_pre_tokenizer_is_named(tmp_path: Path) -> None:
    metadata = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "mystery-bpe",
        "tokenizer.ggml.tokens": _byte_level_alphabet(),
        "tokenizer.ggml.merges": [],
    }
    with pytest.raises(GGUFImportError, match=r"pre-tokenizer 'mystery-bpe' is not supported; supported: .*smollm"):
        write_tokenizer_files(metadata, tmp_path)


def test_unknown_tokenizer_model_is_named(tmp_path: Path) -> None:
    metadata = {"tokenizer.ggml.model": "rwkv", "tokenizer.ggml.tokens": ["a"]}
    with pytest.raises(GGUFImportError, match=r"tokenizer model 'rwkv' is not supported"):
        write_tokenizer_files(metadata, tmp_path)
