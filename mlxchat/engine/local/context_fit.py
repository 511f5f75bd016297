"""Provides `fit_prompt`: the conversation's prompt tokens, cut to the model's context by the overflow policy.

`prompt_fit.fit_messages` holds the rule (shared with the remote engine); this module gives it exact counts, from
the model's tokenizer and chat template, and renders the chosen messages so the rule checks the real length (a
template's framing is estimated per message, so the check may shrink the room and plan again). The text route and
the vision route (whose prompts also hold image tokens) share `fit_messages`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from ..context_window import Window
from ..documents import message_text
from ..prompt_fit import fit_messages as shared_fit_messages
from ..requests import ChatRequest, Message
from .chat_template import render_prompt
from .prompt_tokens import PromptTokens, RememberingTokenizer


@dataclass(frozen=True)
class FittedPrompt:
    """The prompt tokens to read this turn, which messages they hold, and the room left for the answer."""

    tokens: list[int]
    window: Window
    answer_room: int


def fit_prompt(
    tokenizer, request: ChatRequest, context_size: int, model_name: str, remembered: PromptTokens | None = None
) -> FittedPrompt:
    """Render `request` so that it fits in `context_size`, dropping turns as its overflow policy says.

    `remembered` is the conversation's last prompt (`prompt_tokens.PromptTokens`): every whole prompt rendered
    here is tokenized against it, and it then holds the prompt returned. Only whole prompts touch it: the
    per-message counts of a cut use the plain tokenizer (a long message used to replace it), and the whole
    conversation measured before a cut does not replace it either, so the cut prompt, which keeps the same
    window for several turns, reuses the last turn's tokens. Raises `RequestError` (with the numbers and the way
    out) when it cannot fit.
    """
    rendered: list[tuple[list[int], PromptTokens | None]] = []

    def measure(candidate: ChatRequest) -> int:
        against = replace(remembered) if remembered is not None else None  # a copy: each reads the last turn's
        reading = RememberingTokenizer(tokenizer, against) if against is not None else tokenizer
        rendered.append((render_prompt(reading, candidate), against))
        return len(rendered[-1][0])

    _fitted, window, length = fit_messages(tokenizer, request, context_size, model_name, measure)
    tokens, read = rendered[-1]
    if remembered is not None:
        remembered.text, remembered.tokens = read.text, read.tokens
    return FittedPrompt(tokens, window, context_size - length)


def fit_messages(
    tokenizer,
    request: ChatRequest,
    context_size: int,
    model_name: str,
    measure: Callable[[ChatRequest], int],
    per_image: int = 0,
) -> tuple[ChatRequest, Window, int]:
    """`prompt_fit.fit_messages` (the one fitting rule, shared with the remote engine) counting with the model's
    tokenizer and chat template."""
    return shared_fit_messages(TokenizerCounter(tokenizer), request, context_size, model_name, measure, per_image)


@dataclass(frozen=True)
class TokenizerCounter:
    """A `prompt_fit.TokenCounter` that counts exactly, with the model's tokenizer and chat template."""

    tokenizer: object

    def message_costs(self, messages: tuple[Message, ...]) -> tuple[list[int], int]:
        return message_costs(self.tokenizer, messages)

    def text_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))


def message_costs(tokenizer, messages: tuple[Message, ...]) -> tuple[list[int], int]:
    """Each message's token cost (its text plus the template's framing of one message) and the prompt's fixed
    overhead (BOS, a template's default system prompt, the generation prompt)."""

    def length(items: list[Message]) -> int:
        return len(render_prompt(tokenizer, ChatRequest(tuple(items))))

    def text_tokens(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    probe_user, probe_answer = Message("user", "x"), Message("assistant", "y")
    one = length([probe_user])
    three = length([probe_user, probe_answer, probe_user])
    framing = max(0, (three - one - text_tokens("y") - text_tokens("x")) // 2)
    overhead = max(0, one - text_tokens("x") - framing)
    return [text_tokens(message_text(message)) + framing for message in messages], overhead
