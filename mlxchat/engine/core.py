"""Provides `EngineCore`: one owner thread per engine, and the fail-fast, drain-on-cancel contract around it.

Why a single owner thread: MLX streams belong to the thread that created them ("There is no Stream(gpu, 1) in
current thread"), and two threads encoding into Metal at once abort the process. So every MLX call — load,
template, prefill, decode, vision, cache work, unload — runs on one long-lived thread, and a request that
arrives while it works is refused at once instead of queued behind it or run beside it.

The thread never returns, even after `close()`: on this platform a process whose MLX generation thread has
finished often aborts at interpreter exit, while a parked daemon thread does not.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from .control import RequestControl
from .errors import EngineClosed, OverflowRefused, describe_error
from .events import Busy, ConversationPrepared, Draining, Event, Finished, ModelInfo, Phase
from .requests import ChatRequest, LoadModel, PrepareConversation, Request, UnloadModel

log = logging.getLogger(__name__)

Sink = Callable[[Event], None]
_STOP = object()


@dataclass(frozen=True)
class EngineState:
    """A snapshot for display: what the engine is doing right now."""

    phase: Phase
    active_request_id: str | None
    active_kind: str | None
    elapsed_s: float
    model: ModelInfo | None


class EngineCore:
    """Runs requests one at a time on its owner thread and reports through `sink`.

    Backends subclass it and implement `_handle` (and optionally `_on_start`, `_shutdown`): the local MLX
    `Engine` here, the remote HTTP engine elsewhere. The UI cannot tell them apart.

    `sink` is called on the owner thread and must not block: hand the event on (`App.post_message`,
    `queue.SimpleQueue.put`) and return. Every accepted request gets exactly one `Finished`.
    """

    def __init__(self, sink: Sink, *, name: str = "mlxchat-engine") -> None:
        self._sink = sink
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._active: RequestControl | None = None
        self._closing = False
        self._parked = threading.Event()
        self._model_info: ModelInfo | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # ---- caller side (any thread) -------------------------------------------------------------------------

    def start(self):
        self._thread.start()
        return self

    @property
    def owner_thread(self) -> threading.Thread:
        return self._thread

    @property
    def model(self) -> ModelInfo | None:
        return self._model_info

    def state(self) -> EngineState:
        with self._lock:
            active = self._active
            if self._closing and active is None:
                return EngineState("closed", None, None, 0.0, self._model_info)
            if active is None:
                return EngineState("idle", None, None, 0.0, self._model_info)
            return EngineState(active.phase, active.request_id, active.kind, active.elapsed_s, self._model_info)

    def submit(self, request: Request) -> Busy | None:
        """Accept `request` (returns None) or refuse it at once (returns `Busy`). Never queues, never blocks."""
        kind = _kind_of(request)
        with self._lock:
            if self._closing:
                raise EngineClosed("The engine is closed.")
            active = self._active
            if active is not None:
                return Busy(
                    request.request_id, active.request_id, active.kind, active.phase, active.elapsed_s, active.label
                )
            phase: Phase = "loading" if kind == "load" else "prefill"
            control = RequestControl(request.request_id, kind, phase, label=_label_of(request))
            self._active = control
            self._inbox.put((request, control))
        return None

    def prepare(self, hint: PrepareConversation) -> None:
        """Let the owner thread get `hint`'s conversation ready (read its saved prompt cache) while the person
        types. Never refused, never blocks, and never delays a request: it waits in the inbox behind whatever
        runs, is dropped when a request sent after it is already waiting when its turn comes, and a request
        sent while it runs is accepted and starts right after it (the owner thread does one thing at a time;
        the read is what that request would otherwise do inside its own TTFT). Ignored once closing."""
        with self._lock:
            if self._closing:
                return
            self._inbox.put((hint, None))

    def cancel(self, request_id: str | None = None, *, reason: str = "cancel") -> bool:
        """Ask the active request (or `request_id`, if it is the active one) to stop. Returns at once.

        A `Draining` event goes out before this returns; the request's `Finished` follows when the owner thread
        has really left MLX. Until then the engine refuses new work.
        """
        with self._lock:
            active = self._active
            if active is None or (request_id is not None and active.request_id != request_id):
                return False
            if active.cancelled:
                return True
            self._emit(Draining(active.request_id, "shutdown" if reason == "shutdown" else "cancel"))
            active.request_cancel(reason)
            self._interrupt(active)
            return True

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until no request is active. For scripts and tests; a UI listens for `Finished` instead."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._idle:
            while self._active is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout_s: float = 30.0) -> bool:
        """Cancel what runs, drain, unload, and park the owner thread for good.

        Returns True when the owner thread is parked. After `timeout_s` it logs what it is still waiting on and
        returns False; the process can still exit, since the thread is a daemon.
        """
        with self._lock:
            if not self._thread.is_alive() and not self._parked.is_set():
                self._closing = True
                self._parked.set()
                return True
            first_close = not self._closing
            self._closing = True
            if self._active is not None:
                self.cancel(reason="shutdown")
            if first_close:
                self._inbox.put(_STOP)
        if self._parked.wait(timeout_s):
            return True
        state = self.state()
        log.warning(
            "engine still busy after %.1fs: waiting on %s (%s, %.1fs)",
            timeout_s,
            state.active_request_id,
            state.phase,
            state.elapsed_s,
        )
        return False

    def waiting_on(self) -> str | None:
        """What a slow close is waiting for, in words, or None when nothing runs."""
        state = self.state()
        if state.active_request_id is None:
            return None
        return f"{state.active_request_id} ({state.phase}, {state.elapsed_s:.1f}s)"

    # ---- owner thread -------------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        try:
            self._sink(event)
        except Exception:  # a broken consumer must not take the owner thread down
            log.exception("event sink failed on %r", event)

    def _run(self) -> None:
        self._on_start()
        while True:
            item = self._inbox.get()
            if item is _STOP:
                self._shutdown()
                return self._park()
            request, control = item
            if control is None:
                self._run_prepare(request)
                continue
            finished = self._execute(request, control)
            with self._lock:
                self._active = None
                self._emit(finished)
                self._idle.notify_all()
            self._after_finished()

    def _execute(self, request: Request, control: RequestControl) -> Finished:
        if control.cancelled:
            return Finished(request.request_id, _stopped_reason(control))
        try:
            finished = self._handle(request, control)
        except Exception as exc:  # every failure becomes a terminal event; the engine stays usable
            log.debug("request %s failed", request.request_id, exc_info=True)
            refused = isinstance(exc, OverflowRefused)
            return Finished(request.request_id, "error", error=describe_error(exc), overflow_refused=refused)
        if finished.reason == "cancelled":
            return _with_reason(finished, _stopped_reason(control))
        return finished

    def _run_prepare(self, hint: PrepareConversation) -> None:
        if not self._inbox.empty():  # a request (or close) sent after the hint waits: it goes first, unslowed
            self._emit(ConversationPrepared(hint.request_id, hint.conversation_id, superseded=True))
            return
        started = time.perf_counter()
        try:
            cached = self._prepare(hint)
        except Exception:  # a prefetch is an optimisation: the turn itself will try (and report) again
            log.exception("preparing conversation %s failed", hint.conversation_id)
            cached = 0
        self._emit(ConversationPrepared(hint.request_id, hint.conversation_id, cached, time.perf_counter() - started))

    # ---- what a backend provides (all called on the owner thread) -------------------------------------------

    def _on_start(self) -> None:
        """Set up owner-thread state before the first request."""

    def _handle(self, request: Request, control: RequestControl) -> Finished:
        raise NotImplementedError

    def _shutdown(self) -> None:
        """Release what the backend holds; called once, on the owner thread, after the last request."""

    def _prepare(self, hint: PrepareConversation) -> int:
        """Get the conversation ready for its next turn; returns how many of its tokens are now cached. The
        default (a backend with nothing to read ahead, such as a remote server) does nothing."""
        return 0

    def _after_finished(self) -> None:
        """Work that may wait until the consumer has the `Finished` (saving a cache to disk). A request submitted
        meanwhile is accepted and starts right after it."""

    def _interrupt(self, control: RequestControl) -> None:
        """Wake the owner thread out of a blocking wait after a cancel. Called on the CALLER's thread, so it must
        be thread-safe and must not block. The local engine needs nothing: it checks the flag every token."""

    def _park(self) -> None:
        """Stay alive, idle, forever (see the module docstring on why the thread must not return)."""
        self._parked.set()
        threading.Event().wait()


def _kind_of(request: Request) -> str:
    if isinstance(request, ChatRequest):
        return "chat"
    if isinstance(request, LoadModel):
        return "load"
    if isinstance(request, UnloadModel):
        return "unload"
    raise TypeError(f"not an engine request: {request!r}")


def _label_of(request: Request) -> str | None:
    """What the person knows `request` as: the chat's label, the model being loaded."""
    if isinstance(request, ChatRequest):
        return request.label
    if isinstance(request, LoadModel):
        return request.model or "the demo model"
    return None


def _stopped_reason(control: RequestControl):
    return "shutdown" if control.cancel_reason == "shutdown" else "cancelled"


def _with_reason(finished: Finished, reason) -> Finished:
    from dataclasses import replace

    return replace(finished, reason=reason)
