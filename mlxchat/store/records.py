"""Provides the store's value types: frozen dataclasses the UI can hold, pass between threads and compare.

Nothing here touches the database; `History` builds these from rows and hands them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Mapping

from mlxchat.settings import ChatSettings

Role = Literal["system", "user", "assistant"]
MessageStatus = Literal["complete", "stopped", "error"]

ROLES: tuple[str, ...] = ("system", "user", "assistant")
STATUSES: tuple[str, ...] = ("complete", "stopped", "error")


@dataclass(frozen=True)
class StoredAttachment:
    """An image or document attached to a message, kept as a content-addressed copy in `<data_dir>/attachments/`
    (the copy keeps the original's suffix, which tells the two apart)."""

    sha256: str
    name: str
    """The file name it had when attached (for display and export; the copy is named by its hash)."""
    path: Path
    """The stored copy. It stays valid when the original is moved or deleted."""
    size_bytes: int


def _is_document(attachment: StoredAttachment) -> bool:
    from mlxchat.engine.documents import is_document  # light: no MLX; the chat's and the attach check's rule

    return is_document(attachment.path, name=attachment.name)


@dataclass(frozen=True)
class StoredMessage:
    """One saved turn. Written once, when it finishes (stopped and failed answers keep their partial text)."""

    id: int
    conversation_id: str
    role: Role
    text: str
    status: MessageStatus
    created_at: datetime
    stats: Mapping[str, Any] | None = None
    """The engine's final `Stats` as a dict (see `dataclasses.asdict`), or None."""
    attachments: tuple[StoredAttachment, ...] = ()
    thinking: str = ""
    """A reasoning model's thinking before this answer, kept apart from `text` (the answer); "" when none. Never
    sent back to the model: templates drop earlier thinking. Export shows it as a collapsed block."""

    @property
    def image_paths(self) -> tuple[Path, ...]:
        return tuple(attachment.path for attachment in self.attachments if not _is_document(attachment))

    @property
    def document_paths(self) -> tuple[Path, ...]:
        return tuple(attachment.path for attachment in self.attachments if _is_document(attachment))

    def to_engine_message(self):
        """This turn as the engine's `Message` (images and documents point at the stored copies)."""
        from mlxchat.engine.requests import Message

        return Message(self.role, self.text, self.image_paths, self.document_paths)


@dataclass(frozen=True)
class Conversation:
    """A whole conversation: its settings and every message, oldest first."""

    id: str
    """Stable text id; also a good `ChatRequest.conversation_id` (it scopes the engine's prompt cache)."""
    title: str
    created_at: datetime
    updated_at: datetime
    settings: ChatSettings = field(default_factory=ChatSettings)
    messages: tuple[StoredMessage, ...] = ()

    @property
    def last_message(self) -> StoredMessage | None:
        return self.messages[-1] if self.messages else None

    def engine_messages(self) -> tuple:
        """The messages to send the engine: the system prompt (when set) followed by every stored turn."""
        from mlxchat.engine.requests import Message

        turns = tuple(message.to_engine_message() for message in self.messages)
        if self.settings.system_prompt and not (turns and turns[0].role == "system"):
            return (Message("system", self.settings.system_prompt),) + turns
        return turns


@dataclass(frozen=True)
class ConversationSummary:
    """A row of the conversation list or of search results; cheap to build for every conversation."""

    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int
    preview: str
    """For a list: the start of the first user message. For a search: the text around the first match."""
    model: str | None = None
    """The conversation's model setting (None: the demo model)."""
