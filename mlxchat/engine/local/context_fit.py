"""Provides `fit_prompt`: the conversation's prompt tokens, cut to the model's context by the overflow policy.

`context_window.plan_window` decides from token costs; this module measures them with the model's tokenizer and
chat template, then renders the chosen messages and checks the real length (a template's framing is estimated per
message, so the check may shrink the room and plan again). The text route and the vision route (whose prompts
also hold image tokens) share `fit_messages`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from ..context_window import (
    ContextOverflow,
    Window,
    answer_room,
    describe_message_too_long,
    describe_overflow,
    plan_window,
)
from ..documents import describe_too_large, message_text
from ..errors import OverflowRefused, RequestError
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
    rendered: list[list[int]] = []

    def measure(candidate: ChatRequest) -> int:
        rendered.append(render_prompt(tokenizer, candidate))
        return len(rendered[-1])

    _fitted, window, length = fit_messages(tokenizer, request, context_size, model_name, measure)
    return FittedPrompt(rendered[-1], window, context_size - length)


def fit_messages(
    tokenizer,
    request: ChatRequest,
    context_size: int,
    model_name: str,
    measure: Callable[[ChatRequest], int],
    per_image: int = 0,
) -> tuple[ChatRequest, Window, int]:
    """The request cut to fit (its kept messages), the window, and its measured prompt length.

    `measure` gives the real prompt length of a request (the text route renders and tokenizes; the vision route
    also counts image tokens); the last call is always for the request returned, so a caller may keep what it
    built. `per_image` is the estimated token cost of one image, added to the cost of each message that has some.
    """
    everything = tuple(range(len(request.messages)))
    length = measure(request)
    if request.overflow == "stop":
        # The former behaviour: read everything, refuse only what cannot be read at all.
        if length >= context_size:
            _refuse_last_alone_too_long(tokenizer, request, length, context_size, model_name, measure)
            overflow = ContextOverflow(length, context_size - 1, "stop")
            raise OverflowRefused(describe_overflow(overflow, model_name, context_size))
        return request, Window(everything, (), length), length
    reserved = answer_room(context_size, request.sampling.max_tokens)
    room = context_size - reserved
    if length <= room:
        return request, Window(everything, (), length), length

    costs, overhead = message_costs(tokenizer, request.messages)
    costs = [cost + per_image * len(message.images) for cost, message in zip(costs, request.messages)]
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
        fitted = replace(request, messages=tuple(request.messages[i] for i in window.kept))
        length = measure(fitted)
        if length <= room:
            return fitted, window, length
        budget -= length - room  # the cost estimate was short: plan again with less room
    raise RequestError(describe_overflow(ContextOverflow(length, room, request.overflow), model_name, context_size))


def _refuse_last_alone_too_long(
    tokenizer,
    request: ChatRequest,
    length: int,
    context_size: int,
    model_name: str,
    measure: Callable[[ChatRequest], int],
) -> None:
    """Under "stop", a message that cannot fit even alone (with the system prompt) is plainly too long, as under
    the other policies: no other policy and no summary of the conversation would make it fit, so it must not be
    refused as an overflow (whose offer would loop: a new chat from a summary refuses it again). `length` is the
    whole prompt's, already measured."""
    messages = request.messages
    system = 0
    while system < len(messages) and messages[system].role == "system":
        system += 1
    keep_last = 2 if request.continue_last and len(messages) >= 2 and messages[-2].role == "user" else 1
    tail_start = max(system, len(messages) - keep_last)
    alone = length  # nothing before the last message: the whole prompt is it
    if tail_start > system:
        alone = measure(replace(request, messages=messages[:system] + messages[tail_start:]))
    if alone < context_size:
        return
    overflow = ContextOverflow(alone, context_size - 1, "stop")
    last = messages[-1]
    if last.documents:
        raise RequestError(_documents_too_large(tokenizer, last, overflow))
    raise RequestError(describe_message_too_long(overflow, model_name, context_size))


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
