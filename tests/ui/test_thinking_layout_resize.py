"""Live thinking drawn without a layout pass (`steady_update`, fa13b5e) must still be laid out right when the
pane's width changes and changes back (a terminal resized and resized back, the conversation's scrollbar shown
and hidden): Textual keeps each widget's box model per container size and each container's arrangement per size,
and a layout pass at a width seen before takes them from there. A draw that kept the block's size at one width
left the measures taken at the other width from the older text: back at that width the body had the older text's
height, its last row cut off."""

from __future__ import annotations

from rich.cells import cell_len
from textual.geometry import Region
from textual.visual import visualize
from textual.widgets import Static

import staged
from mlxchat.engine import ThinkingDelta
from mlxchat.terminal_text import visible
from mlxchat.ui.widgets.thinking import ThinkingBlock, live_tail

from conftest import SIZE, until

QWEN_INFO = staged.THINKING_INFO
NARROW = (80, SIZE[1])


def body(app) -> Static:
    return app.chat.conversation.views()[-1].query_one(ThinkingBlock).query_one(".thinking-body", Static)


async def think(pilot, engine, rid: str, thought: str, piece: str) -> str:
    thought += piece
    engine.emit(ThinkingDelta(rid, piece, 1))
    shown = visible(live_tail(thought))
    await until(pilot, lambda: str(body(pilot.app).content) == shown, what=f"the piece {piece[:12]!r} drawn")
    await pilot.pause()
    return thought


def rows(widget: Static) -> tuple[int, list[str]]:
    width, height = widget.size
    return height, [strip.text for strip in widget.render_lines(Region(0, 0, width, height))]


async def resize(pilot, size: tuple[int, int]) -> None:
    await pilot.resize_terminal(*size)
    await until(pilot, lambda: pilot.app.size == size, what=f"the terminal at {size}")
    for _ in range(3):
        await pilot.pause()


async def laid_out_afresh(pilot, widget: Static) -> tuple[int, list[str]]:
    widget.refresh(layout=True)
    await pilot.pause()
    await pilot.pause()
    return rows(widget)


async def test_a_kept_size_draw_at_another_width_is_laid_out_afresh_back_at_the_first(staged_app):
    """At the wide width the body shows six lines, one of them wrapping only at the narrow width. Narrowed, the
    next piece pushes that line out and adds one that wraps at both widths: seven rows at the narrow width before
    and after, so the draw keeps the size there. Widened again, the body must have the seven rows a fresh layout
    gives (it kept the six measured for the older text)."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO)
        short = "".join(f"short line {n}\n" for n in range(5))
        thought = await think(pilot, engine, rid, "", short)
        wide = body(app).content_size.width
        await resize(pilot, NARROW)
        narrow = body(app).content_size.width
        await resize(pilot, SIZE)
        assert narrow < wide - 4, (narrow, wide)
        # Six lines: one that wraps at the narrow width only, then the five short ones.
        thought = await think(pilot, engine, rid, "", "x" * (narrow + 2) + "\n" + short.rstrip("\n"))
        assert rows(body(app))[0] == 6
        await resize(pilot, NARROW)
        assert rows(body(app))[0] == 7
        # The long line drops out of the newest six; one wrapping at both widths comes in: 7 rows at the narrow
        # width still (a repaint), 7 at the wide width too.
        thought = await think(pilot, engine, rid, thought, "\n" + "y" * (wide + 2))
        assert rows(body(app))[0] == 7  # (no fresh layout here: it would clear the measures this test is about)
        await resize(pilot, SIZE)
        drawn = rows(body(app))
        assert drawn == await laid_out_afresh(pilot, body(app)), "stale rows back at the wide width"


def fresh_height(widget: Static) -> int:
    """The height Textual gives the widget's text at its laid-out width, measured from a new visual (no cache)."""
    return visualize(widget, widget.content, markup=False).get_height(widget.styles, widget.content_size.width)


PIECES = [
    "思考して", "いる。\n", "emoji 👍🏽 and 🧑‍🔬 ", "e\u0301 combining a\u0308\n", "\ttabbed\tline\t\n", "trailing   \n",
    "\n", "\n\n", "word " * 17, "\n", "思" * 30, "x" * 200 + "\n", "short\n", "", "more words " * 9, "\n",
]


async def test_tricky_text_and_widths_keep_the_laid_out_height(staged_app):
    """Pieces of wide, combining, tab and emoji text, blank lines and lines of exactly the body's width, drawn
    while the terminal changes width by a cell or two (a scrollbar shown or hidden) and by more, and its height:
    after every draw the header and body have the size a fresh measure of their text gives."""
    app, engine = staged_app()
    sizes = [SIZE, (98, SIZE[1]), (99, SIZE[1]), NARROW, (100, 20), SIZE, (61, 40)]
    async with app.run_test(size=SIZE) as pilot:
        rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO)
        thought = await think(pilot, engine, rid, "", "First line.\n")
        header = app.chat.conversation.views()[-1].query_one(ThinkingBlock).query_one(".thinking-header")
        for round_ in range(3):
            for n, piece in enumerate(PIECES):
                if n % 5 == 4:
                    await resize(pilot, sizes[(round_ * 3 + n) % len(sizes)])
                if n == 7:  # a line of exactly the body's width
                    piece = "\n" + "w" * body(app).content_size.width + "\n"
                if not piece:
                    continue
                thought = await think(pilot, engine, rid, thought, piece)
                await pilot.pause()
                where = f"round {round_}, piece {n} at {app.size}"
                assert body(app).size.height == fresh_height(body(app)), where
                room = header.parent.content_size.width
                assert header.size.width == min(cell_len(str(header.content)), room), where
                assert header.size.height == fresh_height(header), where


async def test_thinking_that_grew_out_of_sight_is_laid_out_afresh_when_the_reader_comes_back(staged_app, tmp_path):
    """The reader leaves for a new chat while the answer thinks (its view streams on, hidden); the thinking grows
    by wrapped and short lines out of sight; back in the answering conversation the block has the size a fresh
    measure of its text gives (a draw while hidden has no size to keep: it is laid out, so no older measure is
    left to be reused when it shows again)."""
    from mlxchat.store import History
    from mlxchat.ui.screens.conversations import ConversationsScreen

    history = History(tmp_path / "data")
    app, engine = staged_app(history=history)
    try:
        async with app.run_test(size=SIZE) as pilot:
            rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO, "France trivia")
            answering = app.chat.session
            thought = await think(pilot, engine, rid, "", "".join(f"line {n}\n" for n in range(6)))
            block_body = body(app)
            await pilot.press("ctrl+n")
            await until(pilot, lambda: app.chat.session is not answering, what="the new chat")
            for piece in ("z" * 150, " more\n", "short\n", "w" * 40):
                thought += piece
                engine.emit(ThinkingDelta(rid, piece, 1))
                shown = visible(live_tail(thought))
                await until(pilot, lambda: str(block_body.content) == shown, what="the piece out of sight")
            await pilot.press("f2")
            await until(pilot, lambda: isinstance(app.screen, ConversationsScreen), what="the list")
            await pilot.press("enter")
            await until(pilot, lambda: app.chat.session is answering, what="the switch back")
            for _ in range(3):
                await pilot.pause()
            assert body(app) is block_body
            assert block_body.size.height == fresh_height(block_body) > 6
            assert rows(block_body) == await laid_out_afresh(pilot, block_body)
    finally:
        history.close()


async def test_the_live_clocks_header_widens_from_9_9_to_10_0_seconds(staged_app):
    """The live block's own clock (animation on) redraws the header without new thinking; at 10.0 s it is a cell
    wider, and the header is laid out to its full text, not cut at the width "9.9 s" had."""
    app, engine = staged_app(animate=True)
    async with app.run_test(size=SIZE) as pilot:
        rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO)
        await think(pilot, engine, rid, "", "A thought.\n")
        header = app.chat.conversation.views()[-1].query_one(ThinkingBlock).query_one(".thinking-header")
        start = app.test_clock[0]
        for elapsed in (9.9, 10.0, 99.9, 100.0):
            app.test_clock[0] = start + elapsed + 0.01
            text = f"{elapsed:.1f} s"
            await until(pilot, lambda: text in str(header.content), what=f"the header at {text}")
            await until(pilot, lambda: header.size.width == cell_len(str(header.content)), what="the header laid out")
            strip = header.render_lines(Region(0, 0, header.size.width, 1))[0]
            assert strip.text == str(header.content)


async def test_a_theme_change_while_thinking_streams_keeps_the_laid_out_height(staged_app):
    """Themes switched while thinking streams (each a restyle of the screen) leave the body with the height a
    fresh measure of its text gives after every later draw."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO)
        thought = await think(pilot, engine, rid, "", "".join(f"line {n}\n" for n in range(6)))
        themes = [name for name in app.available_themes if name != app.theme][:3]
        for theme in themes:
            app.theme = theme
            for piece in ("v" * 120, "\nshort", " and more words " * 8 + "\n"):
                thought = await think(pilot, engine, rid, thought, piece)
                await pilot.pause()
                assert body(app).size.height == fresh_height(body(app)), (theme, piece[:10])
