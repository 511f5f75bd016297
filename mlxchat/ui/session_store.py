"""Provides `SessionStore`: keeps the chat screen's `ChatSession` and the history database in step.

Messages are written when they finish, never per token: a user turn when the engine accepts it, an answer once
at its `Finished` (complete, stopped or failed; a continued answer updates the same row). The conversation row
is created with the first message, so opening and leaving an empty chat leaves nothing behind. A failed write
never loses what is on screen: the session stays in memory, the user gets one line saying what was not saved,
and the next write tries again.

Without a `History` (tests, `--no-history` one day) every method is a no-op that succeeds.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from mlxchat.engine import Stats
from mlxchat.settings import ChatSettings

from .chat_model import ChatSession, Turn

Report = Callable[[str], None]


def stats_from_dict(data) -> Stats | None:
    """The engine's `Stats` back from the dict the store keeps, or None when it does not fit."""
    if not data:
        return None
    names = {field.name for field in dataclasses.fields(Stats)}
    try:
        return Stats(**{name: data[name] for name in names})
    except (KeyError, TypeError):
        return None


def session_from(conversation) -> ChatSession:
    """A `ChatSession` showing a stored conversation. Its id is the stored id, which also scopes the engine's
    prompt cache, so reopening a conversation reuses what the engine still holds for it."""
    turns = [
        Turn(
            role=message.role,
            text=message.text,
            images=message.image_paths,
            status=message.status,
            stats=stats_from_dict(message.stats),
            tokens=(message.stats or {}).get("generation_tokens", 0),
            stored_id=message.id,
        )
        for message in conversation.messages
        if message.role in ("user", "assistant")
    ]
    return ChatSession(
        id=conversation.id,
        title=conversation.title,
        settings=conversation.settings,
        turns=turns,
        stored_id=conversation.id,
    )


class SessionStore:
    """Writes sessions to `history` (or nowhere). `report` shows a problem to the user."""

    def __init__(self, history, report: Report) -> None:
        self.history = history
        self._report = report

    @property
    def enabled(self) -> bool:
        return self.history is not None

    def _attempt(self, what: str, write: Callable[[], object]) -> bool:
        from mlxchat.store import StoreError

        try:
            write()
        except StoreError as exc:
            self._report(f"History not saved ({what}): {exc} The conversation stays on screen.")
            return False
        return True

    def _ensure_conversation(self, session: ChatSession) -> str | None:
        if session.stored_id is None:
            conversation = self.history.create_conversation(settings=session.settings)
            session.stored_id = conversation.id
        return session.stored_id

    def save_user(self, session: ChatSession, turn: Turn) -> None:
        if not self.enabled:
            return

        def write() -> None:
            conversation_id = self._ensure_conversation(session)
            stored = self.history.add_message(conversation_id, "user", turn.text, images=turn.images)
            turn.stored_id = stored.id
            if len([t for t in session.turns if t.role == "user"]) == 1:
                session.title = self.history.get_conversation(conversation_id).title

        self._attempt("your message", write)

    def save_answer(self, session: ChatSession, turn: Turn) -> None:
        if not self.enabled or turn.role != "assistant":
            return

        def write() -> None:
            conversation_id = self._ensure_conversation(session)
            if turn.stored_id is None:
                stored = self.history.add_message(
                    conversation_id, "assistant", turn.text, status=turn.status, stats=turn.stats
                )
                turn.stored_id = stored.id
            else:
                self.history.update_message(turn.stored_id, text=turn.text, status=turn.status, stats=turn.stats)

        self._attempt("the answer", write)

    def drop_from(self, turn: Turn) -> None:
        """Delete `turn` and everything after it (regenerate, edit and resend)."""
        if self.enabled and turn.stored_id is not None:
            self._attempt("the removal", lambda: self.history.delete_messages_from(turn.stored_id))

    def save_settings(self, session: ChatSession, settings: ChatSettings) -> None:
        session.settings = settings
        if self.enabled and session.stored_id is not None:
            self._attempt("the settings", lambda: self.history.update_settings(session.stored_id, settings))

    def load(self, conversation_id: str) -> ChatSession | None:
        """The stored conversation as a session, or None (with a report) when it cannot be read."""
        from mlxchat.store import StoreError

        try:
            return session_from(self.history.get_conversation(conversation_id))
        except StoreError as exc:
            self._report(f"Cannot open that conversation: {exc}")
            return None

    def exists(self, conversation_id: str | None) -> bool:
        from mlxchat.store import StoreError

        if not self.enabled or conversation_id is None:
            return False
        try:
            self.history.get_conversation(conversation_id)
        except StoreError:
            return False
        return True
