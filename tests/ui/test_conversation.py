"""The conversation pane: follows the streaming answer until the reader scrolls up; copy message and code."""

from __future__ import annotations

from mlxchat.engine import TextDelta
import staged
from mlxchat.ui.widgets.message import code_blocks, stats_line

from conftest import SIZE, until


async def stream(pilot, engine, text: str) -> None:
    app = pilot.app
    before = len(app.chat.session.turns[-1].text)
    engine.emit(TextDelta(engine.last_request_id, text, 1))
    await until(pilot, lambda: len(app.chat.session.turns[-1].text) > before, what="the delta")
    await pilot.pause()


async def test_the_pane_follows_the_answer_until_the_reader_scrolls_up(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot)
        conversation = app.chat.conversation
        for n in range(8):
            await stream(pilot, engine, "".join(f"line {n}.{k}\n\n" for k in range(5)))
        assert conversation.max_scroll_y > 0
        assert conversation.scroll_y == conversation.max_scroll_y, "follows the bottom"
        await pilot.press("shift+pageup")
        held = conversation.scroll_y
        assert held < conversation.max_scroll_y
        for n in range(2):
            await stream(pilot, engine, f"more {n}\n\nand more\n\n")
        assert conversation.scroll_y == held, "stays where the reader put it"
        for _ in range(5):
            await pilot.press("shift+pagedown")
        assert conversation.scroll_y == conversation.max_scroll_y
        for n in range(2):
            await stream(pilot, engine, f"again {n}\n\nand again\n\n")
        assert conversation.scroll_y == conversation.max_scroll_y, "follows again once back at the bottom"


async def test_copy_the_last_answer_and_its_code_block(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.answered_scene(pilot, engine)
        await pilot.press("f6")
        assert app.clipboard == staged.ANSWER
        await pilot.press("f7")
        assert app.clipboard == 'capitals = {"France": "Paris", "Italy": "Rome"}\nprint(capitals["France"])'


async def test_copy_the_focused_message(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.answered_scene(pilot, engine)
        app.chat.conversation.views()[0].focus()
        await pilot.press("f6")
        assert app.clipboard == staged.QUESTION


def test_code_blocks_include_an_unclosed_last_fence():
    text = "a\n```py\nx = 1\n```\nb\n~~~\ny = 2\n"
    assert code_blocks(text) == ["x = 1", "y = 2"]


def test_the_stats_line_names_ttft_speed_and_tokens():
    line = stats_line(staged.stats_for("r", 61))
    assert line == "TTFT 0.31s · 48.2 tok/s · 61 tokens · prompt 42"


def test_control_characters_from_a_model_are_drawn_visibly():
    from mlxchat.ui.widgets.message import visible

    assert visible("a\x1b[2Jb\x18c\n\td\x85") == "a\u241b[2Jb\u2418c\n\td\ufffd"
