"""Provides the Textual message that carries engine events from the engine's owner thread to the chat screen.

The engine calls its sink on the owner thread, which must never wait for the UI; `post_message` is thread-safe
and only enqueues, so the sink is just `chat_screen.post_message(EngineEvent(event))`. Progress and stats
events are "latest value wins": if the UI falls behind, a newer one replaces an unhandled older one of the same
kind and request in the queue, so a slow repaint never builds a backlog.
"""

from __future__ import annotations

from textual.message import Message

from mlxchat.engine import Event, ModelLoading, PrefillProgress, Stats

_REPLACEABLE = (Stats, PrefillProgress, ModelLoading)


class EngineEvent(Message):
    """An engine event, delivered on the UI's event loop."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, EngineEvent)
            and isinstance(self.event, _REPLACEABLE)
            and type(message.event) is type(self.event)
            and message.event.request_id == self.event.request_id
        )
