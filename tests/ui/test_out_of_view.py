"""Turns the overflow policy left out of the model's view are marked in the conversation (they stay in it), the
status pane counts them, and an answer cut at the context limit says so in its footer."""

from __future__ import annotations

from mlxchat.engine import ContextWindow, Started, TextDelta, Usage
from mlxchat.ui.widgets.message import MessageView

import staged
from staged import stats_for, until

EXCHANGES = [
    ("What is the capital of France?", "Paris."),
    ("And of Italy?", "Rome."),
    ("Which of the two is larger?", "Paris, by population."),
]
LAST_QUESTION = "Name a famous museum in each."
LAST_ANSWER = "The Louvre in Paris and the Uffizi in Florence, though that one is not in Rome"


async def answer(pilot, engine, text: str, *, hidden: tuple[int, ...] = (), context_full: bool = False) -> None:
    rid = engine.last_request_id
    prompt = 7800 if context_full else 60
    engine.emit(Started(rid, prompt, 0, "text"))
    engine.emit(ContextWindow(rid, "truncate-middle", hidden, prompt, 8192, 8192 - prompt))
    engine.emit(TextDelta(rid, text, 20))
    stats = stats_for(rid, 392 if context_full else 20, prompt_tokens=prompt)
    engine.finish("length" if context_full else "stop", text=text, usage=Usage(prompt, 0, 20), stats=stats,
                  context_full=context_full)
    await until(pilot, lambda: not pilot.app.chat.busy, what="the finish")


async def window_moved_scene(pilot, engine) -> None:
    """Three exchanges, then a fourth question whose prompt leaves out the second exchange (messages 2 and 3);
    its answer runs into the context limit."""
    await staged.loaded_scene(pilot, engine)
    for question, reply in EXCHANGES:
        await staged.ask(pilot, question)
        await answer(pilot, engine, reply)
    await staged.ask(pilot, LAST_QUESTION)
    await answer(pilot, engine, LAST_ANSWER, hidden=(2, 3), context_full=True)


def out_of_view(app) -> list[str]:
    return [view.turn.text for view in app.chat.conversation.query(MessageView) if not view.in_view]


async def test_the_turns_left_out_are_marked_and_the_others_are_not(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await window_moved_scene(pilot, engine)
        assert out_of_view(app) == ["And of Italy?", "Rome."]
        views = list(app.chat.conversation.query(MessageView))
        assert all(view.has_class("-out-of-view") != view.in_view for view in views)
        assert "reached the model's context limit" in views[-1].footer
        assert app.chat.status.turns_out_of_view == 2
        await staged.ask(pilot, "Thanks!")
        await answer(pilot, engine, "You are welcome.")
        assert out_of_view(app) == [], "a window that no longer leaves turns out brings them back into view"


def test_window_moved_snapshot(snap_compare, staged_app):
    """You should see the conversation's end: "And of Italy?" and "Rome." dimmed with a dashed left border and
    "· not in the model's view" in their headers; the other turns as usual; the last answer's footer ending
    "— reached the model's context limit"; and the status pane's context meter in red, "ctx 8192/8192 100% · 2
    messages out of view"."""
    app, engine = staged_app()

    async def run_before(pilot) -> None:
        await window_moved_scene(pilot, engine)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 44), run_before=run_before)
