"""A review of two streaming changes: answer paragraphs repainted while their rows stay (`AnswerParagraph`,
`steady_update` for layout-given widths) and the hold-back of a last line that is only a number
(`FenceTracker.safe_end`). Streamed screens are compared with Textual's Markdown given the same text whole."""

from __future__ import annotations

import re

import pytest
from textual.widgets import Markdown

import staged
from mlxchat.engine import TextDelta
from mlxchat.ui.widgets.code_stream import AnswerMarkdown, AnswerParagraph, AnswerStream, CodeStream

from conftest import SIZE as APP_SIZE
from conftest import until
from test_code_stream import AnswerApp

SIZE = (40, 20)


def same(screen: str) -> str:
    """A screenshot without its content-hashed ids."""
    return re.sub(r"terminal-\d+", "T", screen)


async def whole(text: str, size: tuple[int, int] = SIZE) -> str:
    app = AnswerApp(text)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        return same(app.export_screenshot())


async def streamed(
    texts: list[str], cuts: list[int], size: tuple[int, int] = SIZE, markdown_class: type[Markdown] = AnswerMarkdown
) -> list[tuple[int, str]]:
    """Each of `texts` written through an `AnswerStream` of its own into one `AnswerMarkdown` (one stream for an
    answer, a second for its continue: `MessageView.end_stream` then `sync`), drawn at each cut of the joined text
    and once more when the last stream has stopped. Returns (characters shown, screen) for each."""
    text = "".join(texts)
    app = AnswerApp(markdown_class=markdown_class)
    screens = []
    async with app.run_test(size=size) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        start = 0
        for part in texts:
            stream, done, end = AnswerStream(markdown, code, frame_interval_s=0), start, start + len(part)
            for cut in [c for c in cuts if start < c <= end]:
                await stream.write(text[done:cut])
                done = cut
                await until(pilot, lambda: stream.shown_chars >= cut - start - 3, timeout_s=5, what="the update")
                await pilot.pause()
                screens.append((start + stream.shown_chars, same(app.export_screenshot())))
            if done < end:
                await stream.write(text[done:end])
            await stream.stop()
            start = end
        await pilot.pause()
        screens.append((len(text), same(app.export_screenshot())))
    return screens


async def assert_streams_as_whole(
    texts: list[str], cuts: list[int], size: tuple[int, int] = SIZE, markdown_class: type[Markdown] = AnswerMarkdown
) -> None:
    text, drawn = "".join(texts), {}
    for shown, screen in await streamed(texts, cuts, size, markdown_class):
        if shown not in drawn:
            drawn[shown] = await whole(text[:shown], size)
        assert screen == drawn[shown], f"at {shown} characters"


# ---- AnswerParagraph: the block changes kind, shrinks, sits in a list or a quote ---------------------------------


@pytest.mark.parametrize(
    "text, marks",
    [
        pytest.param("Some words here\n===\n\nafter", ["\n=", "===", "\n\na"], id="setext-h1"),
        pytest.param("Some words here\n---\n\nafter", ["\n-", "---", "\n\na"], id="setext-h2"),
        pytest.param("| a | b |\n|---|---|\n| 1 | 2 |\n", ["\n|-", "---|\n", "| 1"], id="table"),
        # 36 columns (40 less the scroll's gutter): `…gg **hh` takes two rows, `…gg **hh**` (plain `hh`) one
        pytest.param("aaaa bbbb cccc dddd eeee ffff gg **hh**", ["**hh", "**hh**"], id="shrinks-a-row"),
        pytest.param("- one two three four five six seven eight nine ten\n- **b", ["nine", "ten", "**b"], id="list"),
        pytest.param("> quote words that go on to wrap a few rows of the quote\n> more", ["wrap", "rows", "mo"],
                     id="quote"),
    ],
)
async def test_a_paragraph_that_changes_kind_or_size_is_drawn_as_textual_draws_it(text, marks):
    cuts = [text.index(mark) + len(mark) for mark in marks]
    await assert_streams_as_whole([text], cuts)


async def test_a_paragraph_growing_below_the_fold_keeps_the_conversation_following_it(staged_app):
    """Words added to a paragraph past the window's bottom: repaints while the rows hold, a layout when one is
    added; the conversation stays scrolled to its end and the paragraph's last row stays on the screen."""
    app, engine = staged_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        rid = await staged.prefilled_scene(pilot, engine)
        conversation = app.chat.conversation
        text = "".join(f"paragraph {n}\n\n" for n in range(20)) + "Growing"
        engine.emit(TextDelta(rid, text, 20))
        for n in range(60):
            engine.emit(TextDelta(rid, f" word{n}", 1))
            text += f" word{n}"
            await until(pilot, lambda: (p := conversation.answer.query(AnswerParagraph)) and
                        p.last()._content.plain == text.rsplit("\n\n", 1)[1], what="the word")
            await pilot.pause()
            last = conversation.answer.query(AnswerParagraph).last()
            assert conversation.scroll_y == conversation.max_scroll_y, f"not following after word{n}"
            assert last.region.bottom <= conversation.region.bottom, f"the last row is below the window at word{n}"
            assert last.region.height == last.size.height, "the paragraph is drawn whole"
        assert conversation.max_scroll_y > 0, "the answer is below the fold"
        assert conversation.answer.query(AnswerParagraph).last().size.height >= 3


# ---- the number's hold-back -----------------------------------------------------------------------------------


async def test_an_answer_ending_in_a_number_shows_it_when_it_finishes(staged_app):
    """`42` is held back while the answer streams (it may become `42. `) and is drawn when the answer ends."""
    app, engine = staged_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        rid = await staged.prefilled_scene(pilot, engine)
        engine.emit(TextDelta(rid, "The answer is:\n\n42", 5))
        view = app.chat.conversation.answer
        await until(pilot, lambda: view._stream is not None and view._stream.shown_chars >= len("The answer is:\n\n"))
        await pilot.pause()
        assert view.query_one(Markdown).source == "The answer is:\n\n"
        staged.play_answer_end(engine, "The answer is:\n\n42", 5)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        await pilot.pause()
        markdown = app.chat.conversation.views()[-1].query_one(Markdown)
        assert markdown.source == "The answer is:\n\n42"
        assert markdown.query(AnswerParagraph).last()._content.plain == "42"


async def test_numbers_in_an_open_fence_are_all_drawn_and_handed_over():
    """Digit-only lines inside an open fence are the code view's (nothing held back there), and the block reaches
    the Markdown whole; a number right after the closing fence is held until its line says more."""
    text = "Numbers:\n\n```\n1\n22\n333\n```\n\n4"
    cuts = [text.index("22") + 1, text.index("333") + 3, len(text)]
    screens = await streamed([text], cuts)
    assert screens[0][0] == cuts[0] and screens[1][0] == cuts[1], "the open fence's lines are all shown"
    assert screens[2][0] < len(text) - 1, "the number after the fence waits, and so does the fence's hand-over"
    assert screens[-1][1] == await whole(text)


async def test_a_continue_after_a_stop_at_a_number_keeps_a_loose_list_one_list():
    """The hold-back ends with its stream: a stopped answer draws its `\\n\\n2` (its last update is final, as it
    must be), and the continue is a new `AnswerStream` on the same Markdown (`MessageView.end_stream`, then `sync`).
    `Markdown.append` re-parsed from the `2` paragraph, the last block, never from the list: `2. **Second**` and
    every item after it was a list of its own, a blank row between, to the end of the answer, the split the
    hold-back was made to prevent. Now the continue's first hand-over draws the whole text once."""
    text = "1. **First**\n\n   text\n\n2. **Second**\n\n   more\n\n3. **Third**\n"
    cut = text.index("\n\n2") + 3
    await assert_streams_as_whole([text[:cut], text[cut:]], [len(text)])


async def test_a_closed_fence_waits_for_a_next_block_the_markdown_is_given():
    """`_block_ready` hands a closed fence to the Markdown once the next block has begun, so that the fence is not
    the Markdown's last block (which `Markdown.append` parses, makes and redraws again at every update). It looks
    for that block in all the text written, `text[closing[1]:]`, but the Markdown gets it only up to `safe_end()`:
    a next block that is only a number so far (`4`, held back) lets the fence go over as the last block."""
    app = AnswerApp(markdown_class=AnswerMarkdown)
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        await stream.write("Intro.\n\n```python\nx = 1\n")
        await until(pilot, lambda: code.display and code.line_count == 1, timeout_s=5, what="the code view")
        await stream.write("```\n\n4")
        for _ in range(40):  # the block's highlight is made on a worker thread, then an update may hand it over
            await pilot.pause(0.01)
        assert markdown.source == "Intro.\n\n", "the fence waits until the Markdown gets the block after it"
        await stream.stop()


async def test_a_continue_in_the_app_after_a_stop_at_a_number_keeps_a_loose_list_one_list(staged_app):
    """The same through the app: the answer is stopped (`cancelled`) at `\\n\\n2`, continued with ctrl+r; the
    answer's Markdown should hold one numbered list, as the whole text parses."""
    text = "1. **First**\n\n   text\n\n2. **Second**\n\n   more\n\n3. **Third**\n"
    cut = text.index("\n\n2") + 3
    app, engine = staged_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "Steps?")
        staged.play_answer_start(engine, text[:cut], 5)
        staged.play_answer_end(engine, text[:cut], 5, "cancelled")
        await until(pilot, lambda: not app.chat.busy, what="the stop")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.chat.busy, what="the continue")
        staged.play_answer_start(engine, text[cut:], 5)
        staged.play_answer_end(engine, text[cut:], 5)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        await pilot.pause()
        assert app.chat.session.turns[-1].text == text
        markdown = app.chat.conversation.views()[-1].query_one(Markdown)
        assert markdown.source == text
        lists = [block for block in markdown.children if type(block).__name__ == "AnswerOrderedList"]
        assert len(lists) == 1, f"{len(lists)} numbered lists where the text has one"


# ---- AnswerTable: the last row updated in place -------------------------------------------------------------------

TABLE = (
    "Intro.\n\n| query | structure | cost |\n|---|---|---|\n| by identifier | `dict[str, Item]` | O(1) |\n"
    "| by tag | `dict[str, set[str]]` | O(1) + **O(k)** |\n| by price | sorted *list* | O(log n) |\n\nAfter the table.\n"
)


async def test_a_streaming_table_is_drawn_as_textual_draws_it_at_every_cut():
    """Cuts inside cells (the last row grows in place), between cells (a new cell: Textual's way), at a row's end
    and inside inline styles; each screen equals Textual's Markdown given the same text whole."""
    cuts = [TABLE.index(mark) + len(mark) for mark in
            ["| by", "| by ident", "`dict[", "Item]` |", " O(", "O(1) |\n", "| by tag |", "**O", "**O(k)**",
             "| by price | so", "*list", "*list* |", "O(log", "n) |\n", "\n\nAf"]]
    await assert_streams_as_whole([TABLE], cuts)


async def test_a_streaming_table_row_mounts_no_widget_while_it_only_grows(monkeypatch):
    """Textual's table removed and mounted its last row's cells at every update; in place, a row that keeps its
    cells mounts nothing new."""
    from textual.widgets._markdown import MarkdownTableContent

    text = "| a | b |\n|---|---|\n| one two | three four five |\n"
    app = AnswerApp(markdown_class=AnswerMarkdown)
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        first = text.index("three") + 2
        await stream.write(text[:first])
        await until(pilot, lambda: stream.shown_chars >= first - 3, timeout_s=5, what="the first update")
        await pilot.pause()
        cells = list(app.query_one(MarkdownTableContent).query_children(".cell"))
        for cut in range(first + 1, len(text) - 2):
            await stream.write(text[cut - 1:cut])
            await until(pilot, lambda: stream.shown_chars >= cut - 3, timeout_s=5, what="the update")
            await pilot.pause()
        assert list(app.query_one(MarkdownTableContent).query_children(".cell")) == cells
        await stream.write(text[len(text) - 2:])
        await stream.stop()
        await pilot.pause()
        assert same(app.export_screenshot()) == await whole(text)
