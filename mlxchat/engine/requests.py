"""Provides the requests a client hands to the engine.

Requests are frozen dataclasses so they can cross threads without copies or locks. Each carries its own
`request_id`; every event the engine emits for it carries the same id.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .context_window import DEFAULT_OVERFLOW, OverflowPolicy

_counter = itertools.count(1)


def new_request_id(prefix: str = "req") -> str:
    """A short id that is unique for the life of the process and readable in a busy message."""
    return f"{prefix}-{next(_counter)}"


Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One turn of a conversation. `images` belong to this turn only and stay with it across later turns.
    `documents` (text or PDF files) too: their text goes into this turn's prompt before `content`, each in a
    delimited block (see `documents.py`)."""

    role: Role
    content: str
    images: tuple[Path, ...] = ()
    documents: tuple[Path, ...] = ()


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are chosen. `temperature == 0` is greedy and, with the same seed, reproducible.

    A sampling value left None is the model's own (its `generation_config.json`), else mlxchat's default: see
    `mlxchat.settings.resolve_sampling`, the one place that decides. `top_k` 0, `min_p` 0 and
    `repetition_penalty` 1 switch those filters off.
    """

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int = 1024
    seed: int | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None


@dataclass(frozen=True)
class ChatRequest:
    """Answer the last user message of `messages`.

    `conversation_id` scopes the prompt cache: a follow-up in the same conversation prefills only what is new.
    `continue_last` asks the model to extend a stopped assistant message (the last message) instead of starting
    a new one. `overflow` says what to do when the conversation outgrows the model's context (see
    `context_window.py`); the engine reports its choice in a `ContextWindow` event. `kv_bits` (4 or 8) stores the
    conversation's KV cache quantized, which saves memory at long contexts for a little decode speed; None keeps
    it at full precision. `thinking` turns a reasoning model's thinking on or off (None: the model's default);
    `thinking_budget` caps it in tokens, after which the engine ends the thinking and the model answers.
    """

    messages: tuple[Message, ...]
    conversation_id: str = "default"
    sampling: SamplingParams = field(default_factory=SamplingParams)
    continue_last: bool = False
    overflow: OverflowPolicy = DEFAULT_OVERFLOW
    kv_bits: int | None = None
    saved_as: str | None = None
    """The stored conversation's id, when the client keeps one: the engine saves the prompt cache on disk under
    it, so the conversation resumes from it after a restart even when `conversation_id` was a session's own id.
    None: saved under `conversation_id`."""
    save_cache: bool = True
    """False for a one-off request whose prompt cache no later turn reads from disk (a conversation's summary: the
    next summary of it reads another window): the cache is kept in memory only, and a file saved under its name
    earlier is deleted when it finishes, so it does not hold disk space until the size cap evicts it."""
    thinking: bool | None = None
    thinking_budget: int | None = None
    resume_thinking: str = ""
    """The thinking of an answer that was stopped while thinking, to go on from: the local engine ends the prompt
    with the model's opened thinking and this text, so the model thinks on and then answers. `messages` end with
    the question, as for a fresh answer; `Finished.reasoning` then holds all of the thinking, this text included. A
    model without a thinking format, an image turn or a server (which has no way to take it) answers afresh."""
    request_id: str = field(default_factory=lambda: new_request_id("chat"))
    label: str | None = None
    """What the person knows this request as (the chat screen puts the conversation's title here): a `Busy`
    refusal names it instead of the request id, which means nothing to them."""

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


@dataclass(frozen=True)
class PrepareConversation:
    """A hint, not a request: the person opened `conversation_id` and will probably send in it soon, so the
    engine may read its saved prompt cache now, while they type, instead of inside the next turn's TTFT.

    Given to `EngineClient.prepare`, never to `submit`: it is never refused, never makes the engine busy and
    ends with a `ConversationPrepared` event, not `Finished`. `saved_as` and `kv_bits` mean what they mean on
    `ChatRequest` (the saved cache is found under `saved_as`, and must match `kv_bits`)."""

    conversation_id: str
    saved_as: str | None = None
    kv_bits: int | None = None
    request_id: str = field(default_factory=lambda: new_request_id("prepare"))


Request = ChatRequest | LoadModel | UnloadModel
