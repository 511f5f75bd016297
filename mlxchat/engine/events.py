"""Provides the events the engine emits.

Every accepted request produces some of these, always in order and always ending with exactly one `Finished`.
Events are created on the engine's owner thread and handed to the consumer's sink, which must not block (a
Textual app's `post_message`, a `queue.SimpleQueue.put`). They hold only plain Python values, never MLX arrays,
so the UI never touches MLX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length", "cancelled", "error", "shutdown"]
Phase = Literal["idle", "loading", "prefill", "generating", "draining", "closed"]
# "remote": a model behind an HTTP endpoint, whose kind the server does not say (it may read images).
ModelKind = Literal["text", "vision", "remote"]


@dataclass(frozen=True)
class Event:
    request_id: str


@dataclass(frozen=True)
class ModelInfo:
    """What the UI shows about the loaded model.

    For a remote model, `path` is the model's id on the server, `endpoint` the server's address (never with
    credentials), and the numbers the server does not tell are 0 (`quantization` is "").
    """

    name: str
    path: str
    kind: ModelKind
    quantization: str
    size_bytes: int
    context_size: int
    endpoint: str | None = None
    thinking: str | None = None
    """The model's thinking format in words ("<think> tags", "gpt-oss analysis channel"), or None when it has
    none: the UI then disables its thinking toggle and says why."""
    thinking_switch: bool = False
    """True when the chat template can turn thinking off; without a switch the engine ends thinking at once."""
    sampling_defaults: tuple[tuple[str, float], ...] = ()
    """The model's own sampling settings (its `generation_config.json`), as (name, value) pairs."""
    base_model: bool = False
    """Imported from a GGUF without a chat template: it runs its family's turn format or plain completion."""

    @property
    def resumes_thinking(self) -> bool:
        """Whether an answer stopped while thinking can think on from there (`ChatRequest.resume_thinking`): a
        local model with a thinking format; a server has no way to take the old thought."""
        return self.endpoint is None and self.thinking is not None


@dataclass(frozen=True)
class ModelLoading(Event):
    """A load is under way. `fraction` is None while the step has no measurable progress."""

    model: str
    step: str
    fraction: float | None = None


@dataclass(frozen=True)
class ModelLoaded(Event):
    info: ModelInfo
    load_s: float


@dataclass(frozen=True)
class ModelLoadFailed(Event):
    """The load failed. `still_loaded` names the model that is loaded now (the previous one when the problem
    was found before it was dropped), or None."""

    model: str
    message: str
    still_loaded: str | None = None


@dataclass(frozen=True)
class ModelUnloaded(Event):
    pass


@dataclass(frozen=True)
class Started(Event):
    """Generation began. `cached_tokens` of `prompt_tokens` were reused from the previous turn."""

    prompt_tokens: int
    cached_tokens: int
    route: Literal["text", "vision"]


@dataclass(frozen=True)
class ContextWindow(Event):
    """Which messages of the request the model reads this turn, sent right after `Started` on the text route.

    `hidden` are indices into the request's messages that the overflow policy left out: they stay in history,
    and the UI marks them "not in the model's view". `answer_room` tokens were kept free for the answer.
    """

    policy: str
    hidden: tuple[int, ...]
    prompt_tokens: int
    context_size: int
    answer_room: int


@dataclass(frozen=True)
class PrefillProgress(Event):
    done: int
    total: int


@dataclass(frozen=True)
class TextDelta(Event):
    """New answer text, batched by time so a fast model cannot flood the consumer."""

    text: str
    tokens: int


@dataclass(frozen=True)
class ThinkingDelta(Event):
    """New thinking text of a reasoning model, batched like `TextDelta` and never part of the answer's text."""

    text: str
    tokens: int


@dataclass(frozen=True)
class ThinkingDone(Event):
    """The model stopped thinking and starts its answer. `tokens` of thinking took `seconds` (from its first
    token); `by_budget` is True when the engine ended it because the request's thinking budget ran out. A resumed
    answer's `tokens` include its thinking from before it was stopped (`ChatRequest.resume_thinking`)."""

    tokens: int
    seconds: float
    by_budget: bool = False


@dataclass(frozen=True)
class Silence(Event):
    """The answer has had no new text or thinking for `seconds`: a server gone quiet mid-answer (a stall, a slow
    tool, a queue). Sent from a second of silence on, at most once a second while it lasts, so the UI can say
    it is waiting rather than show a rate as if tokens still flowed; the next `TextDelta` or `ThinkingDelta`
    ends it. Only a producer that can go silent sends it (the remote backend), never before the first token."""

    seconds: float


@dataclass(frozen=True)
class Stats(Event):
    """Measured on the owner thread. Emitted while generating (latest value wins) and once at the end."""

    ttft_s: float | None
    prompt_tokens: int
    cached_tokens: int
    prompt_tps: float
    generation_tokens: int
    decode_tps: float
    peak_memory_bytes: int
    context_used: int
    context_size: int
    reasoning_tokens: int = 0
    """How many of `generation_tokens` were thinking (markers included); the rest are the answer's."""


@dataclass(frozen=True)
class ConversationPrepared(Event):
    """A `PrepareConversation` hint was acted on: the conversation's prompt cache now holds `cached_tokens`
    (0: nothing saved that could be trusted, or no model loaded), read in `seconds`. `superseded` is True when
    the hint was dropped because a request sent after it was already waiting (a prefetch never delays one)."""

    conversation_id: str
    cached_tokens: int = 0
    seconds: float = 0.0
    superseded: bool = False


@dataclass(frozen=True)
class Draining(Event):
    """Cancel was asked; the owner thread is finishing its current step. Not idle until `Finished`."""

    reason: Literal["cancel", "shutdown"] = "cancel"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generation_tokens: int = 0
    reasoning_tokens: int = 0
    """How many of `generation_tokens` were thinking."""


@dataclass(frozen=True)
class Finished(Event):
    """The one terminal event of every accepted request. After it the engine is idle (or closed).

    `context_full` is True when the reason is "length" because the answer reached the model's context limit
    (not its `max_tokens`): the UI says so in the answer's footer."""

    reason: FinishReason
    text: str = ""
    usage: Usage = Usage()
    error: str | None = None
    stats: Stats | None = None
    context_full: bool = False
    reasoning: str = ""
    """The thinking, apart from `text` (the answer). A cancel while thinking keeps what was thought."""
    overflow_refused: bool = False
    """With reason "error": the conversation no longer fits in the model's context and its overflow policy is
    "stop". Nothing was read; the UI offers to switch the policy or to start a new chat from a summary."""
    busy: bool = False
    """With reason "error": a server refused the request because it is busy with another one (or answered with
    an error before any text, which is how vllm-mlx says busy when streaming). The UI treats it like a local
    `Busy` refusal: the prompt is kept to send again."""


@dataclass(frozen=True)
class Busy:
    """Why a request was refused: the engine is working on `active_request_id`. Returned by `submit`, never
    queued. The refused request gets no events."""

    refused_request_id: str
    active_request_id: str
    active_kind: Literal["chat", "load", "unload"]
    phase: Phase
    elapsed_s: float
    active_label: str | None = None
    """What the person knows the active request as (a conversation's title, a model's name), if anything."""

    @property
    def message(self) -> str:
        """'Engine busy: answering in 'France trivia' (generating, 7.6 s). Wait for it to finish or cancel it.'"""
        label = " ".join((self.active_label or "").split())
        if self.active_kind == "chat":
            doing = f"answering in {label!r}" if label else "answering another message"
        elif self.active_kind == "load":
            doing = f"loading {label}" if label else "loading a model"
        else:
            doing = "unloading the model"
        return f"Engine busy: {doing} ({self.phase}, {self.elapsed_s:.1f} s). Wait for it to finish or cancel it."
