"""Provides `EngineClient`: what a user interface may ask of an engine, as a typed protocol.

The chat screen, `mlxchat ask` and the benchmarks talk to an engine only through these calls, so the local MLX
`Engine`, the HTTP `RemoteEngine` and the tests' scripted engine are interchangeable. Everything an engine has
to say comes back as events through the sink it was built with (`EngineFactory`), never as return values,
except the one thing a caller must know at once: whether a request was accepted (`submit` returns None) or
refused because the engine is busy (`Busy`).
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from .core import EngineState
from .events import Busy, Event
from .requests import PrepareConversation, Request

Sink = Callable[[Event], None]
"""Called with every event, on the engine's own thread: it must hand the event on and return at once."""


@runtime_checkable
class EngineClient(Protocol):
    """An engine as its callers see it. Every accepted request ends with exactly one `Finished` event."""

    def start(self) -> "EngineClient":
        """Start the engine's owner thread; returns the engine. Requests before this wait in no queue: call it
        first."""
        ...

    def submit(self, request: Request) -> Busy | None:
        """Accept `request` (None) or refuse it at once (`Busy`) while another one runs. Never blocks."""
        ...

    def prepare(self, hint: PrepareConversation) -> None:
        """The person opened a conversation: read what its next turn needs (its saved prompt cache) ahead of
        it. Never refused, never blocks, never delays a request sent after it; ends with a
        `ConversationPrepared` event. An engine with nothing to read ahead does nothing."""
        ...

    def cancel(self, request_id: str | None = None, *, reason: str = "cancel") -> bool:
        """Ask the active request (or `request_id`, if it is the active one) to stop; False when there is none.
        A `Draining` event follows at once and the request's `Finished` when it has stopped."""
        ...

    def state(self) -> EngineState:
        """What the engine is doing right now, for display."""
        ...

    def waiting_on(self) -> str | None:
        """The active request in words ("id (phase, 1.2s)"), or None when idle: for "still waiting" messages."""
        ...

    def close(self, timeout_s: float = 30.0) -> bool:
        """Cancel what runs, wait up to `timeout_s` for it to drain, and stop taking requests."""
        ...


EngineFactory = Callable[[Sink], EngineClient]
"""Builds an engine that reports to the given sink (`Engine`, `remote_engine_factory(...)`, a test's engine)."""
