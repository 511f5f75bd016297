"""Provides `fit_messages`: a request cut to the model's context by its overflow policy, whatever counts tokens.

`context_window.plan_window` decides from token costs; this module asks a `TokenCounter` for those costs, checks
the measured length of what it chose, and plans again with less room when the costs were short. The local
engine counts with the model's tokenizer and chat template (`engine/local/context_fit.py`); the remote engine,
which has neither, estimates from characters (`engine/remote/token_estimate.py`). One rule for both, so a
conversation is cut the same way, refused the same way ("stop"), and its hidden turns marked the same way,
whichever backend answers it. Nothing here imports MLX.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Protocol

from .context_window import (
    ContextOverflow,
    Window,
    answer_room,
    describe_message_too_long,
    describe_overflow,
    plan_window,
)
from .documents import describe_too_large, message_text
from .errors import OverflowRefused, RequestError
from .requests import ChatRequest, Message

_REPLANS = 4


class TokenCounter(Protocol):
    """What the fitting needs to know of a model's tokens (counted exactly, or estimated)."""

    def message_costs(self, messages: tuple[Message, ...]) -> tuple[list[int], int]:
        """Each message's token cost (its text plus the template's framing of one message), and the prompt's
        fixed overhead (BOS, a default system prompt, the generation prompt)."""

    def text_tokens(self, text: str) -> int:
        """The tokens of `text` alone."""


def fit_messages(
    counter: TokenCounter,
    request: ChatRequest,
    context_size: int,
    model_name: str,
    measure: Callable[[ChatRequest], int],
    per_image: int = 0,
) -> tuple[ChatRequest, Window, int]:
    """The request cut to fit (its kept messages), the window, and its measured prompt length.

    `measure` gives the prompt length of a request (the local text route renders and tokenizes; the vision route
    also counts image tokens; the remote engine estimates); the last call is always for the request returned, so
    a caller may keep what it built. `per_image` is the estimated token cost of one image, added to the cost of
    each message that has some. Raises `OverflowRefused` ("stop" and too long) or `RequestError` (nothing fits).
    """
    everything = tuple(range(len(request.messages)))
    length = measure(request)
    if request.overflow == "stop":
        # The former behaviour: read everything, refuse only what cannot be read at all.
        if length >= context_size:
            _refuse_last_alone_too_long(counter, request, length, context_size, model_name, measure)
            overflow = ContextOverflow(length, context_size - 1, "stop")
            raise OverflowRefused(describe_overflow(overflow, model_name, context_size))
        return request, Window(everything, (), length), length
    if not must_cut(request, length, context_size):
        return request, Window(everything, (), length), length
    room = prompt_room(request, context_size)

    costs, overhead = counter.message_costs(request.messages)
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
                raise RequestError(_documents_too_large(counter, last, overflow)) from None
            raise RequestError(describe_overflow(overflow, model_name, context_size)) from None
        fitted = replace(request, messages=tuple(request.messages[i] for i in window.kept))
        length = measure(fitted)
        if length <= room:
            return fitted, window, length
        budget -= length - room  # the cost estimate was short: plan again with less room
    raise RequestError(describe_overflow(ContextOverflow(length, room, request.overflow), model_name, context_size))


def prompt_room(request: ChatRequest, context_size: int) -> int:
    """The prompt tokens that leave the answer its room (`context_window.answer_room`)."""
    return context_size - answer_room(context_size, request.sampling.max_tokens)


def must_cut(request: ChatRequest, length: int, context_size: int) -> bool:
    """Whether a prompt of `length` tokens is cut by the request's overflow policy: it leaves the answer too little
    room, and the policy is not "stop" (which reads everything or refuses). A caller that must pay for something
    only a cut needs (the vision route: an image's token cost) asks this first."""
    return request.overflow != "stop" and length > prompt_room(request, context_size)


def _refuse_last_alone_too_long(
    counter: TokenCounter,
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
        raise RequestError(_documents_too_large(counter, last, overflow))
    raise RequestError(describe_message_too_long(overflow, model_name, context_size))


def _documents_too_large(counter: TokenCounter, message: Message, overflow: ContextOverflow) -> str:
    """Name the documents of the last message, their tokens, and the room the rest of the prompt leaves them."""
    document_tokens = counter.text_tokens(message_text(message)) - counter.text_tokens(message.content)
    room = overflow.room - (overflow.needed - document_tokens)
    return describe_too_large([path.name for path in message.documents], document_tokens, room)
