"""Quitting with turns the history could not take (issue 10, item 4): the app says so and offers an export; a
signal or a lost terminal (`QuitRequested`) exports at once and exits with its code."""

from __future__ import annotations

import pytest

import staged
from conftest import SIZE, until
from mlxchat.store import History, StoreError
from mlxchat.ui.screens.unsaved import UnsavedScreen
from mlxchat.ui.terminal import QuitRequested


@pytest.fixture
def refusing_history(tmp_path, monkeypatch):
    """A history whose every message write fails, as on a full disk."""
    history = History(tmp_path / "data")

    def refuse(*args, **kwargs):
        raise StoreError("Cannot save the message: the disk holding /data is full.", "full")

    monkeypatch.setattr(history, "add_message", refuse)
    yield history
    history.close()


async def chat_then_quit(pilot, engine) -> None:
    await staged.loaded_scene(pilot, engine)
    await staged.ask(pilot, "Keep this")
    staged.play_answer_start(engine, "Kept.", 2)
    staged.play_answer_end(engine, "Kept.", 2)
    await until(pilot, lambda: not pilot.app.chat.busy, what="the answer")
    await pilot.press("ctrl+q")
    await until(pilot, lambda: isinstance(pilot.app.screen, UnsavedScreen), what="the unsaved question")


def exported(folder) -> str:
    (path,) = folder.glob("unsaved-*.md")
    return path.read_text()


async def test_export_and_quit_writes_the_conversation_and_exits_0(staged_app, refusing_history):
    app, engine = staged_app(history=refusing_history)
    async with app.run_test(size=SIZE) as pilot:
        await chat_then_quit(pilot, engine)
        assert "could not be saved" in app.screen.question and "full" in app.screen.question
        await pilot.press("e")
        await until(pilot, lambda: app.return_code is not None, what="the exit")
    assert app.return_value == 0
    text = exported(refusing_history.data_dir)
    assert "Keep this" in text and "Kept." in text
    assert any("the conversation is in" in line for line in app.farewell)


async def test_quit_without_saving_says_so(staged_app, refusing_history):
    app, engine = staged_app(history=refusing_history)
    async with app.run_test(size=SIZE) as pilot:
        await chat_then_quit(pilot, engine)
        await pilot.press("d")
        await until(pilot, lambda: app.return_code is not None, what="the exit")
    assert app.return_value == 0 and "discarded" in app.farewell[0]
    assert not list(refusing_history.data_dir.glob("unsaved-*.md"))


async def test_staying_keeps_the_chat_and_its_unsaved_turns(staged_app, refusing_history):
    app, engine = staged_app(history=refusing_history)
    async with app.run_test(size=SIZE) as pilot:
        await chat_then_quit(pilot, engine)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.chat, what="back to the chat")
        assert app.return_code is None and app.chat.store.unsaved_count == 2
        assert [view.text for view in app.chat.conversation.views()] == ["Keep this", "Kept."]


async def test_a_signal_while_the_question_is_up_exports_and_exits_with_its_code(staged_app, refusing_history):
    app, engine = staged_app(history=refusing_history)
    async with app.run_test(size=SIZE) as pilot:
        await chat_then_quit(pilot, engine)
        app.post_message(QuitRequested(143, "SIGTERM"))
        await until(pilot, lambda: app.return_code is not None, what="the exit")
    assert app.return_value == 143  # what app.run() returns: the process exit code
    assert "Keep this" in exported(refusing_history.data_dir)


async def test_a_signal_exports_at_once_without_asking(staged_app, refusing_history):
    app, engine = staged_app(history=refusing_history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "Keep this")
        staged.play_answer_start(engine, "Kep", 1)
        await until(pilot, lambda: app.chat.status.phase == "generating", what="the answer")
        app.post_message(QuitRequested(129, "the terminal was lost"))
        await until(pilot, lambda: app.chat.status.phase == "draining", what="the drain")
        staged.play_answer_end(engine, "Kep", 1, reason="shutdown")
        await until(pilot, lambda: app.return_code is not None, what="the exit")
    assert app.return_value == 129
    text = exported(refusing_history.data_dir)
    assert "Keep this" in text and "Kep" in text
