"""Provides how the chat screen reads engine events: each event updates the status and the answer it belongs to.

The status follows the engine, never a guess: draining is shown from the cancel key until the request's
`Finished`, even while late text and stats still arrive, and only `Finished` makes the screen idle again.
Events for a request this screen is not waiting on (a late event after a restart, say) change the status at most.
"""

from __future__ import annotations

from mlxchat.engine import (
    Draining,
    Event,
    Finished,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    ModelUnloaded,
    PrefillProgress,
    Started,
    Stats,
    TextDelta,
)

from ..keys import first_key

_TURN_STATUS = {"stop": "complete", "length": "complete", "cancelled": "stopped", "shutdown": "stopped", "error": "error"}


class EngineEventsMixin:
    """`ChatScreen`'s engine event handling (kept apart so each file stays readable)."""

    async def handle_engine_event(self, event: Event) -> None:
        if not self.has_panes:  # the app is closing: nothing left to show it on
            return
        status = self.status
        draining = status.phase == "draining"
        active = self.active
        ours = active is not None and active.request_id == event.request_id
        match event:
            case ModelLoading():
                if not draining:
                    self.set_status(status.with_phase("loading", detail=event.step, progress=event.fraction))
            case ModelLoaded():
                self.model = event.info
                self.set_status(
                    status.with_phase(
                        "ready",
                        detail=f"{event.info.name} loaded in {event.load_s:.1f}s",
                        progress=None,
                        model_name=event.info.name,
                        memory_bytes=event.info.size_bytes,
                        context_used=0,
                        context_size=event.info.context_size,
                    )
                )
                self._show_attachments()
            case ModelLoadFailed():
                self.model = None if event.still_loaded is None else self.model
                phase = "error" if event.still_loaded is None else "ready"
                self.set_status(
                    status.with_phase(phase, detail=event.message, progress=None, model_name=event.still_loaded)
                )
                self.show_notice(f"Could not load {event.model}: {event.message}", "error")
            case ModelUnloaded():
                self.model = None
                self.set_status(status.with_phase("no-model", detail="", model_name=None, memory_bytes=None))
            case Started():
                if ours and not draining:
                    self.set_status(
                        status.with_phase(
                            "prefill", prefill_done=event.cached_tokens, prefill_total=event.prompt_tokens, tokens=0
                        )
                    )
            case PrefillProgress():
                if ours and not draining:
                    self.set_status(status.with_phase("prefill", prefill_done=event.done, prefill_total=event.total))
            case TextDelta():
                if ours and active.turn is not None:
                    active.turn.text += event.text
                    active.turn.tokens += event.tokens
                    await active.view.sync()
                    tokens = status.tokens + event.tokens
                    self.set_status(status if draining else status.with_phase("generating", tokens=tokens))
            case Stats():
                self.set_status(
                    status.with_phase(
                        status.phase,
                        tokens=event.generation_tokens,
                        tokens_per_s=event.decode_tps or None,
                        memory_bytes=event.peak_memory_bytes or status.memory_bytes,
                        context_used=event.context_used,
                        context_size=event.context_size,
                    )
                )
            case Draining():
                if ours and not draining:
                    self.set_status(status.with_phase("draining", detail="stopping after the current step…", since=self.clock()))
            case Finished():
                if ours:
                    await self._finish(event)

    async def _finish(self, event: Finished) -> None:
        active, self.active = self.active, None
        if self.refused_prompt_waiting:
            self.refused_prompt_waiting = False
            self.show_notice("The engine is free again: press Enter to send your prompt.", "info")
        status = self.status
        if event.stats is not None:
            status = status.with_phase(
                status.phase,
                tokens=event.stats.generation_tokens,
                tokens_per_s=event.stats.decode_tps or None,
                memory_bytes=event.stats.peak_memory_bytes or status.memory_bytes,
                context_used=event.stats.context_used,
                context_size=event.stats.context_size,
            )
        if active.kind == "load":
            if event.reason in ("cancelled", "shutdown"):
                self.set_status(status.with_phase("no-model" if self.model is None else "ready", detail="load stopped"))
            elif event.reason == "error" and status.phase not in ("error",):
                self.set_status(status.with_phase("error", detail=event.error or "the load failed"))
            return
        turn, view = active.turn, active.view
        await view.end_stream()
        turn.status = _TURN_STATUS[event.reason]
        turn.stats = event.stats or turn.stats
        turn.error = event.error
        hint = ""
        if turn.status == "stopped":
            hint = self._stopped_hint(turn)
            self.set_status(status.with_phase("stopped", detail=f"after {turn.tokens} tokens · {hint}"))
        elif turn.status == "error":
            self.set_status(status.with_phase("error", detail=event.error or "the answer failed"))
        else:
            detail = "reached max tokens" if event.reason == "length" else ""
            hint = f"reached the max tokens limit · {first_key('retry_answer', self.keymap)} retries" if detail else ""
            self.set_status(status.with_phase("ready", detail=detail))
        view.refresh_from_turn(hint)
        await self.on_turn_finished(turn)  # history saves it (HistoryMixin)

    def _stopped_hint(self, turn) -> str:
        retry = f"{first_key('retry_answer', self.keymap)} retries"
        if not turn.text:
            return retry
        return f"{first_key('continue_answer', self.keymap)} continues · {retry}"
