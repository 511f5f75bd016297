"""A retry (F5) keeps the answer it replaces in the history until the new answer is first written; a retry that
writes nothing (a busy server, an error, Esc, a "stop" refusal while another conversation is read) puts that
answer back, on screen and in the history, and says so. The staged engine stands in for the engine's and the
remote server's events (a busy 503, an error before any text), which cannot be produced here on demand; what is
checked is read back from the real history store."""

from __future__ import annotations

import pytest

from mlxchat.store import History
from mlxchat.ui.widgets.message import MessageView

from staged import ask, loaded_scene, play_answer_end, play_answer_start

from conftest import SIZE, until

OLD = "Old answer"
HELLO = [("user", "Hello there"), ("assistant", OLD)]


@pytest.fixture
def history(tmp_path):
    store = History(tmp_path / "data")
    yield store
    store.close()


def stored(history: History) -> list[tuple[str, str]]:
    return [(m.role, m.text) for c in history.list_conversations() for m in history.get_conversation(c.id).messages]


def shown(app) -> list[str]:
    return [view.turn.text for view in app.chat.conversation.query(MessageView)]


async def answered_then_retried(pilot, engine) -> None:
    """"Hello there" answered with OLD (stored), then F5: the retry is awaited, nothing written yet."""
    await loaded_scene(pilot, engine)
    await ask(pilot, "Hello there")
    play_answer_start(engine, OLD, 2)
    play_answer_end(engine, OLD, 2)
    await until(pilot, lambda: not pilot.app.chat.busy, what="the answer")
    await pilot.app.chat.store.flush()
    await pilot.press("f5")
    await until(pilot, lambda: pilot.app.chat.busy and pilot.app.chat.active.kind == "chat", what="the retry")


@pytest.mark.parametrize(
    "reason, fields, said",
    [
        ("error", {"error": "Server busy: try again in a moment.", "busy": True}, "failed: Server busy"),
        ("error", {"error": "http://gpu:8000/v1 answered HTTP 500"}, "failed: http://gpu:8000/v1 answered HTTP 500"),
        ("cancelled", {}, "stopped before it wrote anything"),
    ],
    ids=["busy", "error", "cancelled"],
)
async def test_a_retry_that_writes_nothing_puts_the_old_answer_back(staged_app, history, reason, fields, said):
    """Busy: the question was the last message sent this run, so it used to be taken back into the prompt, with
    the old answer deleted (and the conversation, being its only message). Error or Esc: the empty answer used
    to replace the old one in the history."""
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answered_then_retried(pilot, engine)
        if reason == "cancelled":
            await pilot.press("escape")
        engine.finish(reason, **fields)
        await until(pilot, lambda: not app.chat.busy, what="the retry's end")
        assert shown(app) == ["Hello there", OLD] and app.chat.prompt.text == ""
        assert [turn.text for turn in app.chat.session.turns] == ["Hello there", OLD]
        notice = app.chat.notice_text()
        assert said in notice and "previous answer is kept" in notice, notice
        await app.chat.store.flush()
        assert stored(history) == HELLO
        await pilot.press("f5")  # the answer put back can be retried again, and is replaced when that one writes
        await until(pilot, lambda: app.chat.busy, what="the second retry")
        play_answer_start(engine, "New answer", 2)
        play_answer_end(engine, "New answer", 2)
        await until(pilot, lambda: not app.chat.busy, what="the second retry's end")
        await app.chat.store.flush()
    assert stored(history) == [("user", "Hello there"), ("assistant", "New answer")]


async def test_a_retry_refused_while_another_conversation_is_read_keeps_its_old_answer(staged_app, history):
    """The "stop" policy refused the retry after the reader had opened a new chat: the refused retry's
    conversation is not on screen (no offer there), and the answer it was to replace stays, in memory and stored."""
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answered_then_retried(pilot, engine)
        retried = app.chat.session
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.chat.session is not retried, what="the new chat")
        engine.finish("error", error="The conversation no longer fits.", overflow_refused=True)
        await until(pilot, lambda: not app.chat.busy, what="the refusal")
        assert [turn.text for turn in retried.turns] == ["Hello there", OLD]
        assert shown(app) == []
        assert "previous answer is kept" in app.chat.notice_text(), app.chat.notice_text()
        await app.chat.store.flush()
    assert stored(history) == HELLO


async def test_the_old_answer_leaves_the_history_only_with_the_new_answers_first_write(staged_app, history):
    """The first text of a retry used to queue the old answer's removal at once, while the new answer's first
    partial save waits `partial_every_s`: a crash in between left neither answer stored."""
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answered_then_retried(pilot, engine)
        play_answer_start(engine, "New", 1)
        await until(pilot, lambda: shown(app)[-1] == "New", what="the first text")
        await app.chat.store.flush()
        assert stored(history) == HELLO, "nothing of the new answer is written yet: the old one stays"
        app.chat.store.partial_every_s = 0.0
        play_answer_start(engine, " answer", 1)
        await until(pilot, lambda: shown(app)[-1] == "New answer", what="more text")
        await app.chat.store.flush()
        assert stored(history) == [("user", "Hello there"), ("assistant", "New answer")], "written as it streams"
        play_answer_end(engine, "New answer", 2)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        await app.chat.store.flush()
    assert stored(history) == [("user", "Hello there"), ("assistant", "New answer")]


async def test_quitting_while_a_retry_has_written_nothing_keeps_the_old_answer(staged_app, history):
    """Ctrl+Q drains the retry (reason "shutdown") before the app exits: the empty retry used to be saved over
    the old answer as a stopped answer with no text."""
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answered_then_retried(pilot, engine)
        await pilot.press("ctrl+q")
        assert app.chat.status.phase == "draining"
        engine.finish("shutdown")
        await until(pilot, lambda: app.return_code is not None, what="the exit")
    assert stored(history) == HELLO
