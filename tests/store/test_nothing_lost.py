"""The store's side of "nothing lost, nothing hung" (issue 10): resume what was last opened, delete only the turns
a window names, a lock held by another program is a quick, named failure, and a read-only folder is read."""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from mounts import mounted  # noqa: F401 (fixture)

from mlxchat.store import History, StoreError


def test_resume_reopens_the_conversation_last_opened_not_the_last_updated(history):
    older = history.create_conversation("older")
    history.add_message(older.id, "user", "from yesterday")
    newer = history.create_conversation("newer")
    history.add_message(newer.id, "user", "from today")
    assert history.last_conversation().id == newer.id

    history.mark_opened(older.id)  # read the older one, wrote nothing, quit

    assert history.last_conversation().id == older.id
    assert [s.title for s in history.list_conversations()] == ["newer", "older"], "the list still follows writes"
    history.add_message(newer.id, "user", "a write counts as using it")
    assert history.last_conversation().id == newer.id


def test_marking_an_unknown_conversation_opened_says_so(history):
    history.create_conversation()
    with pytest.raises(StoreError) as error:
        history.mark_opened("nope")
    assert error.value.kind == "not-found"


def test_delete_messages_removes_only_the_named_rows(history, make_image):
    """Two windows on one conversation: window A's regenerate removes A's own turns, never B's later ones."""
    conversation = history.create_conversation()
    a_question = history.add_message(conversation.id, "user", "A asks")
    a_answer = history.add_message(conversation.id, "assistant", "A's answer", images=[make_image()])
    b_question = history.add_message(conversation.id, "user", "B asks")
    b_answer = history.add_message(conversation.id, "assistant", "B's answer")

    assert history.delete_messages([a_answer.id, a_question.id]) == 2

    kept = [(m.id, m.text) for m in history.get_conversation(conversation.id).messages]
    assert kept == [(b_question.id, "B asks"), (b_answer.id, "B's answer")]
    assert not a_answer.attachments[0].path.exists(), "an image nothing uses any more is removed"
    assert history.delete_messages([a_question.id]) == 0, "already gone: nothing else is touched"
    assert history.delete_messages([]) == 0


@contextmanager
def held_write_lock(database: Path):
    """Another program holding the history's write lock (as a second window mid-write would)."""
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_write_waits_a_bounded_time_for_a_held_lock_and_says_so(data_dir):
    history = History(data_dir, lock_timeout_s=0.3)
    conversation = history.create_conversation()
    with held_write_lock(history.database_path):
        started = time.monotonic()
        with pytest.raises(StoreError) as error:
            history.add_message(conversation.id, "user", "waits for the lock")
        waited = time.monotonic() - started
        assert error.value.kind == "locked"
        assert "another" in str(error.value) and "locked" in str(error.value)
        assert waited < 3, f"waited {waited:.1f}s"
        assert [s.id for s in history.list_conversations()] == [conversation.id], "reading is not blocked"
    history.add_message(conversation.id, "user", "saved once the lock is free")
    assert len(history.get_conversation(conversation.id).messages) == 1
    history.close()


def test_a_read_of_this_process_does_not_wait_behind_its_own_blocked_write(data_dir):
    """The UI reads (F2's list) while the history writer waits for another program's lock: no freeze."""
    import threading

    history = History(data_dir, lock_timeout_s=2.0)
    conversation = history.create_conversation("kept")
    with held_write_lock(history.database_path):
        writer = threading.Thread(target=lambda: pytest.raises(StoreError, history.add_message, conversation.id, "user", "x"))
        writer.start()
        deadline = time.monotonic() + 5
        while history._locks[True].acquire(blocking=False):  # until the writer holds the write side, waiting
            history._locks[True].release()
            assert time.monotonic() < deadline, "the writer never started its write"
            time.sleep(0.005)
        started = time.monotonic()
        assert [s.title for s in history.list_conversations()] == ["kept"]
        assert time.monotonic() - started < 1.0
        writer.join(10)
    history.close()




def test_a_read_only_data_folder_is_named_read_only_and_its_history_is_read(mounted, tmp_path):
    mount = mounted(tmp_path / "data")
    writable = History(mount.folder)
    conversation = writable.create_conversation("Kept from before")
    writable.add_message(conversation.id, "user", "hello")
    writable.close()
    mount.read_only()

    history = History(mount.folder)
    assert [s.title for s in history.list_conversations()] == ["Kept from before"]
    assert history.get_conversation(conversation.id).messages[0].text == "hello"
    assert history.last_conversation().id == conversation.id
    assert history.read_only
    with pytest.raises(StoreError) as error:
        history.add_message(conversation.id, "user", "cannot go")
    assert error.value.kind == "read-only"
    assert "read-only" in str(error.value) and "cannot be created" not in str(error.value)
    history.close()


def test_a_read_only_data_folder_without_a_history_is_named_read_only(mounted, tmp_path):
    mount = mounted(tmp_path / "data")
    mount.read_only()
    history = History(mount.folder)
    assert history.list_conversations() == []
    assert history.read_only
    with pytest.raises(StoreError) as error:
        history.create_conversation()
    assert error.value.kind == "read-only"
    assert "read-only" in str(error.value) and "cannot be created" not in str(error.value)


def test_a_writable_history_is_not_read_only(history):
    assert not history.read_only
    history.create_conversation()
    assert not history.read_only
