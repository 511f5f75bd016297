"""`SessionStore` against a real `History` under faults (issue 10, items 4, 5 and 10): a failed write is kept
and retried in order, an answer never lands without its question, the event loop never waits for SQLite, and
what is still unsaved at quit can be exported."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from mounts import mounted  # noqa: F401 (fixture)

from mlxchat.store import History, StoreError
from mlxchat.ui.chat_model import ChatSession, Turn
from mlxchat.ui.session_store import SessionStore


class Notices(list):
    def __call__(self, text: str, kind: str = "warning") -> None:
        self.append(text)


@pytest.fixture
def notices() -> Notices:
    return Notices()


@pytest.fixture
def history(tmp_path):
    store = History(tmp_path / "data", lock_timeout_s=0.3)
    yield store
    store.close()


def make_store(history, notices, **options) -> SessionStore:
    options.setdefault("retry_after_s", (0.05, 0.2))
    options.setdefault("lock_notice_after_s", 5.0)
    return SessionStore(history, notices, **options)


@contextmanager
def held_write_lock(database: Path):
    """Another mlxchat window in the middle of a write: it holds the database's write lock."""
    database.parent.mkdir(parents=True, exist_ok=True)
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


async def settled(store: SessionStore, timeout_s: float = 10.0) -> None:
    """Wait until every queued write is done (or was given up)."""
    assert await store.flush(timeout_s), f"still unsaved: {store.unsaved_count}"


def exchange(session: ChatSession, question: str, answer: str) -> tuple[Turn, Turn]:
    asked = Turn("user", question)
    answered = Turn("assistant", answer, status="complete")
    session.turns += [asked, answered]
    return asked, answered


def saved(history: History, session: ChatSession) -> list[tuple[str, str, str]]:
    return [(m.role, m.text, m.status) for m in history.get_conversation(session.stored_id).messages]


async def test_writes_never_block_the_event_loop_and_a_held_lock_is_named(history, notices):
    """Another window holds the lock: before, each write froze the UI for the whole SQLite wait (10 s)."""
    store = make_store(history, notices, lock_notice_after_s=0.1)
    session = ChatSession()
    history.create_conversation()  # the database exists, so the other window can lock it
    with held_write_lock(history.database_path):
        started = time.perf_counter()
        asked, answered = exchange(session, "Hello?", "Hi.")
        store.save_user(session, asked)
        store.save_answer(session, answered)
        assert time.perf_counter() - started < 0.05, "the event loop waited for the database"
        deadline = time.monotonic() + 5
        while not any("lock" in notice for notice in notices):
            assert time.monotonic() < deadline, notices
            await asyncio.sleep(0.02)
    await settled(store)
    assert saved(history, session) == [("user", "Hello?", "complete"), ("assistant", "Hi.", "complete")]
    assert "History saved again" in notices[-1]


async def test_a_failed_write_is_kept_and_retried_and_the_answer_waits_for_its_question(history, notices, monkeypatch):
    """A full disk refuses the question; the answer that follows must not be written without it, and both are
    saved, in order, once the disk has room again."""
    store = make_store(history, notices)
    real_add = history.add_message
    disk = {"full": True}

    def add_message(conversation_id, role, text, **options):
        if disk["full"]:
            raise StoreError("Cannot save the message: the disk holding /data is full.", "full")
        return real_add(conversation_id, role, text, **options)

    monkeypatch.setattr(history, "add_message", add_message)
    session = ChatSession()
    asked, answered = exchange(session, "Question", "Answer")
    store.save_user(session, asked)
    store.save_answer(session, answered)
    assert not await store.flush(1.0)
    assert store.unsaved_count == 2
    assert [m.role for m in history.get_conversation(session.stored_id).messages] == [], "an answer without its question"
    assert any("History not saved" in notice and "full" in notice for notice in notices), notices

    disk["full"] = False
    await settled(store)
    assert saved(history, session) == [("user", "Question", "complete"), ("assistant", "Answer", "complete")]
    assert store.unsaved_sessions() == []


async def test_what_stays_unsaved_at_quit_is_exported(tmp_path, notices, mounted):
    """A read-only data folder: nothing can be saved, so quitting offers the unsaved conversation as a file."""
    data = mounted(tmp_path / "data")
    data.read_only()
    history = History(data.folder)
    store = make_store(history, notices)
    session = ChatSession()
    asked, answered = exchange(session, "Keep me", "Kept.")
    store.save_user(session, asked)
    store.save_answer(session, answered)
    assert not await store.flush(1.0)
    assert store.read_only and store.unsaved_sessions() == [session]
    assert "read-only" in notices[0] and "tried again" not in notices[0]

    (written,) = store.export_unsaved([data.folder, tmp_path / "beside"])
    assert written.parent == tmp_path / "beside", "the read-only folder is skipped"
    text = written.read_text()
    assert "Keep me" in text and "Kept." in text


async def test_a_streaming_answer_is_saved_every_few_seconds_as_stopped(history, notices):
    clock = [0.0]
    store = make_store(history, notices, clock=lambda: clock[0], partial_every_s=3.0)
    session = ChatSession()
    asked = Turn("user", "Count")
    answer = Turn("assistant", status="streaming")
    session.turns += [asked, answer]
    store.save_user(session, asked)
    answer.text = "one"
    store.save_partial(session, answer)
    clock[0] = 2.0
    answer.text = "one two"
    store.save_partial(session, answer)
    await settled(store)
    assert saved(history, session) == [("user", "Count", "complete")], "saved sooner than every 3 s"

    clock[0] = 3.5
    answer.text = "one two three"
    store.save_partial(session, answer)
    await settled(store)
    assert saved(history, session)[-1] == ("assistant", "one two three", "stopped")

    answer.text, answer.status = "one two three four.", "complete"
    store.save_answer(session, answer)
    await settled(store)
    assert saved(history, session) == [("user", "Count", "complete"), ("assistant", "one two three four.", "complete")]


async def test_drop_removes_only_this_windows_turns(history, notices):
    """Two windows on one conversation: window A regenerates; window B's turns, saved later, stay."""
    window_a, window_b = make_store(history, notices), make_store(history, notices)
    session_a = ChatSession()
    first = exchange(session_a, "A1", "a1")
    for turn in first:
        (window_a.save_user if turn.role == "user" else window_a.save_answer)(session_a, turn)
    await settled(window_a)
    session_b = window_b.load(session_a.stored_id)
    b_turns = exchange(session_b, "B1", "b1")
    window_b.save_user(session_b, b_turns[0])
    window_b.save_answer(session_b, b_turns[1])
    await settled(window_b)

    replaced = session_a.turns.pop()  # regenerate: A's answer goes
    window_a.drop_from(replaced)
    await settled(window_a)
    assert [text for _, text, _ in saved(history, session_a)] == ["A1", "B1", "b1"]

    asked = session_a.last_user()  # edit and resend: A's question (and any answer of A's after it) goes
    session_a.truncate_from(asked)
    window_a.drop_from(asked)
    await settled(window_a)
    assert [text for _, text, _ in saved(history, session_a)] == ["B1", "b1"]


async def test_opening_a_conversation_is_noted_for_resume(history, notices):
    store = make_store(history, notices)
    older = history.create_conversation("older")
    history.add_message(older.id, "user", "old")
    newer = history.create_conversation("newer")
    history.add_message(newer.id, "user", "new")
    assert store.load(older.id).title == "older"
    await settled(store)
    assert history.last_conversation().id == older.id


async def test_closing_finishes_the_queued_writes(history, notices):
    """The app closes (its screen unmounts) with writes still queued: they are done, not dropped."""
    store = make_store(history, notices)
    session = ChatSession()
    asked, answered = exchange(session, "Last words", "Saved.")
    store.save_user(session, asked)
    store.save_answer(session, answered)
    store.close()
    assert saved(history, session) == [("user", "Last words", "complete"), ("assistant", "Saved.", "complete")]
    assert store.unsaved_count == 0


async def test_the_chat_stays_responsive_while_another_window_holds_the_lock(staged_app, tmp_path):
    """Item 10 on the real screen: while the question's write waits for another window's lock (SQLite would wait
    up to 30 s here), the prompt takes keys and the notice names the lock; once the lock is free the exchange is
    saved. Before, the Enter handler itself waited for the lock, and the screen with it."""
    import staged

    from conftest import SIZE, until

    history = History(tmp_path / "data", lock_timeout_s=30.0)
    history.create_conversation("another window's")
    app, engine = staged_app(history=history)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await staged.loaded_scene(pilot, engine)
            with held_write_lock(history.database_path):
                await staged.ask(pilot, "Are you there?")
                await pilot.press(*"typing on")
                assert app.chat.prompt.text == "typing on"
                await until(pilot, lambda: "holds its lock" in app.chat.notice_text(), 10, "the lock notice")
                assert app.chat.store.unsaved_count >= 1, "all of this happened while the write was waiting"
            staged.play_answer_start(engine, "Yes.", 2)
            staged.play_answer_end(engine, "Yes.", 2)
            await until(pilot, lambda: not app.chat.busy, what="the answer")
            assert await app.chat.store.flush(10)
            assert "History saved again" in app.chat.notice_text()
            expected = [("user", "Are you there?", "complete"), ("assistant", "Yes.", "complete")]
            assert saved(history, app.chat.session) == expected
    finally:
        history.close()


async def test_a_conversation_deleted_in_another_window_is_saved_again_as_a_new_one(history, notices, tmp_path):
    """Window B deletes the conversation (F2) while window A still writes to it: A's turns are not dropped, they
    go into a new conversation, whole, in order."""
    store = make_store(history, notices)
    session = ChatSession()
    first = exchange(session, "Before", "the delete")
    store.save_user(session, first[0])
    store.save_answer(session, first[1])
    await settled(store)
    deleted_id = session.stored_id
    other_window = History(tmp_path / "data")
    other_window.delete_conversation(deleted_id)
    other_window.close()

    second = exchange(session, "After", "the delete too")
    store.save_user(session, second[0])
    store.save_answer(session, second[1])
    await settled(store)

    assert session.stored_id not in (None, deleted_id)
    assert [text for _, text, _ in saved(history, session)] == ["Before", "the delete", "After", "the delete too"]
    assert any("deleted" in notice and "new conversation" in notice for notice in notices), notices


async def test_a_conversation_deleted_in_this_window_stays_deleted(history, notices):
    """The user deleted it here (F2) while its answer was still to be saved: nothing brings it back."""
    store = make_store(history, notices)
    session = ChatSession()
    asked, answered = exchange(session, "Forget", "me")
    store.save_user(session, asked)
    await settled(store)
    history.delete_conversation(session.stored_id)
    store.save_answer(session, answered)
    await settled(store)
    assert history.list_conversations() == []
    assert notices == [], "nothing to warn about: the user asked for it"
