"""Provides `History`: conversations and messages in SQLite (stdlib `sqlite3`, WAL), attachments beside it.

The database is `<data_dir>/history.sqlite3`. Nothing is created until the first write: reading a history that
does not exist yet gives empty answers. Each write is one transaction committed with `synchronous=FULL`, so once
a call returns its data survives a `kill -9` (and a power cut); nothing is written per token.

One `History` may be shared by threads. Reads and writes use two connections, each serialised by its own lock,
so a read (the conversation list) never waits behind a write that waits for another program's lock. A write
waits at most `lock_timeout_s` for that lock, then fails as `StoreError(kind="locked")`. Every failure to read or
write comes out as `StoreError` with a one-line message; a failed write changes nothing.

A data folder that cannot be written (a read-only mount, no permission) is still read: `read_only` says so, and
each write fails as `StoreError(kind="read-only")` naming the folder.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from mlxchat import paths
from mlxchat.settings import ChatSettings

from .attachments import AttachmentFolder
from .errors import StoreError, store_error, writable
from .records import Conversation, ConversationSummary, MessageStatus, Role, StoredAttachment, StoredMessage
from .rows import (
    SUMMARY_SQL,
    auto_title,
    check,
    settings_from_json,
    settings_json,
    snippet,
    stats_dict,
    stats_json,
    summary,
    time_of,
)
from .schema import SCHEMA_VERSION, NewerSchema, migrate

DATABASE_NAME = "history.sqlite3"
ATTACHMENTS_FOLDER = "attachments"
LOCK_TIMEOUT_S = 5.0
"""How long a write waits for another program's lock before it fails (the chat writes off its event loop)."""


class History:
    """The conversation history. Cheap to build: it opens the database on first use.

    `data_dir` defaults to `mlxchat.paths.data_dir()`, read when the history is first used (so tests can point
    `MLXCHAT_DATA_DIR` elsewhere). `lock_timeout_s` bounds a write's wait for a lock another program holds.
    """

    def __init__(self, data_dir: Path | None = None, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self._data_dir = data_dir
        self.lock_timeout_s = lock_timeout_s
        self._locks = {True: threading.RLock(), False: threading.RLock()}  # by "for writing"
        self._connections: dict[bool, sqlite3.Connection | None] = {True: None, False: None}
        self._opened_read_only = False
        self.deleted_here: set[str] = set()
        """Ids of conversations deleted through this `History` (this process), as opposed to by another program."""

    # ---- where --------------------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return (self._data_dir or paths.data_dir()).expanduser().absolute()

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_NAME

    @property
    def attachments(self) -> AttachmentFolder:
        return AttachmentFolder(self.data_dir / ATTACHMENTS_FOLDER)

    @property
    def read_only(self) -> bool:
        """True when nothing can be saved here (a read-only mount, no permission); what is there is still read."""
        path = self.database_path
        return self._opened_read_only or not writable(path if path.exists() else self.data_dir)

    # ---- conversations ------------------------------------------------------------------------------------

    def create_conversation(self, title: str | None = None, settings: ChatSettings | None = None) -> Conversation:
        """A new, empty conversation. With no `title` it is named after its first user message."""
        now = time.time()
        conversation_id = uuid.uuid4().hex
        settings = settings or ChatSettings()
        with self._writing("create a conversation") as db:
            db.execute(
                "INSERT INTO conversations (id, title, created_at, updated_at, settings_json, auto_title)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, title or "New chat", now, now, settings_json(settings), title is None),
            )
        return Conversation(conversation_id, title or "New chat", time_of(now), time_of(now), settings, ())

    def get_conversation(self, conversation_id: str) -> Conversation:
        """The conversation with all its messages. Raises `StoreError(kind="not-found")` for an unknown id."""
        with self._reading("read the conversation") as db:
            row = db and db.execute(
                "SELECT id, title, created_at, updated_at, settings_json FROM conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if not row:
                raise StoreError(f"No conversation with id {conversation_id!r} in the history.", "not-found")
            messages = self._messages(db, conversation_id)
        return Conversation(
            id=row[0],
            title=row[1],
            created_at=time_of(row[2]),
            updated_at=time_of(row[3]),
            settings=settings_from_json(row[4]),
            messages=messages,
        )

    def last_conversation(self) -> Conversation | None:
        """The conversation last used, opened or written (what `mlxchat --resume` reopens), or None."""
        with self._reading("find the last conversation") as db:
            row = db and db.execute(
                "SELECT id FROM conversations ORDER BY MAX(updated_at, COALESCE(opened_at, 0)) DESC, rowid DESC"
                " LIMIT 1"
            ).fetchone()
        return self.get_conversation(row[0]) if row else None

    def mark_opened(self, conversation_id: str) -> None:
        """Record that a window opened this conversation now, so `--resume` reopens it. The list's order and
        "last updated" date do not change: opening is not editing."""
        with self._writing("note the opened conversation") as db:
            cursor = db.execute("UPDATE conversations SET opened_at = ? WHERE id = ?", (time.time(), conversation_id))
            if cursor.rowcount == 0:
                raise StoreError(f"No conversation with id {conversation_id!r} in the history.", "not-found")

    def list_conversations(self, limit: int | None = None) -> list[ConversationSummary]:
        """Every conversation, most recently updated first."""
        with self._reading("list conversations") as db:
            if db is None:
                return []
            rows = db.execute(SUMMARY_SQL + " ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?", (limit or -1,))
            return [summary(row, preview=row[6]) for row in rows]

    def search(self, text: str, limit: int = 50) -> list[ConversationSummary]:
        """Conversations whose title or any message contains `text` (case-insensitive for ASCII), most recent
        first; each `preview` shows the text around the first matching message."""
        needle = text.strip()
        if not needle:
            return self.list_conversations(limit)
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._reading("search the history") as db:
            if db is None:
                return []
            rows = db.execute(
                SUMMARY_SQL.replace(
                    "FROM conversations c",
                    ", (SELECT m2.text FROM messages m2 WHERE m2.conversation_id = c.id AND m2.text LIKE :p"
                    " ESCAPE '\\' ORDER BY m2.id LIMIT 1) AS hit FROM conversations c",
                )
                + " WHERE c.title LIKE :p ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m3"
                " WHERE m3.conversation_id = c.id AND m3.text LIKE :p ESCAPE '\\')"
                " ORDER BY c.updated_at DESC, c.rowid DESC LIMIT :limit",
                {"p": pattern, "limit": limit},
            )
            return [summary(row, preview=snippet(row[7], needle) if row[7] else row[6]) for row in rows]

    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise StoreError("A conversation title cannot be empty.", "other")
        with self._writing("rename the conversation") as db:
            self._touch(db, conversation_id, "title = ?, auto_title = 0", (title,))

    def update_settings(self, conversation_id: str, settings: ChatSettings) -> None:
        with self._writing("save the conversation settings") as db:
            self._touch(db, conversation_id, "settings_json = ?", (settings_json(settings),))

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete the conversation, its messages, stored images no other message uses, and its saved prompt
        cache."""
        with self._writing("delete the conversation") as db:
            blobs = db.execute(
                "SELECT DISTINCT a.sha256, a.suffix FROM attachments a JOIN messages m ON m.id = a.message_id"
                " WHERE m.conversation_id = ?",
                (conversation_id,),
            ).fetchall()
            if db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount == 0:
                raise StoreError(f"No conversation with id {conversation_id!r} in the history.", "not-found")
        self.deleted_here.add(conversation_id)
        self._remove_unused(blobs)
        from mlxchat.engine.saved_caches import delete_saved_cache  # files only, no MLX

        delete_saved_cache(conversation_id)

    # ---- messages -----------------------------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: str,
        role: Role,
        text: str,
        *,
        status: MessageStatus = "complete",
        stats: Mapping[str, Any] | Any | None = None,
        images: Sequence[Path] = (),
        thinking: str = "",
    ) -> StoredMessage:
        """Save one finished turn. `stats` may be the engine's `Stats` or a dict. `images` are copied into the
        data folder first, so the message keeps them when the originals move. `thinking` is a reasoning model's
        thinking, stored apart from the answer."""
        check(role, status)
        blobs = []
        for image in images:
            try:
                blobs.append((Path(image).name, self.attachments.put(Path(image))))
            except FileNotFoundError as exc:
                raise StoreError(f"Cannot attach {image}: the file does not exist.", "not-found") from exc
            except OSError as exc:
                raise store_error(exc, f"store the image {Path(image).name}", self.attachments.root) from exc
        now = time.time()
        with self._writing("save the message") as db:
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, text, created_at, status, stats_json, thinking)"
                " SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?)",
                (conversation_id, role, text, now, status, stats_json(stats), thinking, conversation_id),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"No conversation with id {conversation_id!r} in the history.", "not-found")
            message_id = cursor.lastrowid
            db.executemany(
                "INSERT INTO attachments (message_id, position, sha256, name, suffix, size_bytes)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(message_id, i, b.sha256, name, b.suffix, b.size_bytes) for i, (name, b) in enumerate(blobs)],
            )
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
            if role == "user":
                db.execute(
                    "UPDATE conversations SET title = ?, auto_title = 0 WHERE id = ? AND auto_title = 1",
                    (auto_title(text), conversation_id),
                )
        attachments = tuple(
            StoredAttachment(b.sha256, name, self.attachments.path_for(b.sha256, b.suffix), b.size_bytes)
            for name, b in blobs
        )
        return StoredMessage(
            message_id, conversation_id, role, text, status, time_of(now), stats_dict(stats), attachments, thinking
        )

    def update_message(
        self,
        message_id: int,
        *,
        text: str | None = None,
        status: MessageStatus | None = None,
        stats: Mapping[str, Any] | Any | None = None,
        thinking: str | None = None,
    ) -> StoredMessage:
        """Change a saved message: the edited last user message, or a stopped answer that was continued."""
        if status is not None:
            check("user", status)
        with self._writing("update the message") as db:
            row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise StoreError(f"No message with id {message_id} in the history.", "not-found")
            db.execute(
                "UPDATE messages SET text = COALESCE(?, text), status = COALESCE(?, status),"
                " stats_json = COALESCE(?, stats_json), thinking = COALESCE(?, thinking) WHERE id = ?",
                (text, status, stats_json(stats), thinking, message_id),
            )
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), row[0]))
            (message,) = [m for m in self._messages(db, row[0]) if m.id == message_id]
        return message

    def delete_messages(self, message_ids: Iterable[int]) -> int:
        """Delete exactly these messages (a window's own turns, to regenerate or resend); returns how many were
        deleted. Turns another window added to the same conversation meanwhile stay."""
        ids = sorted(set(message_ids))
        if not ids:
            return 0
        marks = ", ".join("?" * len(ids))
        with self._writing("delete messages") as db:
            blobs = db.execute(
                f"SELECT DISTINCT sha256, suffix FROM attachments WHERE message_id IN ({marks})", ids
            ).fetchall()
            conversations = [row[0] for row in db.execute(
                f"SELECT DISTINCT conversation_id FROM messages WHERE id IN ({marks})", ids
            )]
            deleted = db.execute(f"DELETE FROM messages WHERE id IN ({marks})", ids).rowcount
            db.executemany(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", [(time.time(), c) for c in conversations]
            )
        self._remove_unused(blobs)
        return deleted

    # ---- lifecycle ----------------------------------------------------------------------------------------

    def close(self) -> None:
        for for_writing, lock in self._locks.items():
            with lock:
                connection, self._connections[for_writing] = self._connections[for_writing], None
                if connection is not None:
                    connection.close()

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- internals ----------------------------------------------------------------------------------------

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        """The write connection (`create`: the folder and database are made if missing) or the read connection
        (None while there is no database). A folder that cannot be written is read through a read-only one."""
        if self._connections[create] is not None:
            return self._connections[create]
        path = self.database_path
        if not create and not path.exists():
            return None
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._open(path)
        except (OSError, sqlite3.Error, StoreError) as exc:
            if create or writable(path.parent):
                if isinstance(exc, StoreError):
                    raise
                raise store_error(exc, "open the history", path) from exc
            connection = self._open_read_only(path)
        self._connections[create] = connection
        return connection

    def _open(self, path: Path) -> sqlite3.Connection:
        connection = sqlite3.connect(path, timeout=self.lock_timeout_s, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            migrate(connection)
        except NewerSchema as exc:
            connection.close()
            raise self._newer_schema(path, exc.found) from exc
        except BaseException:
            connection.close()
            raise
        return connection

    def _open_read_only(self, path: Path) -> sqlite3.Connection:
        """Read a history in a folder that takes no writes. SQLite needs to create a WAL database's `-shm` file
        even to read it, which such a folder refuses, so the file is opened as immutable when plain read-only
        fails: nothing can change it from here, and nothing here writes."""
        last_error: BaseException | None = None
        for options in ("mode=ro", "mode=ro&immutable=1"):
            try:
                connection = sqlite3.connect(
                    f"{path.as_uri()}?{options}", uri=True, timeout=self.lock_timeout_s, isolation_level=None,
                    check_same_thread=False,
                )
                version = connection.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.Error as exc:
                last_error = exc
                continue
            if version > SCHEMA_VERSION:
                connection.close()
                raise self._newer_schema(path, version)
            if version < SCHEMA_VERSION:
                connection.close()
                raise StoreError(
                    f"Cannot read the history: {path} was written by an older mlxchat and its folder is read-only, "
                    "so it cannot be upgraded. Make the folder writable once, or point MLXCHAT_DATA_DIR elsewhere.",
                    "read-only",
                )
            self._opened_read_only = True
            return connection
        raise store_error(last_error, "open the history", path) from last_error

    def _newer_schema(self, path: Path, found: int) -> StoreError:
        return StoreError(
            f"{path} was written by a newer mlxchat (history schema {found}; this version reads up to "
            f"{SCHEMA_VERSION}). Upgrade mlxchat, or point MLXCHAT_DATA_DIR elsewhere.",
            "newer-schema",
        )

    def _reading(self, action: str):
        return _Transaction(self, action, write=False)

    def _writing(self, action: str):
        return _Transaction(self, action, write=True)

    def _touch(self, db: sqlite3.Connection, conversation_id: str, assignments: str, values: tuple) -> None:
        cursor = db.execute(
            f"UPDATE conversations SET {assignments}, updated_at = ? WHERE id = ?",
            values + (time.time(), conversation_id),
        )
        if cursor.rowcount == 0:
            raise StoreError(f"No conversation with id {conversation_id!r} in the history.", "not-found")

    def _messages(self, db: sqlite3.Connection, conversation_id: str) -> tuple[StoredMessage, ...]:
        attachments: dict[int, list[StoredAttachment]] = {}
        folder = self.attachments
        for message_id, sha256, name, suffix, size in db.execute(
            "SELECT a.message_id, a.sha256, a.name, a.suffix, a.size_bytes FROM attachments a"
            " JOIN messages m ON m.id = a.message_id WHERE m.conversation_id = ? ORDER BY a.message_id, a.position",
            (conversation_id,),
        ):
            attachments.setdefault(message_id, []).append(
                StoredAttachment(sha256, name, folder.path_for(sha256, suffix), size)
            )
        return tuple(
            StoredMessage(
                id=row[0],
                conversation_id=conversation_id,
                role=row[1],
                text=row[2],
                status=row[3],
                created_at=time_of(row[4]),
                stats=json.loads(row[5]) if row[5] else None,
                attachments=tuple(attachments.get(row[0], ())),
                thinking=row[6],
            )
            for row in db.execute(
                "SELECT id, role, text, status, created_at, stats_json, thinking FROM messages"
                " WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            )
        )

    def _remove_unused(self, blobs: Iterable[tuple[str, str]]) -> None:
        blobs = list(blobs)
        if not blobs:
            return
        with self._reading("clean up attachments") as db:
            for sha256, suffix in blobs:
                used = db.execute(
                    "SELECT 1 FROM attachments WHERE sha256 = ? AND suffix = ? LIMIT 1", (sha256, suffix)
                ).fetchone()
                if not used:
                    self.attachments.remove(sha256, suffix)


class _Transaction:
    """`with` block holding the lock of one connection (read or write) and, for writes, one IMMEDIATE transaction
    committed on success."""

    def __init__(self, history: History, action: str, write: bool) -> None:
        self.history, self.action, self.write = history, action, write
        self.lock = history._locks[write]

    def __enter__(self) -> sqlite3.Connection | None:
        self.lock.acquire()
        try:
            self.db = self.history._connect(create=self.write)
            if self.write:
                self.db.execute("BEGIN IMMEDIATE")
        except StoreError:
            self.lock.release()
            raise
        except sqlite3.Error as exc:
            self.lock.release()
            raise store_error(exc, self.action, self.history.database_path) from exc
        return self.db

    def __exit__(self, exc_type, exc, traceback) -> bool:
        try:
            if self.write:
                if exc_type is None:
                    try:
                        self.db.execute("COMMIT")
                        return False
                    except sqlite3.Error as commit_error:
                        exc = commit_error
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise store_error(exc, self.action, self.history.database_path) from exc
            return False
        finally:
            self.lock.release()
