"""Provides the history database's schema as a list of forward migrations, versioned with `PRAGMA user_version`.

A new database runs every migration from 1; an older one runs those it lacks. Each migration runs in one
transaction together with its `user_version` bump, so a crash mid-migration leaves the previous version intact.
To change the schema, append a migration; never edit one that has shipped.

Version history:
  1. conversations(id, title, created_at, updated_at); messages(id, conversation_id, role, text, created_at).
  2. conversation settings (JSON); message status and stats (JSON); content-addressed attachments.
  3. conversations.opened_at: when a window last opened it (what `mlxchat -c` resumes).
  4. messages.thinking: a reasoning model's thinking, kept apart from the answer in `text`.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations and plain messages.
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    """,
    # 2: per-conversation settings, message status and stats, attachments.
    """
    ALTER TABLE conversations ADD COLUMN settings_json TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE conversations ADD COLUMN auto_title INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'complete';
    ALTER TABLE messages ADD COLUMN stats_json TEXT;
    CREATE TABLE attachments (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        name TEXT NOT NULL,
        suffix TEXT NOT NULL,
        size_bytes INTEGER NOT NULL
    );
    CREATE INDEX attachments_by_message ON attachments(message_id, position);
    CREATE INDEX attachments_by_hash ON attachments(sha256);
    CREATE INDEX conversations_by_updated ON conversations(updated_at);
    """,
    # 3: when a conversation was last opened (resume reopens the one last used, read or written).
    """
    ALTER TABLE conversations ADD COLUMN opened_at REAL;
    """,
    # 4: a reasoning model's thinking, apart from the answer (copy and the next turn's prompt use `text` only).
    """
    ALTER TABLE messages ADD COLUMN thinking TEXT NOT NULL DEFAULT '';
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


class NewerSchema(Exception):
    """The database was written by a newer mlxchat; `found` is its version."""

    def __init__(self, found: int) -> None:
        super().__init__(found)
        self.found = found


def schema_version(connection: sqlite3.Connection) -> int:
    return connection.execute("PRAGMA user_version").fetchone()[0]


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the database up to `SCHEMA_VERSION`; returns the version it started from.

    `connection` must be in autocommit mode (`isolation_level=None`): each step opens its own transaction.
    """
    start = schema_version(connection)
    if start > SCHEMA_VERSION:
        raise NewerSchema(start)
    for version in range(start + 1, SCHEMA_VERSION + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            if schema_version(connection) >= version:
                connection.execute("COMMIT")
                continue
            for statement in _statements(MIGRATIONS[version - 1]):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return start


def _statements(script: str) -> list[str]:
    """Split a migration into statements (`executescript` would commit our transaction behind our back)."""
    return [statement.strip() for statement in script.split(";") if statement.strip()]
