"""Provides `fit_prompt`: the conversation's prompt tokens, cut to the model's context by the overflow policy.

`context_window.plan_window` decides from token costs; this module measures them with the model's tokenizer and
chat template, then renders the chosen messages and checks the real length (a template's framing is estimated per
message, so the check may shrink the room and plan again).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..context_window import ContextOverflow, Window, answer_room, describe_overflow, plan_window
from ..documents import describe_too_large, message_text
from ..errors import RequestError
from ..requests import ChatRequest, Message
from .chat_template import render_prompt

_REPLANS = 4


@dataclass(frozen=True)
class FittedPrompt:
    """The prompt tokens to read this turn, which messages they hold, and the room left for the answer."""

    tokens: list[int]
    window: Window
    answer_room: int


def fit_prompt(tokenizer, request: ChatRequest, context_size: int, model_name: str) -> FittedPrompt:
    """Render `request` so that it fits in `context_size`, dropping turns as its overflow policy says.

    Raises `RequestError` (with the numbers and the way out) when it cannot fit.
    """
    everything = tuple(range(len(request.messages)))
    prompt = render_prompt(tokenizer, request)
    if request.overflow == "stop":
        # The former behaviour: read everything, refuse only what cannot be read at all.
        if len(prompt) >= context_size:
            overflow = ContextOverflow(len(prompt), context_size - 1, "stop")
            raise RequestError(describe_overflow(overflow, model_name, context_size))
        return FittedPrompt(prompt, Window(everything, (), len(prompt)), context_size - len(prompt))
    reserved = answer_room(context_size, request.sampling.max_tokens)
    room = context_size - reserved
    if len(prompt) <= room:
        return FittedPrompt(prompt, Window(everything, (), len(prompt)), context_size - len(prompt))

    costs, overhead = message_costs(tokenizer, request.messages)
    roles = [message.role for message in request.messages]
    keep_last = 2 if request.continue_last and len(roles) >= 2 and roles[-2] == "user" else 1
    budget = room - overhead
    for _ in range(_REPLANS):
        try:
            window = plan_window(costs, roles, room=budget, policy=request.overflow, keep_last=keep_last)
        except ContextOverflow as overflow:
            overflow.needed += overhead
            overflow.room += overhead
            last = request.messages[-1]
            if last.documents and overflow.policy != "stop":
                raise RequestError(_documents_too_large(tokenizer, last, overflow)) from None
            raise RequestError(describe_overflow(overflow, model_name, context_size)) from None
        kept = tuple(request.messages[i] for i in window.kept)
        prompt = render_prompt(tokenizer, replace(request, messages=kept))
        if len(prompt) <= room:
            return FittedPrompt(prompt, window, context_size - len(prompt))
        budget -= len(prompt) - room  # the framing estimate was short: plan again with less room
    raise RequestError(
        describe_overflow(ContextOverflow(len(prompt), room, request.overflow), model_name, context_size)
    )


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


def _documents_too_large(tokenizer, message: Message, overflow: ContextOverflow) -> str:
    """Name the documents of the last message, their tokens, and the room the rest of the prompt leaves them."""
    with_documents = len(tokenizer.encode(message_text(message), add_special_tokens=False))
    without = len(tokenizer.encode(message.content, add_special_tokens=False))
    document_tokens = with_documents - without
    room = overflow.room - (overflow.needed - document_tokens)
    return describe_too_large([path.name for path in message.documents], document_tokens, room)
