"""Phase 2: conversations saved as they finish, the conversation list (new, switch, rename, delete, search),
per-conversation settings, regenerate, continue and edit-and-resend — on the staged engine and a real
`History` in a temporary folder."""

from __future__ import annotations

import pytest

from mlxchat.engine import TextDelta
from mlxchat.store import History, StoreError
import staged
from mlxchat.ui.screens.conversations import ConversationsScreen
from mlxchat.ui.screens.dialogs import ConfirmScreen, TextInputScreen
from mlxchat.ui.screens.settings import SettingsScreen

from conftest import SIZE, until


@pytest.fixture
def history(tmp_path):
    store = History(tmp_path / "data")
    yield store
    store.close()


async def answer(pilot, engine, text: str, reason: str = "stop") -> None:
    """Stream `text` as the answer to the request the app just sent, then finish it."""
    staged.play_answer_start(engine, text, 5)
    staged.play_answer_end(engine, text, 5, reason)
    await until(pilot, lambda: not pilot.app.chat.busy, what="the finish")
    await pilot.app.chat.store.flush(10)  # the history writes off the event loop: wait for it, not for luck


async def chat(pilot, engine, question: str, reply: str, reason: str = "stop") -> None:
    await staged.ask(pilot, question)
    await answer(pilot, engine, reply, reason)


def stored(history, conversation_id):
    return [(m.role, m.text, m.status) for m in history.get_conversation(conversation_id).messages]


async def test_messages_are_saved_when_they_finish(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "What is MLX?")
        await app.chat.store.flush(10)
        conversation_id = app.chat.session.stored_id
        assert stored(history, conversation_id) == [("user", "What is MLX?", "complete")]
        engine.emit(TextDelta(engine.last_request_id, "An array", 2))
        await until(pilot, lambda: app.chat.session.turns[-1].text, what="the delta")
        assert len(stored(history, conversation_id)) == 1, "nothing is written per token"
        await answer(pilot, engine, " framework.")
        assert stored(history, conversation_id)[-1] == ("assistant", "An array framework.", "complete")
        assert app.chat.session.title == "What is MLX?"
        assert str(app.chat.query_one("#chat-title").content) == "What is MLX?"


async def test_a_stopped_answer_is_saved_stopped_and_continue_updates_it(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "Count")
        await pilot.press("escape")
        await answer(pilot, engine, "one two", reason="cancelled")
        conversation_id = app.chat.session.stored_id
        assert stored(history, conversation_id)[-1] == ("assistant", "one two", "stopped")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.chat.busy, what="the continue")
        assert engine.submitted[-1].continue_last
        await answer(pilot, engine, " three")
        assert stored(history, conversation_id) == [
            ("user", "Count", "complete"),
            ("assistant", "one two three", "complete"),
        ]


async def test_regenerate_replaces_the_saved_answer(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await chat(pilot, engine, "Pick a colour", "Red")
        await pilot.press("f5")
        await until(pilot, lambda: app.chat.busy, what="the retry")
        await answer(pilot, engine, "Blue")
        assert stored(history, app.chat.session.stored_id) == [
            ("user", "Pick a colour", "complete"),
            ("assistant", "Blue", "complete"),
        ]
        assert [view.text for view in app.chat.conversation.views()] == ["Pick a colour", "Blue"]


async def test_edit_last_takes_the_message_back_and_resends_it(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await chat(pilot, engine, "Hello", "Hi!")
        await chat(pilot, engine, "Whats 2+2", "5")
        await pilot.press("f9")
        assert app.chat.prompt.text == "Whats 2+2"
        assert [t.text for t in app.chat.session.turns] == ["Hello", "Hi!"]
        assert len(app.chat.conversation.views()) == 2
        await app.chat.store.flush(10)
        assert len(stored(history, app.chat.session.stored_id)) == 2
        app.chat.prompt.set_text("What's 2+2?")
        await pilot.press("enter")
        await until(pilot, lambda: app.chat.busy, what="the resend")
        assert engine.submitted[-1].messages[-1].content == "What's 2+2?"
        await answer(pilot, engine, "4")
        assert [m[1] for m in stored(history, app.chat.session.stored_id)] == ["Hello", "Hi!", "What's 2+2?", "4"]


async def test_new_switch_and_resume_conversations(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await chat(pilot, engine, "First topic", "About the first")
        first_id = app.chat.session.stored_id
        await pilot.press("ctrl+n")
        assert app.chat.conversation.views() == [] and app.chat.session.stored_id is None
        await chat(pilot, engine, "Second topic", "About the second", reason="cancelled")
        await pilot.press("f2")
        assert isinstance(app.screen, ConversationsScreen)
        assert [s.title for s in app.screen.summaries] == ["Second topic", "First topic"]
        await pilot.press("down", "enter")
        await until(pilot, lambda: app.chat.session.stored_id == first_id, what="the switch")
        assert [v.text for v in app.chat.conversation.views()] == ["First topic", "About the first"]
        await staged.ask(pilot, "More")
        assert engine.submitted[-1].conversation_id == first_id, "the stored id scopes the prompt cache"
        assert [m.content for m in engine.submitted[-1].messages] == ["First topic", "About the first", "More"]

    resumed, resumed_engine = staged_app(history=history, conversation=history.last_conversation())
    async with resumed.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(resumed.chat.conversation.views()) == 3, what="the resumed turns")
        assert resumed.chat.session.stored_id == first_id


async def test_second_conversation_stopped_answer_reopens_stopped(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await chat(pilot, engine, "Tell me", "Once upon", reason="cancelled")
    again, _ = staged_app(history=history, conversation=history.last_conversation())
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(again.chat.conversation.views()) == 2, what="the resumed turns")
        view = again.chat.conversation.views()[-1]
        await until(pilot, lambda: view.has_class("-stopped"), what="the stopped mark")
        assert "stopped" in str(view.query_one(".message-footer").content)


async def test_rename_delete_and_search_in_the_list(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await chat(pilot, engine, "Cats", "Meow")
        await pilot.press("ctrl+n")
        await chat(pilot, engine, "Dogs", "Woof")
        await pilot.press("f2")
        await pilot.press(*"meow")
        assert [s.title for s in app.screen.summaries] == ["Cats"]
        await pilot.press(*"\b\b\b\b")
        app.screen.query_one("Input").value = ""
        await pilot.pause()
        await pilot.press("f2")
        assert isinstance(app.screen, TextInputScreen)
        app.screen.query_one("Input").value = "Dogs and more"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen), what="back to the list")
        assert app.screen.summaries[0].title == "Dogs and more"
        await pilot.press("f8")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen), what="back to the list")
        assert [s.title for s in app.screen.summaries] == ["Cats"]
        await pilot.press("escape")
        assert app.chat.session.stored_id is None, "the open conversation was deleted: a new one is shown"
        assert app.chat.conversation.views() == []


async def test_editing_while_an_answer_runs_is_refused(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "Long one")
        await pilot.press("f9")
        assert "stop it first" in app.chat.notice_text()
        assert len(app.chat.conversation.views()) == 2


async def test_settings_are_kept_per_conversation_and_used(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await chat(pilot, engine, "Hi", "Hello")
        await pilot.press("f3")
        assert isinstance(app.screen, SettingsScreen)
        app.screen.query_one("#settings-temperature").value = "hot"
        await pilot.press("ctrl+s")
        assert "Temperature" in str(app.screen.query_one("#settings-problem").content)
        app.screen.query_one("#settings-temperature").value = "0.2"
        app.screen.query_one("#settings-seed").value = "7"
        app.screen.query_one("#settings-system_prompt").load_text("Answer in French.")
        await pilot.press("ctrl+s")
        assert not isinstance(app.screen, SettingsScreen)
        await app.chat.store.flush(10)
        saved = history.get_conversation(app.chat.session.stored_id).settings
        assert (saved.temperature, saved.seed, saved.system_prompt) == (0.2, 7, "Answer in French.")
        await staged.ask(pilot, "Bye")
        request = engine.submitted[-1]
        assert (request.sampling.temperature, request.sampling.seed) == (0.2, 7)
        assert request.messages[0].role == "system" and request.messages[0].content == "Answer in French."


async def test_changing_the_model_in_settings_loads_it(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await pilot.press("f3")
        app.screen.query_one("#settings-model").value = "/models/other"
        await pilot.press("ctrl+s")
        load = engine.submitted[-1]
        assert type(load).__name__ == "LoadModel" and load.model == "/models/other"


class BrokenHistory(History):
    def add_message(self, *args, **kwargs):
        raise StoreError("The data folder is read-only (/nowhere).", "read-only")


async def test_a_history_that_cannot_be_written_loses_nothing_on_screen(staged_app, tmp_path):
    app, engine = staged_app(history=BrokenHistory(tmp_path / "ro"))
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await chat(pilot, engine, "Still here?", "Yes")
        assert "History not saved" in app.chat.notice_text() and "read-only" in app.chat.notice_text()
        assert [v.text for v in app.chat.conversation.views()] == ["Still here?", "Yes"]


async def test_quitting_mid_answer_saves_the_partial_answer_as_stopped(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "Write a poem")
        staged.play_answer_start(engine, "Roses are", 2)
        await until(pilot, lambda: app.chat.status.phase == "generating", what="generating")
        await pilot.press("ctrl+q")
        assert app.chat.status.phase == "draining"
        staged.play_answer_end(engine, "Roses are", 2, reason="shutdown")
        await until(pilot, lambda: app.return_code is not None, what="the exit")
    conversation = history.last_conversation()
    assert [(m.text, m.status) for m in conversation.messages] == [("Write a poem", "complete"), ("Roses are", "stopped")]
