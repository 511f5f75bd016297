"""Provides the Hugging Face tokenizer files for a GGUF model, built from the vocabulary inside the GGUF.

A GGUF carries its whole tokenizer as metadata (tokens, token types, merges or scores, the
pre-tokenizer's name, special-token ids, the chat template). transformers' own GGUF route needs torch, so
we rebuild `tokenizer.json` with the `tokenizers` library and write a `tokenizer_config.json` that
`AutoTokenizer` and mlx-lm read. Two tokenizer families are covered, following llama.cpp's behaviour:

* `gpt2`: byte-level BPE (SmolLM, Llama 3, ...); the pre-tokenizer regex depends on `tokenizer.ggml.pre`.
* `llama`: SentencePiece BPE with byte fallback (Llama 2, Mistral, TinyLlama); merges are derived from
  the token scores, and a space is prefixed to text at the start and after special tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from mlxchat.models.errors import GGUFImportError

# llama.cpp token types.
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6

_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)  # Llama 3's, but one digit per piece (Qwen2, Qwen2.5, Qwen3)

# tokenizer.ggml.pre value -> pre-tokenizer family (llama.cpp groups them the same way).
_PRE_TOKENIZERS = {
    "default": "gpt2",
    "gpt-2": "gpt2",
    "gpt2": "gpt2",
    "smollm": "digits",
    "starcoder": "digits",
    "refact": "digits",
    "codeshell": "digits",
    "llama-bpe": "llama3",
    "llama3": "llama3",
    "smaug-bpe": "llama3",
    "dbrx": "llama3",
    "falcon3": "llama3",
    "qwen2": "qwen2",
}
SUPPORTED_TOKENIZERS = "gpt2 (pre-tokenizers: " + ", ".join(sorted(_PRE_TOKENIZERS)) + ") and llama (SentencePiece)"


def write_tokenizer_files(metadata: dict[str, Any], out_dir: Path) -> list[int]:
    """Write `tokenizer.json` and `tokenizer_config.json` into `out_dir`; return the end-of-turn token ids.

    The ids (eos, plus eot/eom where the GGUF names them, as Llama 3 does) go into config.json so
    mlx-lm stops generating at any of them.
    """
    tokens: list[str] = metadata.get("tokenizer.ggml.tokens") or []
    if not tokens:
        raise GGUFImportError("the GGUF has no tokenizer vocabulary (tokenizer.ggml.tokens).")
    kind = metadata.get("tokenizer.ggml.model")
    builders: dict[str, Callable[[dict[str, Any]], Any]] = {"gpt2": _byte_level_bpe, "llama": _sentencepiece_bpe}
    if kind not in builders:
        raise GGUFImportError(f"tokenizer model {kind!r} is not supported; supported: {SUPPORTED_TOKENIZERS}.")
    tokenizer = builders[kind](metadata)
    tokenizer.save(str(out_dir / "tokenizer.json"))

    def token_at(key: str) -> str | None:
        index = metadata.get(key)
        return tokens[index] if isinstance(index, int) and 0 <= index < len(tokens) else None

    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": token_at("tokenizer.ggml.bos_token_id"),
        "eos_token": token_at("tokenizer.ggml.eos_token_id"),
        "unk_token": token_at("tokenizer.ggml.unknown_token_id"),
        "pad_token": token_at("tokenizer.ggml.padding_token_id"),
        "add_bos_token": _adds_bos(metadata),
        "add_eos_token": bool(metadata.get("tokenizer.ggml.add_eos_token", False)),
        "clean_up_tokenization_spaces": False,
    }
    config = {key: value for key, value in config.items() if value is not None}
    if isinstance(context := metadata.get(f"{metadata.get('general.architecture')}.context_length"), int):
        config["model_max_length"] = context
    format_name, template, end_of_turn = turn_format(metadata)
    config["chat_template"] = template
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")

    stop_keys = ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id")
    stop_ids = [metadata[key] for key in stop_keys if isinstance(metadata.get(key), int)]
    if end_of_turn is not None:
        stop_ids.append(tokens.index(end_of_turn))
    return list(dict.fromkeys(stop_ids))


# Turn formats for GGUFs without a chat template (base models), recognised by their control tokens:
# (name, tokens that must all be in the vocabulary, end-of-turn token, template; BOS is added where used).
_TURN_FORMATS = (
    ("chatml", ("<|im_start|>", "<|im_end|>"), "<|im_end|>",
     "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    ("llama3", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), "<|eot_id|>",
     "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' "
     "+ m['content'] + '<|eot_id|>' }}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"),
    ("gemma", ("<start_of_turn>", "<end_of_turn>"), "<end_of_turn>",
     "{{ bos_token }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else 'user' %}"
     "{{ '<start_of_turn>' + role + '\\n' + m['content'] + '<end_of_turn>\\n' }}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"),
    ("phi3", ("<|user|>", "<|assistant|>", "<|end|>"), "<|end|>",
     "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"),
)  # fmt: skip
_PLAIN_COMPLETION = (
    "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% if not loop.last %}{{ '\\n\\n' }}{% endif %}"
    "{% endfor %}"
)
FROM_FILE = "from the file"


def turn_format(metadata: dict[str, Any]) -> tuple[str, str, str | None]:
    """(format name, chat template, extra end-of-turn token) for this GGUF.

    The file's own `tokenizer.chat_template` when it has one (name `FROM_FILE`); else the turn format its
    control tokens belong to (ChatML, Llama 3, Gemma, Phi-3), so a base model of a known family still
    answers turn by turn; else "plain completion": the messages joined as text for the model to continue.
    """
    if template := metadata.get("tokenizer.chat_template"):
        return FROM_FILE, template, None
    tokens = set(metadata.get("tokenizer.ggml.tokens") or [])
    bos = "{{ bos_token }}" if _adds_bos(metadata) else ""
    for name, needed, end_of_turn, template in _TURN_FORMATS:
        if all(token in tokens for token in needed):
            return name, template.replace("{{ bos_token }}", bos), end_of_turn
    return "plain completion", _PLAIN_COMPLETION.replace("{{ bos_token }}", bos), None


def _adds_bos(metadata: dict[str, Any]) -> bool:
    # llama.cpp's defaults when the key is absent: SentencePiece adds BOS, byte-level BPE does not.
    default = metadata.get("tokenizer.ggml.model") == "llama"
    return bool(metadata.get("tokenizer.ggml.add_bos_token", default))


def _vocab(tokens: list[str]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)  # a duplicated string keeps its first id, as llama.cpp does
    return vocab


def _special_tokens(tokenizer: Any, metadata: dict[str, Any]) -> None:
    """Register control tokens as special and user-defined ones as plain added tokens (matched whole)."""
    from tokenizers import AddedToken

    tokens = metadata["tokenizer.ggml.tokens"]
    types = metadata.get("tokenizer.ggml.token_type") or [_NORMAL] * len(tokens)
    special = [t for t, kind in zip(tokens, types) if kind in (_CONTROL, _UNKNOWN)]
    user = [t for t, kind in zip(tokens, types) if kind == _USER_DEFINED]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])


def _bos_post_processor(metadata: dict[str, Any]) -> Any | None:
    from tokenizers import processors

    tokens = metadata["tokenizer.ggml.tokens"]
    bos_id = metadata.get("tokenizer.ggml.bos_token_id")
    if not _adds_bos(metadata) or not isinstance(bos_id, int) or not 0 <= bos_id < len(tokens):
        return None
    bos = tokens[bos_id]
    return processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
    )


def _byte_level_bpe(metadata: dict[str, Any]) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    pre_name = metadata.get("tokenizer.ggml.pre", "default")
    family = _PRE_TOKENIZERS.get(pre_name)
    if family is None:
        raise GGUFImportError(
            f"pre-tokenizer {pre_name!r} is not supported; supported: {', '.join(sorted(_PRE_TOKENIZERS))}."
        )
    vocab = _vocab(metadata["tokenizer.ggml.tokens"])
    merges = _checked_merges(metadata.get("tokenizer.ggml.merges") or [], vocab)
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            ignore_merges=family == "llama3",  # as in Llama 3's own tokenizer.json and llama.cpp
        )
    )
    prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", False))
    if family in ("llama3", "qwen2"):
        regex = _LLAMA3_REGEX if family == "llama3" else _QWEN2_REGEX
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(regex), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=prefix, use_regex=False),
            ]
        )
    elif family == "digits":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=prefix)]
        )
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = _bos_post_processor(metadata) or processors.ByteLevel(trim_offsets=False)
    _special_tokens(tokenizer, metadata)
    return tokenizer


def _checked_merges(merges: list[str], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Merges as pairs; one whose parts or result are not tokens is named (the tokenizers library only says
    "out of vocabulary", without saying which GGUF entry)."""
    pairs = []
    for index, merge in enumerate(merges):
        pair = tuple(merge.split(" ", 1))
        if len(pair) != 2 or any(piece not in vocab for piece in (*pair, "".join(pair))):
            raise GGUFImportError(
                f"tokenizer.ggml.merges[{index}] ({merge!r}) joins pieces that are not all in the vocabulary "
                "(tokenizer.ggml.tokens): the file is inconsistent."
            )
        pairs.append(pair)
    return pairs


def _sentencepiece_bpe(metadata: dict[str, Any]) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers

    tokens: list[str] = metadata["tokenizer.ggml.tokens"]
    scores: list[float] = metadata.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
    types = metadata.get("tokenizer.ggml.token_type") or [_NORMAL] * len(tokens)
    vocab = _vocab(tokens)
    unk_id = metadata.get("tokenizer.ggml.unknown_token_id", 0)
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=_merges_from_scores(tokens, scores, types, vocab),
            unk_token=tokens[unk_id] if isinstance(unk_id, int) and 0 <= unk_id < len(tokens) else None,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", True))
    steps = [normalizers.Prepend("▁")] if prefix else []
    tokenizer.normalizer = normalizers.Sequence([*steps, normalizers.Replace(" ", "▁")])
    decode = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if prefix:
        decode.append(decoders.Strip(" ", 1, 0))
    tokenizer.decoder = decoders.Sequence(decode)
    if post := _bos_post_processor(metadata):
        tokenizer.post_processor = post
    _special_tokens(tokenizer, metadata)
    return tokenizer


def _merges_from_scores(
    tokens: list[str], scores: list[float], types: list[int], vocab: dict[str, int]
) -> list[tuple[str, str]]:
    """Derive BPE merges from SentencePiece scores: a piece that splits into two known pieces is a merge.

    A higher score means the merged piece is preferred, so it is merged earlier (the same rule
    transformers uses to turn a SentencePiece model into a `tokenizers` BPE).
    """
    mergeable = {t for t, kind in zip(tokens, types) if kind in (_NORMAL, _USER_DEFINED)}
    candidates: list[tuple[str, str, float]] = []
    for token, score, kind in zip(tokens, scores, types):
        if kind not in (_NORMAL, _USER_DEFINED):
            continue
        local = [
            (token[:cut], token[cut:], score)
            for cut in range(1, len(token))
            if token[:cut] in mergeable and token[cut:] in mergeable
        ]
        candidates.extend(sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]])))
    candidates.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(left, right) for left, right, _ in candidates]
