"""Provides thinking on the local route: where a turn starts (thinking or not) and the thinking budget.

The budget is an mlx-lm logits processor, like `scripted.ForcedTokens`: once the model has thought `budget`
tokens, it makes the model's own end-of-thinking text (`ThinkingFormat.force_close`) the only choice, one token a
step, and then lets the model answer freely. The model's compute stays its own; only those few choices are ours.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import mlx.core as mx

from ..requests import ChatRequest
from ..thinking import ThinkingFormat, ThinkingSplitter, resume_applies
from .scripted import only_token


class ThinkingBudget:
    """Ends thinking after `budget` tokens by forcing the end marker's tokens.

    mlx-lm computes step k+1's logits before it hands step k's token to the decode loop, so this processor keeps
    its own `ThinkingSplitter`, fed the same tokens, to know whether the model is thinking. It tells the decode
    loop's splitter (`reported_to`) that the budget ended the thinking, so the `ThinkingDone` event can say so.
    Reading the newest token costs one synchronisation per step, so the processor is only installed when a budget
    is set.
    """

    def __init__(
        self, format: ThinkingFormat, budget: int, tokenizer: Any, thinking: bool, reported_to: ThinkingSplitter
    ) -> None:
        self.budget = budget
        self.reported_to = reported_to
        self._tokenizer = tokenizer
        self._splitter = ThinkingSplitter(format, thinking)
        self._close_ids = list(tokenizer.encode(format.force_close, add_special_tokens=False))
        self._forcing: list[int] = []
        self._thought = 0
        self._first_call = True

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        if self._first_call:  # `tokens` ends with the prompt's last token: nothing generated yet
            self._first_call = False
        else:
            newest = int(tokens[-1].item())
            was_thinking = self._splitter.thinking
            self._splitter.feed(self._tokenizer.decode([newest]))
            if was_thinking:
                self._thought += 1
        if self._forcing:
            return only_token(logits, self._forcing.pop(0))
        if self._splitter.thinking and self._thought >= self.budget and self._close_ids:
            self.reported_to.cut_by_budget = True
            self._forcing = self._close_ids[1:]
            return only_token(logits, self._close_ids[0])
        return logits


def settle_resume(request: ChatRequest, format: ThinkingFormat | None) -> ChatRequest:
    """`request` with `resume_thinking` kept only where a resume applies (`thinking.resume_applies`, the rule the
    chat screen asks too). Every later step (the prompt, the splitter's start, the budget, the counts,
    `Finished.reasoning`) only reads whether it is set."""
    applies = resume_applies(request, format is not None)
    return request if applies or not request.resume_thinking else replace(request, resume_thinking="")


def thinking_setup(
    format: ThinkingFormat | None, tokenizer: Any, request: ChatRequest, generation_prompt: Callable[[], str]
) -> tuple[ThinkingSplitter | None, ThinkingBudget | None]:
    """The splitter for this turn's decode loop and, when thinking is capped, the budget processor.

    `generation_prompt` gives what the template appends to open the answer; it is called only when that decides
    whether the turn starts thinking (a model with a thinking format, a new answer): it renders the whole
    conversation twice (0.8 ms on this CPU for a 4,800-token chat, inside every turn's time to first token),
    which a model without thinking never needs.

    Thinking switched off on a model whose template has no switch is a budget of 0: the model opens its thinking
    and the engine closes it at once. A continued answer starts in the answer; a resumed one (`settle_resume` kept
    its `resume_thinking`) in its thinking, whose earlier tokens count against the budget.
    """
    if format is None:
        return None, None
    resuming = bool(request.resume_thinking)
    thinking = resuming or (not request.continue_last and format.starts_thinking(generation_prompt()))
    splitter = ThinkingSplitter(format, thinking, trim_start=not resuming)
    budget = request.thinking_budget
    if request.thinking is False and format.switch is None:
        budget = 0
    if budget is None:
        return splitter, None
    if resuming:
        budget = max(0, budget - len(tokenizer.encode(request.resume_thinking, add_special_tokens=False)))
    return splitter, ThinkingBudget(format, budget, tokenizer, thinking, splitter)
