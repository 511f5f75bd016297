"""Live thinking is a repaint, not a layout pass, while its size holds (issue 11): every draw of the live block
updated its header and body with `Static.update`, which asks Textual for a layout, and Textual's layout pass
re-arranges the whole screen on the UI thread. A draw that keeps the block's size (the same rows, the same header
width) now repaints it where it stands; one that changes it (a new line, a wrapped row more) still lays it out, so
the block looks exactly as a fresh layout draws it: wrapped long lines and wide characters included."""

from __future__ import annotations

import pytest
from textual.geometry import Region
from textual.screen import Screen
from textual.widgets import Static

import staged
from mlxchat.engine import ThinkingDelta
from mlxchat.terminal_text import visible
from mlxchat.ui.widgets.thinking import LIVE_LINES, ThinkingBlock, live_tail

from conftest import SIZE, until

QWEN_INFO = staged.THINKING_INFO


def block(app) -> ThinkingBlock:
    return app.chat.conversation.views()[-1].query_one(ThinkingBlock)


def body(app) -> Static:
    return block(app).query_one(".thinking-body", Static)


class LayoutPasses:
    """Counts the screen updates with a layout pass, as `benchmarks/thinking_frames.py` does (made before the app:
    a screen binds its update timer's callback when it starts)."""

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        screen_update = Screen._on_timer_update

        def counted(screen) -> None:
            if not screen.app._batch_count and screen.is_current:
                self.count += bool(screen._layout_required or screen._scroll_required)
            return screen_update(screen)

        monkeypatch.setattr(Screen, "_on_timer_update", counted)

    async def settle(self, pilot) -> None:
        """Wait (bounded) for a tenth of a second without a layout pass, then count from zero."""
        for _ in range(100):
            before = self.count
            await pilot.pause(0.1)
            if self.count == before:
                break
        self.count = 0


async def think(pilot, engine, rid: str, thought: str, piece: str, tokens: int = 1) -> str:
    """One more piece of thinking, waited for until the block shows it; returns the thought so far."""
    thought += piece
    engine.emit(ThinkingDelta(rid, piece, tokens))
    shown = visible(live_tail(thought))
    await until(pilot, lambda: str(body(pilot.app).content) == shown, what=f"the piece {piece!r} drawn")
    return thought


async def start(pilot, engine, first: str, tokens: int) -> tuple[str, str]:
    rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO)
    return rid, await think(pilot, engine, rid, "", first, tokens)


def rows(widget: Static) -> tuple[int, list[str]]:
    """The widget's height and the text of each of its rows, as drawn where it stands."""
    width, height = widget.size
    return height, [strip.text for strip in widget.render_lines(Region(0, 0, width, height))]


async def laid_out_afresh(pilot, widget: Static) -> tuple[int, list[str]]:
    """What a layout pass makes of the widget's content now."""
    widget.refresh(layout=True)
    await pilot.pause()
    await pilot.pause()
    return rows(widget)


async def test_live_draws_at_an_unchanged_size_cause_no_layout_pass(staged_app, monkeypatch):
    """With the newest LIVE_LINES lines on screen and the token count in its hundreds, 12 more pieces (each a new
    short line, or more of the last one) are 12 draws and no layout pass; the body shows exactly the newest lines."""
    passes = LayoutPasses(monkeypatch)
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        first = "".join(f"line {n} of the thought\n" for n in range(LIVE_LINES + 1))
        rid, thought = await start(pilot, engine, first, 100)
        await passes.settle(pilot)  # the first draw's layout, and the one it asks for after
        draws = 0
        for n in range(12):
            thought = await think(pilot, engine, rid, thought, f"next {n}" if n % 2 == 0 else " more\n")
            draws += 1
            await pilot.pause()
        assert draws == 12 and passes.count == 0, f"{passes.count} layout passes in {draws} live draws"
        assert str(body(app).content) == "\n".join(thought.rstrip("\n").split("\n")[-LIVE_LINES:])
        assert rows(body(app)) == await laid_out_afresh(pilot, body(app))


@pytest.mark.parametrize(
    "letters",
    [
        pytest.param("reason ", id="words"),
        pytest.param("思考", id="cjk"),  # two cells a character
        pytest.param("xxxx", id="one-long-word"),
    ],
)
async def test_a_growing_long_line_wraps_as_a_fresh_layout_draws_it(staged_app, letters):
    """A last line growing past the body's width, piece by piece: after every draw the body has the height and the
    rows a fresh layout gives it (a wrapped row more is laid out, a draw within the rows is not stale)."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        rid, thought = await start(pilot, engine, "A short first line.\n", 5)
        heights = set()
        for _ in range(45):
            thought = await think(pilot, engine, rid, thought, letters * 3)
            await pilot.pause()
            drawn = rows(body(app))
            heights.add(drawn[0])
            assert drawn == await laid_out_afresh(pilot, body(app)), f"stale after {len(thought)} characters"
        assert len(heights) >= 3, f"the line never wrapped: heights {heights}"
