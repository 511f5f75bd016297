"""Provides the conversation history: SQLite in the data folder, attachments beside it, and exports.

Everything a front end needs, in one place (all names importable from `mlxchat.store`)::

    from mlxchat.store import History, StoreError

    history = History()                          # <data_dir>/history.sqlite3, opened on first use
    conversation = history.create_conversation(settings=app_config.chat)   # title from the first user message
    history.add_message(conversation.id, "user", "What is in this picture?", images=[Path("cat.png")])
    history.add_message(conversation.id, "assistant", finished.text,
                        status="stopped", stats=finished.stats)            # once, when the answer ends
    conversation = history.get_conversation(conversation.id)               # settings + messages, oldest first
    request = ChatRequest(conversation.engine_messages(), conversation_id=conversation.id,
                          sampling=conversation.settings.sampling())

Reading and listing
    `get_conversation(id) -> Conversation`, `last_conversation() -> Conversation | None` (for `--resume`: the one
    last opened or written; `mark_opened(id)` records an opening),
    `list_conversations(limit=None) -> list[ConversationSummary]` (most recent first),
    `search(text, limit=50) -> list[ConversationSummary]` (title or any message; `preview` shows the match).
Changing
    `create_conversation(title=None, settings=None)`, `rename(id, title)`, `update_settings(id, settings)`,
    `delete_conversation(id)` (also removes stored images nothing else uses),
    `add_message(id, role, text, *, status="complete", stats=None, images=())`,
    `update_message(message_id, *, text=None, status=None, stats=None)` (continue a stopped answer, edit the
    last user message), `delete_messages(ids)` (exactly a window's own turns: regenerate, edit and resend; a
    second window's turns in the same conversation stay).
Exporting
    `to_markdown(conversation)`, `to_json(conversation)`, `export_conversation(conversation, path, fmt=None)`,
    `suggested_file_name(conversation, fmt)`. Images are referenced by the path of their stored copy.
Values
    `Conversation`, `StoredMessage`, `StoredAttachment`, `ConversationSummary`: frozen dataclasses, safe to
    hold and pass between threads. Times are timezone-aware UTC `datetime`s. `ChatSettings` (per conversation)
    comes from `mlxchat.settings`.
Failures
    Every failure is a `StoreError` whose text is one line for the user and whose `kind` is one of read-only,
    full, locked, corrupt, newer-schema, not-found, other. A write waits at most `lock_timeout_s` (5 s) for a
    lock another program holds, then fails as "locked"; reads never wait behind this process's writes. A
    folder that takes no writes is still read (`read_only` is then True). A failed write changes nothing on disk; the caller keeps its
    own objects (nothing in memory is lost) and may save them again later. Bad arguments (an unknown role or
    status) raise `ValueError`.

Guarantees: nothing is created until the first write; each call that writes is one transaction, durable when
it returns (WAL, `synchronous=FULL`), so a `kill -9` at any moment leaves a database that opens with every
message whose `add_message` returned; older databases migrate forward on open (`PRAGMA user_version`, see
`schema.py`). A `History` may be shared between threads.
"""

from .errors import StoreError
from .export import export_conversation, suggested_file_name, to_json, to_markdown
from .history import History
from .records import Conversation, ConversationSummary, MessageStatus, Role, StoredAttachment, StoredMessage
from .schema import SCHEMA_VERSION

__all__ = [
    "Conversation",
    "ConversationSummary",
    "History",
    "MessageStatus",
    "Role",
    "SCHEMA_VERSION",
    "StoreError",
    "StoredAttachment",
    "StoredMessage",
    "export_conversation",
    "suggested_file_name",
    "to_json",
    "to_markdown",
]
