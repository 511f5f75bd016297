"""Provides the requests a client hands to the engine.

Requests are frozen dataclasses so they can cross threads without copies or locks. Each carries its own
`request_id`; every event the engine emits for it carries the same id.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

_counter = itertools.count(1)


def new_request_id(prefix: str = "req") -> str:
    """A short id that is unique for the life of the process and readable in a busy message."""
    return f"{prefix}-{next(_counter)}"


Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One turn of a conversation. `images` belong to this turn only and stay with it across later turns."""

    role: Role
    content: str
    images: tuple[Path, ...] = ()


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are chosen. `temperature == 0` is greedy and, with the same seed, reproducible."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None


@dataclass(frozen=True)
class ChatRequest:
    """Answer the last user message of `messages`.

    `conversation_id` scopes the prompt cache: a follow-up in the same conversation prefills only what is new.
    `continue_last` asks the model to extend a stopped assistant message (the last message) instead of starting
    a new one.
    """

    messages: tuple[Message, ...]
    conversation_id: str = "default"
    sampling: SamplingParams = field(default_factory=SamplingParams)
    continue_last: bool = False
    request_id: str = field(default_factory=lambda: new_request_id("chat"))

    @property
    def has_images(self) -> bool:
        return any(message.images for message in self.messages)


@dataclass(frozen=True)
class LoadModel:
    """Load (or switch to) a model. `model` is a folder, a cached Hugging Face repo id or an imported name;
    `None` means the bundled demo model."""

    model: str | None = None
    request_id: str = field(default_factory=lambda: new_request_id("load"))


@dataclass(frozen=True)
class UnloadModel:
    """Drop the loaded model and its caches, returning their memory."""

    request_id: str = field(default_factory=lambda: new_request_id("unload"))


Request = ChatRequest | LoadModel | UnloadModel
