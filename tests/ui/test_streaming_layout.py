"""While an answer streams below the fold, its view grows in steps, so most updates leave the conversation's height
(and the anchored scroll position) alone and repaint only what changed; finished, it takes its own height."""

from __future__ import annotations

from collections import Counter

from textual.widgets import Markdown

import staged
from mlxchat.engine import TextDelta, ThinkingDelta, ThinkingDone
from mlxchat.ui.widgets.code_stream import CodeStream
from mlxchat.ui.widgets.message import MessageView

from conftest import SIZE, until


async def stream(pilot, engine, text: str) -> None:
    app = pilot.app
    before = len(app.chat.session.turns[-1].text)
    engine.emit(TextDelta(engine.last_request_id, text, 1))
    await until(pilot, lambda: len(app.chat.session.turns[-1].text) > before, what="the delta")
    view = app.chat.conversation.answer
    await until(pilot, lambda: view._stream is not None and view._stream.shown_chars >= len(view.turn.text), what="the update")
    await pilot.pause()


def room_below_text(view: MessageView) -> int:
    """Lines between the answer's last drawn text and the bottom of its view's content."""
    return view.content_region.bottom - view.query_one(Markdown).region.bottom - view.query_one(".message-footer").outer_size.height


async def test_an_answer_below_the_fold_grows_in_steps_and_takes_its_own_height_when_finished(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot)
        conversation = app.chat.conversation
        step = MessageView.reserve_lines
        rooms, scrolls = [], set()
        for n in range(24):
            await stream(pilot, engine, f"paragraph {n}\n\n")
            view = conversation.answer
            if conversation.max_scroll_y > 0:
                rooms.append(room_below_text(view))
                assert view.content_size.height % step == 0, "the view grows a step at a time"
                scrolls.add(conversation.scroll_y)
        assert rooms and all(0 <= room < step for room in rooms)
        assert any(room > 0 for room in rooms), "updates filled reserved room"
        assert len(scrolls) < len(rooms), "updates inside the room did not scroll the conversation"
        assert conversation.scroll_y == conversation.max_scroll_y, "still following the answer"
        staged.play_answer_end(engine, app.chat.session.turns[-1].text, 24)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        await pilot.pause()
        view = conversation.views()[-1]
        assert room_below_text(view) == 0, "the finished answer has no reserved room"
        assert conversation.scroll_y == conversation.max_scroll_y


async def test_an_answer_that_fits_the_window_is_not_padded(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot)
        conversation = app.chat.conversation
        for n in range(3):
            await stream(pilot, engine, f"paragraph {n}\n\n")
            assert conversation.max_scroll_y == 0
            assert room_below_text(conversation.answer) == 0


async def test_a_long_open_code_fence_reserves_its_room_once(staged_app):
    """The code view grows in steps itself: the answer's view adds no room of its own below it."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot)
        conversation = app.chat.conversation
        for n in range(16):
            await stream(pilot, engine, f"paragraph {n}\n\n")
        assert conversation.max_scroll_y > 0
        await stream(pilot, engine, "```python\n")
        view = conversation.answer
        code = view.query_one(CodeStream)
        for n in range(30):
            await stream(pilot, engine, f"x{n} = {n}\n")
            if code.in_steps:
                assert 0 <= code.size.height - code.line_count < CodeStream.reserve_lines
                assert view.content_region.bottom == code.region.bottom + code.styles.margin.bottom
        assert code.in_steps


async def test_a_layout_pass_that_grows_the_answer_asks_for_no_second_one(staged_app, monkeypatch):
    """Textual's layout pass gives each widget it resized its virtual size through a reactive that asks for a layout
    pass, so every pass that grew an answer asked for a second, which moved nothing: half the passes while a code
    block streamed (`laid_out_virtual_size`). Here the answer's widgets ask for no layout during a pass as its
    paragraphs, list and open fence grow past several steps; the conversation asks once, when its scrollbar appears."""
    from textual.screen import Screen
    from textual.widget import Widget

    in_pass = [False]
    asked_in_pass: Counter[str] = Counter()
    real_pass, real_refresh = Screen._refresh_layout, Widget.refresh

    def watched_pass(screen, size=None, scroll=False):
        in_pass[0] = True
        try:
            real_pass(screen, size, scroll)
        finally:
            in_pass[0] = False

    def watched_refresh(widget, *regions, layout=False, **options):
        if layout and in_pass[0]:
            asked_in_pass[type(widget).__name__] += 1
        return real_refresh(widget, *regions, layout=layout, **options)

    monkeypatch.setattr(Screen, "_refresh_layout", watched_pass)
    monkeypatch.setattr(Widget, "refresh", watched_refresh)
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine, staged.THINKING_INFO)
        await staged.ask(pilot)
        rid = engine.last_request_id
        for n in range(4):  # live thinking first: its block grows as it streams
            engine.emit(ThinkingDelta(rid, f"Step {n} of the thought, weighed with care.\n", 8))
            await until(pilot, lambda: f"Step {n}" in app.chat.session.turns[-1].thinking, what="the thinking")
            await pilot.pause()
        engine.emit(ThinkingDone(rid, 32, 1.0))
        for n in range(4):
            await stream(pilot, engine, f"Paragraph {n} has a few words.\n\n")
        for n in range(3):
            await stream(pilot, engine, f"- item {n}\n")
        for n in range(3):
            await stream(pilot, engine, f"\n{n + 1}. step {n}\n" if n == 0 else f"{n + 1}. step {n}\n")
        await stream(pilot, engine, "\n| name | value |\n|---|---|\n")
        for n in range(3):
            await stream(pilot, engine, f"| row {n} | {n * 7} |\n")
        await stream(pilot, engine, "\n```python\n")
        for n in range(4 * CodeStream.reserve_lines):
            await stream(pilot, engine, f"value_{n} = {n} * 2\n")
        code = app.chat.conversation.answer.query_one(CodeStream)
        assert code.line_count == 4 * CodeStream.reserve_lines and code.in_steps
        shown = {type(widget).__name__ for widget in app.chat.conversation.answer.walk_children()}
    answer = {"MessageView", "CodeStream", "AnswerMarkdown", "AnswerParagraph", "AnswerBulletList", "AnswerOrderedList"}
    answer |= {"AnswerTableContent", "ThinkingBlock"}
    assert answer - {"MessageView"} <= shown, f"not streamed: {sorted(answer - {'MessageView'} - shown)}"
    assert not {name: asked_in_pass[name] for name in answer if asked_in_pass[name]}
    assert asked_in_pass["ConversationView"] <= 1, asked_in_pass


def test_the_virtual_size_the_answer_widgets_declare_is_textuals_without_its_layout_request():
    """`laid_out_virtual_size` copies Textual's `Widget.virtual_size` but for its layout and repaint requests. A
    Textual upgrade that changes that reactive (another flag, a watcher) must be looked at again: this says so."""
    from textual.widget import Widget

    from mlxchat.ui.widgets.conversation import ConversationView
    from mlxchat.ui.widgets.message import MessageView
    from mlxchat.ui.widgets.steady_update import laid_out_virtual_size
    from mlxchat.ui.widgets.thinking import ThinkingBlock

    textual_own, ours = Widget.__dict__["virtual_size"], laid_out_virtual_size()
    assert (textual_own._layout, textual_own._repaint, ours._layout, ours._repaint) == (True, True, False, False)
    assert (textual_own._default, textual_own._init, textual_own._always_update, textual_own._recompose) == (
        ours._default, ours._init, ours._always_update, ours._recompose
    )
    for cls in (ConversationView, MessageView, CodeStream, ThinkingBlock):
        assert cls.__dict__["virtual_size"]._layout is False
        assert not any(
            name in vars(base) for base in cls.__mro__ for name in ("watch_virtual_size", "_watch_virtual_size")
        ), f"{cls.__name__}: a virtual_size watcher appeared"
