"""A continued answer keeps the space before its first new word."""

from __future__ import annotations

from mlx_lm.tokenizer_utils import load as load_tokenizer

from mlxchat.engine.local.generation import continue_text


def test_a_continuation_keeps_its_leading_space(tiny_model):
    tokenizer = load_tokenizer(tiny_model)
    token = tokenizer.encode(" capital", add_special_tokens=False)[0]
    assert tokenizer.decode([token]).startswith(" ")

    fresh = tokenizer.detokenizer
    fresh.reset()
    fresh.add_token(token)
    fresh.finalize()
    assert fresh.last_segment == "capital", "a new answer drops the space (mlx-lm's choice)"

    continued = tokenizer.detokenizer
    continued.reset()
    continue_text(continued)
    continued.add_token(token)
    continued.finalize()
    assert continued.last_segment == " capital"
