"""Schema versions: a new database gets the latest schema, an older one migrates forward, a newer one is refused."""

from __future__ import annotations

import sqlite3

import pytest

from mlxchat.settings import ChatSettings
from mlxchat.store import SCHEMA_VERSION, History, StoreError

# The first released schema, written out by hand as an old mlxchat would have created it.
V1_SCHEMA = """
CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL, created_at REAL NOT NULL,
                            updated_at REAL NOT NULL);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
                       conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                       role TEXT NOT NULL, text TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
INSERT INTO conversations VALUES ('old', 'An old chat', 1700000000.0, 1700000100.0);
INSERT INTO messages (conversation_id, role, text, created_at) VALUES ('old', 'user', 'Hi from v1', 1700000000.0);
INSERT INTO messages (conversation_id, role, text, created_at) VALUES ('old', 'assistant', 'Hello!', 1700000100.0);
PRAGMA user_version = 1;
"""


def _version(path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA user_version").fetchone()[0]


def test_a_new_database_has_the_latest_schema_in_wal_mode(history):
    history.create_conversation()
    assert _version(history.database_path) == SCHEMA_VERSION
    with sqlite3.connect(history.database_path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_version_1_database_migrates_forward_and_keeps_its_chats(data_dir, make_image):
    data_dir.mkdir()
    path = data_dir / "history.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(V1_SCHEMA)
    assert _version(path) == 1

    history = History(data_dir)
    old = history.get_conversation("old")

    assert _version(path) == SCHEMA_VERSION
    assert old.title == "An old chat"
    assert [(m.role, m.text, m.status, m.stats) for m in old.messages] == [
        ("user", "Hi from v1", "complete", None),
        ("assistant", "Hello!", "complete", None),
    ]
    assert old.settings == ChatSettings()  # the defaults stand in for settings v1 did not keep
    # and the new features work on the migrated database
    history.add_message("old", "user", "and an image", images=[make_image()])
    assert len(history.get_conversation("old").messages[-1].attachments) == 1
    assert history.search("from v1")[0].id == "old"


def test_a_database_from_a_newer_mlxchat_is_refused_with_a_clear_message(data_dir):
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "history.sqlite3") as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError) as error:
        History(data_dir).list_conversations()
    assert error.value.kind == "newer-schema"
    assert "newer mlxchat" in str(error.value)


def test_a_file_that_is_not_a_database_is_reported_not_overwritten(data_dir):
    data_dir.mkdir()
    path = data_dir / "history.sqlite3"
    path.write_bytes(b"this is not sqlite, just some text that is long enough " * 10)
    with pytest.raises(StoreError) as error:
        History(data_dir).create_conversation()
    assert error.value.kind == "corrupt"
    assert str(path) in str(error.value)
    assert path.read_bytes().startswith(b"this is not sqlite")
