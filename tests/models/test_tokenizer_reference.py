"""Tokenizers rebuilt from GGUF metadata split mixed text (accents, CJK, emoji, code, runs of spaces) token
for token like an independently built reference: a SentencePiece model trained by `sentencepiece` itself
(as in Llama 2, Mistral, Gemma) and byte-level BPE models trained by `tokenizers` with each family's own
pre-tokenizer (GPT-2, SmolLM, Qwen2, Llama 3), exported into GGUF metadata the way llama.cpp does."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxchat.models.tokenizer_from_gguf import write_tokenizer_files

CORPUS = [
    "Héllo wörld! Ça va? Où est la gare? naïve café résumé façade",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "Emoji: 😀 🚀 👍🏽 ❤️ and 🇫🇷 flags",
    "def main(argv: list[str]) -> int:\n    return len(argv) * 2  # 123456\n",
    "    leading spaces,\ttabs and   runs   of spaces\n\nnew lines",
    "The quick brown fox jumps over the lazy dog 0123456789 times.",
] * 20
SAMPLES = [
    "Héllo wörld, naïve façade!",
    "  two leading spaces and trailing  ",
    "東京と北京 😀🚀 👍🏽",
    "for i in range(10):\n\tprint(i ** 2)  # 9876543210",
    "unseen: Ωmega ŋ 𝔘nicode ﬁ ligature",
]

_QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)


def _reference_pre_tokenizer(pre: str):
    """Each family's pre-tokenizer as its own tokenizer.json on the Hub declares it."""
    from tokenizers import Regex, pre_tokenizers

    if pre == "default":
        return pre_tokenizers.ByteLevel(add_prefix_space=False)
    if pre == "smollm":
        return pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
    regex = {"qwen2": _QWEN2_REGEX, "llama-bpe": _LLAMA3_REGEX}[pre]
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


@pytest.mark.parametrize("pre", ["default", "smollm", "qwen2", "llama-bpe"])
def test_byte_level_bpe_matches_a_trained_reference(tmp_path: Path, pre: str) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    reference = Tokenizer(models.BPE())
    reference.pre_tokenizer = _reference_pre_tokenizer(pre)
    reference.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"]
    )
    reference.train_from_iterator(CORPUS, trainer)
    state = reference.to_str()
    import json

    model = json.loads(state)["model"]
    vocab = sorted(model["vocab"].items(), key=lambda item: item[1])
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    metadata = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": [token for token, _ in vocab],
        "tokenizer.ggml.token_type": [3 if token == "<|endoftext|>" else 1 for token, _ in vocab],
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.eos_token_id": model["vocab"]["<|endoftext|>"],
    }
    write_tokenizer_files(metadata, tmp_path)
    ours = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in SAMPLES:
        expected = reference.encode(text).ids
        assert ours.encode(text, add_special_tokens=False).ids == expected, text
        assert ours.decode(expected) == text


def test_sentencepiece_matches_sentencepiece_itself(tmp_path: Path) -> None:
    """A BPE model with byte fallback trained by `sentencepiece`, exported as llama.cpp's converter does
    (pieces, scores, token types), splits every sample exactly as `sentencepiece` does, bytes included."""
    import sentencepiece as spm
    from tokenizers import Tokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=500, model_type="bpe",
        byte_fallback=True, character_coverage=0.9995, normalization_rule_name="identity",
        remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True,
        bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2,
    )  # fmt: skip
    processor = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    size = processor.get_piece_size()

    def token_type(i: int) -> int:  # llama.cpp's SentencePiece token types
        if processor.is_unknown(i):
            return 2
        if processor.is_control(i):
            return 3
        if processor.is_byte(i):
            return 6
        return 1

    metadata = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [processor.id_to_piece(i) for i in range(size)],
        "tokenizer.ggml.scores": [processor.get_score(i) for i in range(size)],
        "tokenizer.ggml.token_type": [token_type(i) for i in range(size)],
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
    }
    write_tokenizer_files(metadata, tmp_path)
    ours = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in SAMPLES:
        expected = processor.encode(text)
        assert ours.encode(text, add_special_tokens=False).ids == expected, text
        assert ours.decode(expected) == text
        assert ours.encode(text).ids == [1, *expected]  # BOS first, as llama.cpp adds it
