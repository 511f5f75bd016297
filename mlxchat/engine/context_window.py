"""Provides the overflow policy: which turns of a conversation fit in the model's context.

A conversation longer than the model's context must not stop the chat. `plan_window` decides, from plain numbers
(the token cost of each message, the room there is), which messages the model reads this turn; the others stay
in history and the UI marks them "not in the model's view". Nothing here imports MLX, so the decision is tested
with plain values and any backend can use it.

Policies:

- ``truncate-middle`` (the default): keep the system prompt and the first exchange (the user's first message
  and its answer: most chats state their task there), plus as many recent turns as fit.
- ``rolling-window``: keep the system prompt plus as many recent turns as fit.
- ``stop``: read everything or refuse (`OverflowRefused`), naming the ways out: another policy, or a new
  conversation from a summary of this one (the chat screen offers both; `mlxchat ask` names its flags).

The window moves in steps of a quarter of the room, not one turn at a time. A window that slid by one turn every
turn would change the prompt right after the pinned start each time, and the prompt cache could reuse only that
start; a window that jumps by a quarter keeps the same prefix for the next several turns, so they prefill only
what is new. The step is derived from the messages alone (not from the previous turn), so the same history
always gives the same window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

OverflowPolicy = Literal["truncate-middle", "rolling-window", "stop"]
OVERFLOW_POLICIES: tuple[OverflowPolicy, ...] = ("truncate-middle", "rolling-window", "stop")
DEFAULT_OVERFLOW: OverflowPolicy = "truncate-middle"


class ContextOverflow(Exception):
    """The messages cannot be made to fit: `needed` tokens against `room` (policy "stop", or a last message that
    alone is too long)."""

    def __init__(self, needed: int, room: int, policy: OverflowPolicy) -> None:
        super().__init__(f"{needed} tokens do not fit in {room}")
        self.needed = needed
        self.room = room
        self.policy = policy


@dataclass(frozen=True)
class Window:
    """The messages the model reads this turn (indices into the conversation, in order) and those it does not."""

    kept: tuple[int, ...]
    hidden: tuple[int, ...]
    tokens: int
    """The estimated prompt tokens of the kept messages."""

    @property
    def moved(self) -> bool:
        return bool(self.hidden)


def answer_room(context_size: int, max_tokens: int) -> int:
    """Tokens kept free for the answer: the answer's own limit, but never more than a quarter of the context
    (a 1,024-token limit on a 2,048-token model would otherwise leave half the context unused)."""
    return max(1, min(max_tokens, context_size // 4))


def plan_window(
    costs: Sequence[int],
    roles: Sequence[str],
    *,
    room: int,
    policy: OverflowPolicy = DEFAULT_OVERFLOW,
    keep_last: int = 1,
) -> Window:
    """Choose the messages that fit in `room` tokens.

    `costs[i]` is the token cost of message i (its text plus the template's framing), `roles[i]` its role.
    The last `keep_last` messages (the question; 2 when an assistant message is being continued) are always
    read. Raises `ContextOverflow` when the policy is "stop" and they do not all fit, or when even the smallest
    window (system prompt + the last messages) does not.
    """
    count = len(costs)
    total = sum(costs)
    everything = tuple(range(count))
    if total <= room:
        return Window(everything, (), total)
    if policy == "stop":
        raise ContextOverflow(total, room, policy)

    system = _leading_system(roles)
    tail_start = max(system, count - keep_last)
    first_exchange = _first_exchange(roles, system, tail_start) if policy == "truncate-middle" else ()
    pinned = tuple(range(system)) + first_exchange
    droppable = [i for i in range(system, tail_start) if i not in first_exchange]
    window = _drop_oldest(costs, roles, pinned, droppable, tail_start, room)
    if window is None and first_exchange:
        # The first exchange itself does not leave room for the recent turns: give it up as a rolling window would.
        droppable = list(range(system, tail_start))
        window = _drop_oldest(costs, roles, tuple(range(system)), droppable, tail_start, room)
    if window is None:
        smallest = sum(costs[i] for i in range(system)) + sum(costs[tail_start:])
        raise ContextOverflow(smallest, room, policy)
    return window


def _drop_oldest(
    costs: Sequence[int],
    roles: Sequence[str],
    pinned: tuple[int, ...],
    droppable: list[int],
    tail_start: int,
    room: int,
) -> Window | None:
    """Drop droppable messages oldest first, in steps of a quarter of `room`, until the rest fits (or None)."""
    count = len(costs)
    total = sum(costs[i] for i in pinned) + sum(costs[i] for i in droppable) + sum(costs[tail_start:])
    excess = total - room
    step = max(1, room // 4)
    target = math.ceil(excess / step) * step
    dropped: list[int] = []
    freed = 0
    position = 0
    while position < len(droppable) and freed < target:
        dropped.append(droppable[position])
        freed += costs[droppable[position]]
        position += 1
    # The recent turns start with a user message: templates that insist on alternating roles stay readable.
    while position < len(droppable) and roles[droppable[position]] != "user":
        dropped.append(droppable[position])
        freed += costs[droppable[position]]
        position += 1
    if freed < excess:
        return None
    hidden = tuple(dropped)
    kept = tuple(i for i in range(count) if i not in set(hidden))
    return Window(kept, hidden, total - freed)


def _leading_system(roles: Sequence[str]) -> int:
    """How many system messages open the conversation (they are always read)."""
    count = 0
    while count < len(roles) and roles[count] == "system":
        count += 1
    return count


def _first_exchange(roles: Sequence[str], start: int, tail_start: int) -> tuple[int, ...]:
    """The first user message and the answer to it, when both come before the recent tail."""
    if start >= tail_start or roles[start] != "user":
        return ()
    if start + 1 < tail_start and roles[start + 1] == "assistant":
        return (start, start + 1)
    return (start,)


def describe_overflow(overflow: ContextOverflow, model_name: str, context_size: int) -> str:
    """The message for a conversation that cannot be answered as it is, naming the way out."""
    if overflow.policy == "stop":
        # The chat screen and `mlxchat ask` each add how to take these ways out there (the offer, the flags).
        return (
            f"The conversation is {overflow.needed} tokens; {model_name} reads at most {context_size}, and this "
            'conversation\'s overflow policy is "stop". To go on, switch its overflow policy to truncate-middle or '
            "rolling-window, or start a new conversation from a summary of this one."
        )
    return describe_message_too_long(overflow, model_name, context_size)


def describe_message_too_long(overflow: ContextOverflow, model_name: str, context_size: int) -> str:
    """The message for a last message that does not fit even with every earlier turn left out, whatever the
    policy: no window and no summary of the conversation can help, only a shorter message or a longer context."""
    return (
        f"The system prompt and the last message alone are {overflow.needed} tokens; {model_name} reads at most "
        f"{context_size}, and {overflow.room} fit with room for the answer. Shorten the message (or the system "
        "prompt), or choose a model with a longer context."
    )
