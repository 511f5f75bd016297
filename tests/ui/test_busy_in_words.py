"""Busy, in the user's words: a refusal names the conversation that is answering (not `chat-4`), and a remote
server's busy answer (`Finished.busy`) is handled like the engine's own refusal: the message goes back into the
prompt, nothing of it stays in the conversation, and the notice says it can be sent again."""

from __future__ import annotations

from staged import ask, loaded_scene

from conftest import SIZE, until


async def test_a_refusal_names_the_conversation_that_is_answering(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded_scene(pilot, engine)
        await ask(pilot, "France trivia: the capital?")
        await pilot.press(*"And Italy?", "enter")
        notice = app.chat.notice_text()
    assert notice.startswith("Engine busy: answering in 'France trivia: the capital?' (prefill, 1.4 s)."), notice
    assert "chat-" not in notice and "Your prompt is kept" in notice


async def test_a_busy_server_gives_the_message_back_to_the_prompt(staged_app, tmp_path):
    from mlxchat.store import History

    history = History(tmp_path / "data")
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await loaded_scene(pilot, engine)
        await ask(pilot, "Hello there")
        said = "Server busy: http://gpu:8000/v1 answered HTTP 503: “queue is full”. Try again in a moment."
        engine.finish("error", error=said, busy=True)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        assert app.chat.prompt.text == "Hello there"
        assert app.chat.session.turns == [] and app.chat.conversation.views() == []
        assert app.chat.notice_text() == f"{said} Your prompt is kept: press Enter to send it again."
        await pilot.press("enter")
        await until(pilot, lambda: app.chat.busy, what="the second send")
        assert engine.submitted[-1].messages[-1].content == "Hello there"
        assert await app.chat.store.flush()
    stored = [m.text for c in history.list_conversations() for m in history.get_conversation(c.id).messages]
    history.close()
    assert stored.count("Hello there") == 1, stored


async def test_a_server_error_that_is_not_busy_stays_an_error_in_the_conversation(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded_scene(pilot, engine)
        await ask(pilot, "Hello there")
        engine.finish("error", error="http://gpu:8000/v1 answered HTTP 500")
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        assert app.chat.prompt.text == ""
        assert [turn.status for turn in app.chat.session.turns] == ["complete", "error"]


async def test_a_refused_first_message_leaves_no_empty_conversation_in_the_history(staged_app, tmp_path):
    """The first message of a new chat created and named a conversation when it was saved; taken back (a busy
    server's refusal: the staged engine stands in for the remote server, which cannot run here), that
    conversation would stay in the history with no message, titled after the refused text. It goes, and the
    chat is new again: the next message creates its own conversation."""
    from mlxchat.store import History

    history = History(tmp_path / "data")
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await loaded_scene(pilot, engine)
        await ask(pilot, "Hello there")
        await app.chat.store.flush()
        assert [c.title for c in history.list_conversations()] == ["Hello there"], "saved as it was sent"
        engine.finish("error", error="Server busy: try again in a moment.", busy=True)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        assert await app.chat.store.flush()
        assert history.list_conversations() == []
        assert (app.chat.session.title, app.chat.session.stored_id) == ("New chat", None)
        assert str(app.chat.title_label.content) == "New chat"
        await pilot.press("enter")
        await until(pilot, lambda: app.chat.busy, what="the second send")
        assert await app.chat.store.flush()
        assert [c.title for c in history.list_conversations()] == ["Hello there"]
    history.close()
