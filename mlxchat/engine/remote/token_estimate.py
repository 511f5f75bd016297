"""Provides `TokenEstimate`: prompt token counts for a remote model, estimated from characters.

Why an estimate: an OpenAI-compatible server gives neither its tokenizer nor its chat template, so the remote
engine cannot count a prompt's tokens before sending it. It counts characters instead and turns them into tokens
with a characters-per-token ratio. The ratio starts conservative (3 characters of ASCII text per token, where
English prose with a modern BPE is about 4, so the estimate errs long and the overflow policy leaves turns out a
little early rather than too late) and is calibrated from the server's own count: each reply's
`usage.prompt_tokens`, against the characters of the prompt that produced it, sets the ratio for the next turns
of the session (with a 10 % margin). A server that still finds the prompt too long is answered by a retry with a
tighter fit (see `RemoteEngine`), which also lowers the ratio.

Non-ASCII characters count as 4 ASCII ones: CJK text and emoji cost about a token per character or more, so
counting them as ASCII would guess far too low. Framing (the template's role markers around each message) and
the prompt's fixed overhead are guesses too, on the high side of what common templates spend.
"""

from __future__ import annotations

import math
from ..documents import message_text
from ..requests import ChatRequest, Message

DEFAULT_CHARS_PER_TOKEN = 3.0
"""Conservative: English prose is about 4 characters per token, code about 3."""
FRAMING_TOKENS = 8
"""Per message: common templates spend 3–8 tokens on role markers and separators."""
OVERHEAD_TOKENS = 16
"""Per prompt: BOS, the generation prompt, a template's default system prompt (often more for some models)."""
IMAGE_TOKENS = 1024
"""Per image: vision models spend from ~256 (Gemma 3) to over 1,000 (Qwen2.5-VL at this size) tokens."""
CALIBRATION_MARGIN = 0.9
"""The calibrated ratio is lowered by 10 %, so a turn a little denser than the last is still counted long."""
MIN_CALIBRATION_CHARS = 400
"""Below this, the fixed guesses (framing, overhead) swamp the text: a ratio from it would be noise."""
_RATIO_BOUNDS = (0.5, 8.0)


def weighted_chars(text: str) -> int:
    """ASCII characters count once, others four times (see the module docstring)."""
    ascii_count = len(text.encode("ascii", errors="ignore"))
    return ascii_count + 4 * (len(text) - ascii_count)


class TokenEstimate:
    """A `prompt_fit.TokenCounter` for one remote model, calibrated over the session from the server's counts."""

    def __init__(self, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> None:
        self.chars_per_token = chars_per_token
        self.calibrated = False

    def text_tokens(self, text: str) -> int:
        return math.ceil(weighted_chars(text) / self.chars_per_token)

    def message_costs(self, messages: tuple[Message, ...]) -> tuple[list[int], int]:
        costs = [self.text_tokens(message_text(m)) + FRAMING_TOKENS + IMAGE_TOKENS * len(m.images) for m in messages]
        return costs, OVERHEAD_TOKENS

    def prompt_tokens(self, request: ChatRequest) -> int:
        """The estimated prompt length of `request` (the `measure` of `prompt_fit.fit_messages`)."""
        costs, overhead = self.message_costs(request.messages)
        return sum(costs) + overhead

    def calibrate(self, sent: ChatRequest, prompt_tokens: int) -> None:
        """Learn the ratio from the server's `usage.prompt_tokens` for the prompt `sent`. Counts too small to
        tell, or that make no sense (the server's count is below the fixed guesses), are ignored."""
        chars, fixed = _text_chars_and_fixed(sent)
        if chars < MIN_CALIBRATION_CHARS or prompt_tokens - fixed <= 0:
            return
        self._set_ratio(chars / (prompt_tokens - fixed))
        self.calibrated = True

    def tighten(self, sent: ChatRequest, server_tokens: int | None = None) -> None:
        """The server refused `sent` as too long: set the ratio so the estimate of `sent` is the server's count
        (when its error said one: the truth, even when lower than the estimate), or its text part grows by a
        quarter. As in `calibrate`, only the text part is scaled (the fixed guesses for framing and images are
        not the ratio's error) and the ratio stays in its bounds; a count below the fixed guesses tells nothing
        of the text and is ignored."""
        chars, fixed = _text_chars_and_fixed(sent)
        if not chars:
            return
        if server_tokens:
            if server_tokens - fixed <= 0:
                return
            self._set_ratio(chars / (server_tokens - fixed))
            self.calibrated = True
        else:
            self._set_ratio(self.chars_per_token / 1.25)

    def _set_ratio(self, chars_per_token: float) -> None:
        """`chars_per_token` less the margin, within the bounds."""
        low, high = _RATIO_BOUNDS
        self.chars_per_token = min(high, max(low, chars_per_token * CALIBRATION_MARGIN))


def _text_chars_and_fixed(sent: ChatRequest) -> tuple[int, int]:
    """The weighted characters of `sent`'s text, and its fixed token guesses (overhead, framing, images)."""
    chars = sum(weighted_chars(message_text(m)) for m in sent.messages)
    fixed = OVERHEAD_TOKENS + sum(FRAMING_TOKENS + IMAGE_TOKENS * len(m.images) for m in sent.messages)
    return chars, fixed
