"""Provides `EngineStatus` and the reducer that is the single place turning engine events into it.

The status pane must say what the engine is doing, never a guess. So the rules live here, as plain functions of
plain values, with no Textual: `after_event(status, event, awaited, ...)` gives the status after an engine event,
and three more functions give it after what the user did (asked for a load, sent a prompt, pressed cancel).
The chat screen calls them and hands the result to the `StatusBar`, which only draws it. The rules:

- Draining is shown from the cancel key until the request's `Finished`, even while late text and stats arrive;
  only `Finished` ends it.
- Events for a request the screen is not waiting on (a late event after a restart, say) change the model facts
  (loaded model, memory, context) at most, never the phase.
- Stats, whether streamed or carried by `Finished`, update the numbers the same way (`with_stats`).
- While a server is silent mid-answer (`Silence`), the pane says how long it has waited instead of a rate, as if
  tokens still flowed; the next text or thinking ends it (`silent_s`).
- The context meter warns from 80 % of the model's context and again from 95 % (`context_warning`), and says
  how many turns the overflow policy left out of the model's view (a `ContextWindow`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from mlxchat.engine import (
    ContextWindow,
    Draining,
    Event,
    Finished,
    ModelInfo,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    ModelUnloaded,
    PrefillProgress,
    Silence,
    Started,
    Stats,
    TextDelta,
    ThinkingDelta,
    ThinkingDone,
)

StatusPhase = Literal[
    "starting", "loading", "ready", "prefill", "thinking", "generating", "draining", "stopped", "busy", "error",
    "no-model",
]
RequestKind = Literal["chat", "load"]
ContextWarning = Literal["filling", "full"]

CONTEXT_FILLING = 0.80
CONTEXT_FULL = 0.95


def context_warning(used: int | None, size: int | None) -> ContextWarning | None:
    """How full the context is, as the meter warns of it: "filling" from 80 %, "full" from 95 %, else None. Past
    the limit the overflow policy leaves older turns out, so the warning says "soon" rather than "stop"."""
    if not used or not size:
        return None
    share = used / size
    return "full" if share >= CONTEXT_FULL else "filling" if share >= CONTEXT_FILLING else None


@dataclass(frozen=True)
class EngineStatus:
    """Everything the status pane shows, built only by this module's functions."""

    phase: StatusPhase = "starting"
    detail: str = ""
    """A short sentence for the phase: the load step, why it stopped, the error."""
    progress: float | None = None
    """Load progress from 0 to 1, or None while the step has no measurable progress."""
    prefill_done: int = 0
    prefill_total: int = 0
    tokens: int = 0
    """Tokens generated for the awaited request so far (streamed deltas, corrected by its stats)."""
    tokens_per_s: float | None = None
    since: float | None = None
    """Clock time the phase began (draining shows the time since the cancel key)."""
    model: ModelInfo | None = None
    """The loaded model, as the engine last reported it; None when none is loaded."""
    model_name: str | None = None
    """The name shown on the right: the loaded model, or the one still loaded after a failed switch."""
    memory_bytes: int | None = None
    context_used: int | None = None
    context_size: int | None = None
    answering_in: str | None = None
    """The title of the conversation the awaited answer belongs to, when the reader is looking at another one."""
    turns_out_of_view: int = 0
    """Messages of the conversation the overflow policy left out of the last prompt (they stay in history)."""
    silent_s: float | None = None
    """How long the awaited answer has had no new text (a server gone quiet mid-answer), as the engine last told
    it; None while text flows."""

    @property
    def context_warning(self) -> ContextWarning | None:
        return context_warning(self.context_used, self.context_size)

    def with_phase(self, phase: StatusPhase, **changes) -> "EngineStatus":
        return replace(self, phase=phase, **changes)

    def with_stats(self, stats: Stats) -> "EngineStatus":
        """The numbers from a `Stats` (streamed, or the final one a `Finished` carries); the phase stays."""
        return replace(
            self,
            tokens=stats.generation_tokens,
            tokens_per_s=stats.decode_tps or None,
            memory_bytes=stats.peak_memory_bytes or self.memory_bytes,
            context_used=stats.context_used,
            context_size=stats.context_size,
        )


@dataclass(frozen=True)
class Awaited:
    """The request the screen waits on, as far as the status needs to know it. Cleared by its `Finished`."""

    request_id: str
    kind: RequestKind
    tokens_before: int = 0
    """Tokens the answer already held before this request (a continue extends a stopped answer)."""


@dataclass(frozen=True)
class AnswerKeys:
    """The keys that continue and retry an answer, as the user has bound them, for the hints that name them."""

    continue_key: str
    retry_key: str

    def stopped_hint(self, has_text: bool) -> str:
        """What the user can do with a stopped answer: continue it (only when it has text) or retry it."""
        retry = f"{self.retry_key} retries"
        return f"{self.continue_key} continues · {retry}" if has_text else retry

    def length_hint(self, context_full: bool = False) -> str:
        if context_full:  # the model can read no more; the overflow policy makes room on the next message
            return "reached the model's context limit"
        return f"reached the max tokens limit · {self.retry_key} retries"


# ---- what the user did -----------------------------------------------------------------------------------------


def load_requested(status: EngineStatus, label: str, now: float | None = None) -> EngineStatus:
    """A model load was accepted; `label` names the model ("demo model", a folder's name). `now` starts the
    clock that "loaded in" is read from: the whole wait the person saw, not only the engine's part of it."""
    return status.with_phase("loading", detail=f"Loading {label}", progress=None, since=now)


def answer_requested(status: EngineStatus, answering_in: str | None = None) -> EngineStatus:
    """A chat request was accepted: prefill starts, and the token count starts from zero."""
    return status.with_phase(
        "prefill", detail="", prefill_done=0, prefill_total=0, tokens=0, answering_in=answering_in, silent_s=None
    )


def cancel_requested(status: EngineStatus, reason: str, now: float) -> EngineStatus:
    """The engine agreed to stop the awaited request; draining shows until its `Finished`."""
    if status.phase == "draining":
        return status
    detail = "quitting when the engine has stopped…" if reason == "shutdown" else "stopping after the current step…"
    return status.with_phase("draining", detail=detail, since=now)


def conversation_shown(status: EngineStatus, context_used: int | None) -> EngineStatus:
    """Another conversation is on screen: the context figure is its own (`context_used`, from its last request;
    None while unknown, shown as "?"), not the one the previous conversation left behind."""
    return replace(status, context_used=context_used)


def reading_elsewhere(status: EngineStatus, answering_in: str | None) -> EngineStatus:
    """The reader switched conversations: say where the awaited answer is going (None: they are looking at it)."""
    return replace(status, answering_in=answering_in)


def answer_deleted(status: EngineStatus, title: str) -> EngineStatus:
    """The awaited answer's conversation was deleted while it answered: say that nothing of it was saved."""
    return replace(status, detail=f"'{title}' was deleted, so its answer was stopped and not saved")


# ---- what the engine said --------------------------------------------------------------------------------------


def after_event(
    status: EngineStatus, event: Event, awaited: Awaited | None, *, now: float, keys: AnswerKeys
) -> EngineStatus:
    """The status after `event`, given the request the screen waits on (`awaited`, None when idle)."""
    draining = status.phase == "draining"
    ours = awaited is not None and awaited.request_id == event.request_id
    match event:
        case ModelLoading():
            return status if draining else status.with_phase("loading", detail=event.step, progress=event.fraction)
        case ModelLoaded():
            info = event.info
            waited = now - status.since if status.phase == "loading" and status.since is not None else 0.0
            label = f"{info.name} (base model)" if info.base_model else info.name
            return status.with_phase(
                "ready",
                detail=f"{label} loaded in {max(event.load_s, waited):.1f}s",
                progress=None,
                model=info,
                model_name=info.name,
                memory_bytes=info.size_bytes,
                context_used=0,
                context_size=info.context_size,
            )
        case ModelLoadFailed():
            if event.still_loaded is None:
                return status.with_phase("error", detail=event.message, progress=None, model=None, model_name=None)
            return status.with_phase("ready", detail=event.message, progress=None, model_name=event.still_loaded)
        case ModelUnloaded():
            return status.with_phase("no-model", detail="", model=None, model_name=None, memory_bytes=None)
        case Started() if ours and not draining:
            return status.with_phase(
                "prefill", prefill_done=event.cached_tokens, prefill_total=event.prompt_tokens, tokens=0
            )
        case ContextWindow() if ours:
            return replace(
                status,
                context_used=event.prompt_tokens,
                context_size=event.context_size,
                turns_out_of_view=len(event.hidden),
            )
        case PrefillProgress() if ours and not draining:
            return status.with_phase("prefill", prefill_done=event.done, prefill_total=event.total)
        case ThinkingDelta() if ours and awaited.kind == "chat":
            if draining:
                return status
            return status.with_phase("thinking", tokens=status.tokens + event.tokens, silent_s=None)
        case ThinkingDone() if ours and awaited.kind == "chat" and not draining:
            # The thinking is over and the answer is being written, though its first text may still be held (a
            # model's "\n\n" after the marker): "thinking" would be a stale word for that moment.
            return status.with_phase("generating", silent_s=None)
        case TextDelta() if ours and awaited.kind == "chat":
            if draining:
                return status
            return status.with_phase("generating", tokens=status.tokens + event.tokens, silent_s=None)
        case Silence() if ours and awaited.kind == "chat" and status.phase in ("thinking", "generating"):
            return replace(status, silent_s=event.seconds)
        case Stats():
            return status.with_stats(event)
        case Draining() if ours and not draining:  # the engine stopped it on its own (the cancel key sets it first)
            return status.with_phase("draining", detail="stopping after the current step…", since=now)
        case Finished() if ours:
            return _after_finished(status, event, awaited, keys)
    return status


def _after_finished(status: EngineStatus, event: Finished, awaited: Awaited, keys: AnswerKeys) -> EngineStatus:
    if event.stats is not None:
        status = status.with_stats(event.stats)
    elsewhere, status = status.answering_in, replace(status, answering_in=None, silent_s=None)
    if awaited.kind == "chat" and elsewhere is not None:  # the reader is in another conversation: say which one,
        ended = _ended(status, event, awaited, keys=None)  # without keys, which would act on the one on screen
        return replace(ended, detail=f"in '{elsewhere}': {ended.detail or 'answered, and saved'}")
    return _ended(status, event, awaited, keys)


def _ended(status: EngineStatus, event: Finished, awaited: Awaited, keys: AnswerKeys | None) -> EngineStatus:
    """The phase and detail a `Finished` leaves, by what the request was and how it ended; `keys` name what
    the user can do next (None: nothing to suggest)."""
    if awaited.kind == "load":
        if event.reason in ("cancelled", "shutdown"):
            return status.with_phase("no-model" if status.model is None else "ready", detail="load stopped")
        if event.reason == "error" and status.phase != "error":
            return status.with_phase("error", detail=event.error or "the load failed")
        return status
    if event.reason in ("cancelled", "shutdown"):
        tokens = awaited.tokens_before + status.tokens
        hint = f" · {keys.stopped_hint(tokens > 0)}" if keys is not None else ""
        return status.with_phase("stopped", detail=f"after {tokens} tokens{hint}")
    if event.reason == "error":
        return status.with_phase("error", detail=event.error or "the answer failed")
    if event.reason == "length":
        limit = "the context limit" if event.context_full else "max tokens"
        return status.with_phase("ready", detail=f"reached {limit}")
    return status.with_phase("ready", detail="")
