"""Reading one conversation while another answers: the answer keeps streaming into its own conversation, the
status says where, the finished answer is saved there, and coming back shows it — on the staged engine and a
real `History` in a temporary folder."""

from __future__ import annotations

import pytest

import staged
from mlxchat.engine import TextDelta
from mlxchat.store import History
from mlxchat.ui.screens.conversations import ConversationsScreen
from mlxchat.ui.widgets.conversation import ConversationView

from conftest import SIZE, until


@pytest.fixture
def history(tmp_path):
    store = History(tmp_path / "data")
    yield store
    store.close()


def stored(history, conversation_id):
    return [(m.role, m.text, m.status) for m in history.get_conversation(conversation_id).messages]


async def test_an_answer_streams_on_in_its_own_conversation_while_the_reader_is_in_another(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "France trivia")
        answering = app.chat.session
        rid = engine.last_request_id
        engine.emit(TextDelta(rid, "Paris ", 1))
        await until(pilot, lambda: answering.turns[-1].text == "Paris ", what="the first delta")

        await pilot.press("ctrl+n")  # a new conversation while the answer streams
        assert app.chat.session is not answering and app.chat.conversation.views() == []
        assert app.chat.notice_text() == ""
        assert "answering in 'France trivia'" in app.chat.status_bar.phase_text()
        assert str(app.chat.title_label.content) == "New chat"

        engine.emit(TextDelta(rid, "is the capital.", 4))
        await until(pilot, lambda: answering.turns[-1].text == "Paris is the capital.", what="the delta elsewhere")
        assert app.chat.conversation.views() == [], "nothing of the answer shows in the conversation being read"

        staged.play_answer_end(engine, "Paris is the capital.", 5)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        assert stored(history, answering.stored_id)[-1] == ("assistant", "Paris is the capital.", "complete")
        assert app.chat.status.detail == "in 'France trivia': answered, and saved"
        assert len(app.chat.query(ConversationView)) == 1, "the view that wrote the answer is gone"

        await pilot.press("f2")
        await until(pilot, lambda: len(getattr(app.screen, "summaries", [])) == 1, what="the list")
        await pilot.press("enter")
        await until(pilot, lambda: app.chat.session.stored_id == answering.stored_id, what="the switch back")
        assert [v.text for v in app.chat.conversation.views()] == ["France trivia", "Paris is the capital."]


async def test_coming_back_while_it_still_answers_shows_the_same_live_answer(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "France trivia")
        answering, answering_view = app.chat.session, app.chat.conversation
        await pilot.press("ctrl+n")
        await staged.until(pilot, lambda: app.chat.conversation is not answering_view, what="the new conversation")

        await pilot.press("f2")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen), what="the list")
        await pilot.press("enter")  # the only saved conversation: the one answering
        await until(pilot, lambda: app.chat.session is answering, what="the switch back")
        assert app.chat.conversation is answering_view and answering_view.display
        assert "answering in" not in app.chat.status_bar.phase_text()
        assert len(app.chat.query(ConversationView)) == 1, "the empty new chat was let go"

        staged.play_answer_start(engine, "Paris.", 2)
        await until(pilot, lambda: answering.turns[-1].text == "Paris.", what="the delta")
        staged.play_answer_end(engine, "Paris.", 2)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        assert [v.text for v in app.chat.conversation.views()] == ["France trivia", "Paris."]
        assert app.chat.status.detail == ""


async def test_sending_elsewhere_while_an_answer_streams_is_refused_and_keeps_the_prompt(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "France trivia")
        await pilot.press("ctrl+n")
        await pilot.press(*"And Italy?", "enter")
        assert "Your prompt is kept" in app.chat.notice_text()
        assert app.chat.prompt.text == "And Italy?" and app.chat.session.turns == []


async def test_deleting_the_conversation_that_answers_stops_the_answer_and_saves_nothing(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "France trivia")
        await pilot.press("ctrl+n")
        await pilot.press("f2")
        await until(pilot, lambda: len(getattr(app.screen, "summaries", [])) == 1, what="the list")
        await pilot.press("f8")  # delete "France trivia", then confirm
        await pilot.press("tab", "enter")
        await until(pilot, lambda: getattr(app.screen, "summaries", None) == [], what="the deletion")
        await pilot.press("escape")
        await until(pilot, lambda: engine.phase == "draining", what="the cancel")
        staged.play_answer_end(engine, "Paris", 1, reason="cancelled")
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        assert app.chat.notice_text() == "", "no 'history not saved' warning for a conversation that is gone"
        assert app.chat.status.detail == "'France trivia' was deleted, so its answer was stopped and not saved"
        assert history.last_conversation() is None
        assert len(app.chat.query(ConversationView)) == 1
