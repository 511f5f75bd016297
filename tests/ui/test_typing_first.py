"""Typing while an answer streams, the wiring: each key or paste that reaches the prompt tells the shown answer's
stream (`AnswerStream.give_way`), whose next update then waits for the key's frame (that the key is drawn in a frame
of its own is tested in tests/ui/test_code_stream.py); an answer streaming into a conversation the reader has left is
not told. On the staged engine."""

from __future__ import annotations

from textual import events

import staged
from mlxchat.engine import TextDelta

from conftest import SIZE, until


async def streaming_view(pilot, engine, text: str = "Paris "):
    """Ask, stream `text` of the answer, and return the answer's view once its stream has drawn it."""
    await staged.loaded_scene(pilot, engine)
    await staged.ask(pilot, "France trivia")
    engine.emit(TextDelta(engine.last_request_id, text, 1))
    view = pilot.app.chat.conversation.answer
    await until(pilot, lambda: view._stream is not None and view._stream.shown_chars >= len(text), what="the delta")
    return view


async def test_keys_and_pastes_typed_while_an_answer_streams_reach_its_stream(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await streaming_view(pilot, engine)
        stream = view._stream
        assert stream.typed_at == float("-inf")
        await pilot.press("w")
        assert app.chat.prompt.text == "w"
        first = stream.typed_at
        assert first > float("-inf")
        await pilot.press("h")
        assert stream.typed_at > first
        second = stream.typed_at
        app.post_message(events.Paste("o"))  # as the terminal sends a paste
        await until(pilot, lambda: app.chat.prompt.text == "who", what="the paste")
        assert stream.typed_at > second

        engine.emit(TextDelta(engine.last_request_id, "is the capital.", 4))  # the answer goes on after the keys
        await until(pilot, lambda: stream.shown_chars >= len("Paris is the capital."), what="the next update")
        staged.play_answer_end(engine, "Paris is the capital.", 5)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        await pilot.press("m")  # nothing streams now: a key is only a key
        assert app.chat.prompt.text == "whom"


async def test_keys_typed_in_another_conversation_do_not_hold_the_answer_streaming_elsewhere(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await streaming_view(pilot, engine)
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.chat.conversation.answer is None, what="the new conversation")
        left_at = view._stream.typed_at  # ctrl+n itself went through the prompt while the answer was shown
        await pilot.press("a", "b")
        assert app.chat.prompt.text == "ab"
        assert view._stream.typed_at == left_at
