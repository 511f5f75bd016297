"""The chat screen on the real engine with the tiny random model: send, stream, cancel, drain, busy, continue,
retry, quit. Each test waits for the state the app reaches by handling the engine's own events."""

from __future__ import annotations

from textual.widgets import Markdown

from mlxchat.engine import Draining, Finished, TextDelta
from mlxchat.ui.widgets.message import visible
from mlxchat.ui.widgets.status import StatusBar

from conftest import SIZE, generating, idle, loaded, until


async def test_the_window_paints_before_the_model_loads(real_app):
    app = real_app()
    async with app.run_test(size=SIZE) as pilot:
        assert app.chat.status.phase in ("starting", "loading")
        assert app.chat.model is None
        await loaded(pilot)
        assert app.chat.status.phase == "ready"
        assert app.chat.status.model_name == "tiny-llama"
        assert app.chat.status.context_size == 8192


async def test_send_streams_markdown_then_finishes_with_stats(real_app):
    app = real_app(max_tokens=40)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press(*"hello there", "enter")
        await until(pilot, lambda: len(app.chat.session.turns) == 2, what="the turns")
        await idle(pilot)
        user, answer = app.chat.session.turns
        assert (user.role, user.text) == ("user", "hello there")
        assert answer.status == "complete" and answer.text
        assert answer.stats is not None and answer.stats.generation_tokens == 40
        assert sum(e.tokens for e in real_app.finished(TextDelta)) == 40
        view = app.chat.conversation.last_view()
        shown, expected = view.query_one(Markdown).source, visible(answer.text)
        assert shown.split() == expected.split(), "every delta was streamed, once, in order"
        assert "tok/s" in str(view.query_one(".message-footer").content)
        assert app.chat.prompt.text == ""
        assert app.chat.status.phase == "ready"


async def test_escape_mid_answer_shows_draining_until_finished_then_stopped(real_app):
    app = real_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press(*"tell me everything", "enter")
        await generating(pilot)
        real_app.gate.close()
        await until(pilot, real_app.gate.holding.is_set, what="the engine to be held mid-answer")
        await pilot.press("escape")
        assert app.chat.status.phase == "draining"
        assert app.chat.query_one(StatusBar).has_class("-draining")
        assert app.chat.busy, "draining is not idle: the request has not finished"
        real_app.gate.open()
        await idle(pilot)
        answer = app.chat.session.turns[-1]
        assert answer.status == "stopped" and answer.text
        assert app.chat.status.phase == "stopped"
        assert "stopped after" in str(app.chat.conversation.last_view().query_one(".message-footer").content)
        assert app.chat.session.context()[-1].content == answer.text, "the partial answer stays in context"
        assert [type(e) for e in real_app.events if isinstance(e, (Draining, Finished))][-2:] == [Draining, Finished]


async def test_sending_while_draining_shows_the_busy_answer_and_keeps_the_prompt(real_app):
    app = real_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press(*"first", "enter")
        await generating(pilot)
        real_app.gate.close()
        await until(pilot, real_app.gate.holding.is_set, what="the engine to be held mid-answer")
        await pilot.press("escape", *"second question", "enter")
        notice = app.chat.notice_text()
        assert "Engine busy" in notice and "draining" in notice and "prompt is kept" in notice
        assert app.chat.prompt.text == "second question"
        assert len(app.chat.session.turns) == 2, "nothing was queued behind the user's back"
        real_app.gate.open()
        await idle(pilot)
        assert app.chat.prompt.text == "second question"
        assert "free again" in app.chat.notice_text()
        await pilot.press("enter")
        await until(pilot, lambda: len(app.chat.session.turns) == 4, what="the kept prompt to be sent")
        assert app.chat.session.turns[2].text == "second question"


async def test_sending_while_the_model_loads_is_refused_with_the_engine_message(real_app):
    app = real_app()
    real_app.gate.close()  # hold the load at its first progress step
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, real_app.gate.holding.is_set, what="the load to start")
        assert app.chat.status.phase == "loading"
        await pilot.press(*"hi", "enter")
        assert app.chat.notice_text().startswith("Engine busy: loading ") and "tiny-llama (loading, " in app.chat.notice_text()
        assert app.chat.prompt.text == "hi"
        assert app.chat.session.turns == []
        real_app.gate.open()
        await loaded(pilot)


async def test_ctrl_c_stops_an_answer_and_continue_extends_it(real_app):
    app = real_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press(*"go on", "enter")
        await generating(pilot)
        await pilot.press("ctrl+c")
        await idle(pilot)
        answer = app.chat.session.turns[-1]
        assert answer.status == "stopped"
        stopped_text = answer.text
        await pilot.press("ctrl+r")
        await generating(pilot, tokens=1)
        await pilot.press("escape")
        await idle(pilot)
        assert len(app.chat.session.turns) == 2, "continue extends the same answer"
        assert answer.text.startswith(stopped_text) and len(answer.text) > len(stopped_text)


async def test_retry_replaces_the_last_answer(real_app):
    app = real_app(max_tokens=8)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press(*"question", "enter")
        await until(pilot, lambda: len(app.chat.session.turns) == 2, what="the turns")
        await idle(pilot)
        first = app.chat.session.turns[-1]
        await pilot.press("f5")
        await until(pilot, lambda: app.chat.session.turns[-1] is not first, what="the retry")
        await idle(pilot)
        assert [t.role for t in app.chat.session.turns] == ["user", "assistant"]
        assert len(app.chat.conversation.views()) == 2
        assert app.chat.session.turns[-1].status == "complete"


async def test_quit_while_generating_drains_first_then_exits(real_app):
    app = real_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press(*"a long answer please", "enter")
        await generating(pilot)
        real_app.gate.close()
        await until(pilot, real_app.gate.holding.is_set, what="the engine to be held mid-answer")
        await pilot.press("ctrl+q")
        assert app.is_running, "the app waits for the drain"
        assert app.chat.status.phase == "draining"
        assert "quitting" in app.chat.status.detail
        real_app.gate.open()
        await until(pilot, lambda: app.return_code is not None, what="the app to exit")
    assert app.return_code == 0
    finished = real_app.finished(Finished)[-1]
    assert finished.reason == "shutdown"
    assert app.engine.state().phase in ("idle", "closed")


async def test_continue_with_no_model_loaded_keeps_a_stopped_thought(real_app, tmp_path):
    """With no model the engine cannot say whether the thought resumes: Ctrl+R must not turn into a retry that
    drops the stopped thought and then fails with "No model is loaded"; the thought stays, on screen and stored."""
    from mlxchat.store import History
    from mlxchat.ui.chat_model import Turn

    history = History(tmp_path / "data")
    try:
        conversation = history.create_conversation("MLX")
        history.add_message(conversation.id, "user", "What is MLX?")
        history.add_message(conversation.id, "assistant", "", status="stopped", thinking="The user asks about MLX.")
        app = real_app(history=history, conversation=history.get_conversation(conversation.id), load_model=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.engine.owner_thread.is_alive(), what="the engine started, no model asked")
            stopped: Turn = app.chat.session.turns[-1]
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert not app.chat.busy, "nothing was sent"
            assert "No model is loaded" in app.chat.notice_text() and "kept" in app.chat.notice_text()
            assert app.chat.session.turns[-1] is stopped and stopped.thinking == "The user asks about MLX."
            await app.chat.store.flush(10)
        saved = history.get_conversation(conversation.id).messages
        assert [(m.role, m.status, m.thinking) for m in saved][-1] == ("assistant", "stopped", "The user asks about MLX.")
    finally:
        history.close()
