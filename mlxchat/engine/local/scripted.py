"""Provides scripted decoding: a real model whose every next token is forced from a script.

The forward pass is the model's own, full cost included; only the choice of the next token is ours. Tests use it
for exact text through the real engine (thinking blocks, code fences, long answers), and benchmarks use it for
realistic text at the model's real speed: random weights print "!!!!", which never draws markdown on screen.

A script is handed to `Engine(script=...)`: a function from the request to the text (or token ids) it must
answer, or None to let the model choose freely. When the script runs out, the end-of-sequence token is forced.
"""

from __future__ import annotations

from typing import Callable, Sequence

import mlx.core as mx

from ..requests import ChatRequest

Script = Callable[[ChatRequest], "str | Sequence[int] | None"]


class ForcedTokens:
    """An mlx-lm logits processor that makes token `ids[i]` the only choice at step `i`, then end-of-sequence.

    mlx-lm calls a processor once per decode step, in order, so a counter is enough to know the step.
    """

    def __init__(self, ids: Sequence[int], eos_token_id: int) -> None:
        self.ids = list(ids)
        self.eos_token_id = eos_token_id
        self.step = 0

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        wanted = self.ids[self.step] if self.step < len(self.ids) else self.eos_token_id
        self.step += 1
        return only_token(logits, wanted)


def only_token(logits: mx.array, token: int) -> mx.array:
    """`logits` with `token` the only choice.

    The token keeps the model's own logit (raised to at least -1e8, above the -1e9 of every other token, so an
    earlier processor that ruled it out cannot win), which keeps the sampled token dependent on the forward pass:
    MLX then evaluates the pass at this step. A result that ignored `logits` would leave every forward pass lazy,
    its KV updates piling up unevaluated until the next prompt's prefill paid for all of them at once (measured:
    2 s for 100 forced tokens on a tiny model, all inside the next turn's time to first token).
    """
    mask = mx.arange(logits.shape[-1]) == token
    return mx.where(mask, mx.maximum(logits, -1e8), mx.full(logits.shape, -1e9, dtype=logits.dtype))


def forced_processor(script: Script | None, request: ChatRequest, tokenizer) -> ForcedTokens | None:
    """The processor that answers `request` with its scripted text, or None when there is no script for it."""
    if script is None:
        return None
    answer = script(request)
    if answer is None:
        return None
    ids = tokenizer.encode(answer, add_special_tokens=False) if isinstance(answer, str) else list(answer)
    eos = sorted(tokenizer.eos_token_ids)[0] if tokenizer.eos_token_ids else tokenizer.eos_token_id
    return ForcedTokens(ids, eos)
