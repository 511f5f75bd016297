"""A data folder that cannot take a write gives one clear `StoreError`, and what was saved before stays."""

from __future__ import annotations

import errno
import os
import sqlite3

import pytest

from mlxchat.store import History, StoreError
from mlxchat.store.errors import store_error


def test_a_data_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    with pytest.raises(StoreError) as error:
        History(blocker / "data").create_conversation()
    assert error.value.kind == "read-only"
    assert str(blocker) in str(error.value)
    assert "\n" not in str(error.value)


def test_a_full_disk_fails_the_write_and_keeps_everything_saved_before(history):
    conversation = history.create_conversation()
    saved = history.add_message(conversation.id, "user", "saved before the disk filled up")
    connection = history._connect(create=True)  # simulate the full disk with SQLite's own size cap
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")

    with pytest.raises(StoreError) as error:
        history.add_message(conversation.id, "assistant", "x" * 200_000)
    assert error.value.kind == "full"
    assert "full" in str(error.value)

    connection.execute("PRAGMA max_page_count = 1073741823")
    assert history.get_conversation(conversation.id).messages == (saved,)
    history.add_message(conversation.id, "assistant", "x" * 200_000)  # once there is room it saves again
    assert len(history.get_conversation(conversation.id).messages) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_a_read_only_data_folder(history):
    conversation = history.create_conversation()
    history.close()
    for path in [history.data_dir, *history.data_dir.iterdir()]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        with pytest.raises(StoreError) as error:
            History(history.data_dir).add_message(conversation.id, "user", "hello")
        assert error.value.kind == "read-only"
    finally:
        for path in [history.data_dir, *history.data_dir.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize(
    "failure, kind",
    [
        (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
        (sqlite3.OperationalError("database or disk is full"), "full"),
        (OSError(errno.ENOSPC, "No space left on device"), "full"),
        (PermissionError(errno.EACCES, "Permission denied"), "read-only"),
        (OSError(errno.EROFS, "Read-only file system"), "read-only"),
        (sqlite3.DatabaseError("database disk image is malformed"), "corrupt"),
    ],
)
def test_failures_are_worded_for_people(tmp_path, failure, kind):
    error = store_error(failure, "save the message", tmp_path / "history.sqlite3")
    assert error.kind == kind
    assert str(error).startswith("Cannot save the message")
    assert str(tmp_path) in str(error)


def test_attaching_a_missing_image_saves_nothing(history, tmp_path):
    conversation = history.create_conversation()
    with pytest.raises(StoreError) as error:
        history.add_message(conversation.id, "user", "look", images=[tmp_path / "gone.png"])
    assert "gone.png" in str(error.value)
    assert history.get_conversation(conversation.id).messages == ()


def test_writing_to_an_unknown_conversation(history):
    history.create_conversation()
    with pytest.raises(StoreError) as error:
        history.add_message("no-such-id", "user", "hello")
    assert error.value.kind == "not-found"
