"""A review of `AnswerTable` (a streaming table's last row updated in place): streamed tables are compared with
Textual's Markdown given the same text whole, at many cuts, and with Textual's own table streamed the same way
(`TextualTables`, as benchmarks/table_stream.py --textual-table builds it) where they differ."""

from __future__ import annotations

import pytest
from textual.widgets import Markdown
from textual.widgets._markdown import MarkdownTable, MarkdownTableContent

from mlxchat.ui.widgets.code_stream import AnswerMarkdown, AnswerStream, AnswerTable, CodeStream

from conftest import until
from test_code_stream import AnswerApp
from test_stream_review import assert_streams_as_whole, same, whole

TextualTables = type("TextualTables", (AnswerMarkdown,), {"BLOCKS": {**AnswerMarkdown.BLOCKS, "table_open": MarkdownTable}})

H = "| a | b |\n|---|---|\n"


# ---- what held up: every third cut of tables in the shapes the brief lists ----------------------------

CASES = [
    pytest.param(["- item\n\n  | a | b |\n  |---|---|\n  | 1 | 2 |\n  | three *four* | five |\n- next\n"], (40, 20),
                 id="in-a-list-item"),
    pytest.param(["> | a | b |\n> |---|---|\n> | 1 | 2 |\n> | x **y** | z |\n\nafter\n"], (40, 20), id="in-a-quote"),
    pytest.param([H + "| 1 | 2 |\n\n| c | d |\n|:---:|---:|\n| 3 | 4 |\n| five | six |\n"], (40, 20), id="two-tables"),
    pytest.param([H + "| 1 | 2 |\nplain text\n\nAfter\n"], (40, 20), id="text-right-after"),
    pytest.param([H + "| 1 | 2 |\n# Heading\n"], (40, 20), id="heading-right-after"),
    pytest.param(["| name | what |\n|---|---|\n| [link](http://x.y/z) | `co | de` and *emph* |\n| **bold** | ~~st~~ |\n"],
                 (40, 20), id="links-code-emphasis"),
    pytest.param([H + "| x \\| y | z \\| w |\n| 1 | 2 |\n"], (40, 20), id="escaped-pipes"),
    pytest.param([H + "| one tw", "o | three |\n| four | five |\n"], (40, 20), id="stop-and-continue-mid-row"),
    pytest.param(["| column one | column two | three |\n|---|---|---|\n| a long cell that wraps | another long one here | x |\n"
                  "| short | *s* | y |\n"], (30, 20), id="narrow-wrapping"),
    pytest.param([H + "| aaaa bbbb cccc **dddd** | x |\n| *abc* | &amp; |\n"], (30, 20), id="cells-shrink"),
    pytest.param(["| a | b |\n|---|-", "--|\n| 1 | 2 | extra | cells |\n|\n| x |\n"], (30, 20),
                 id="header-only-then-rows-extra-and-missing-cells"),
]


@pytest.mark.parametrize("texts, size", CASES)
async def test_a_streamed_table_is_drawn_as_textual_draws_it_whole(texts, size):
    text = "".join(texts)
    await assert_streams_as_whole(texts, list(range(1, len(text) + 1, 3)), size)


async def test_the_rows_bookkeeping_holds_through_in_place_updates_and_new_rows():
    """After each update (in place, or Textual's way for a new row): the table's rows are the parsed rows, the
    content's `last_row` is their number, each row's cells carry its class, and the last row's cells show and tip
    its text."""
    text = H + "| one two three | four |\n| five six | seven eight nine |\n| ten | eleven |\n"
    app = AnswerApp(markdown_class=AnswerMarkdown)
    async with app.run_test(size=(40, 20)) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        await stream.write(text[: len(H) + 2])
        for cut in range(len(H) + 3, len(text) + 1):
            await stream.write(text[cut - 1 : cut])
            await until(pilot, lambda: stream.shown_chars >= cut - 3, timeout_s=5, what="the update")
            await pilot.pause()
            tables = list(markdown.query(AnswerTable))
            if not tables:
                continue
            (table,) = tables
            content = table.query_one(MarkdownTableContent)
            rows = table._rows
            assert rows, f"at {cut}"
            assert content.last_row == len(rows), f"at {cut}"
            for n, row in enumerate(rows, 1):
                cells = list(content.query_children(f".cell.row{n}"))
                assert [str(cell.content) for cell in cells] == [c.plain for c in row], f"row {n} at {cut}"
            assert len(content.query_children(".cell")) == 2 * len(rows), f"at {cut}"
            for cell, expected in zip(content.query_children(f".cell.row{len(rows)}"), rows[-1]):
                assert str(cell.tooltip) == expected.plain, f"tooltip at {cut}"
        await stream.stop()
        await pilot.pause()
        assert same(app.export_screenshot()) == await whole(text)


# ---- a difference, Textual's as much as this change's --------------------------------------------------------------

TEXTUAL_DROPS_A_ROW = pytest.mark.xfail(
    strict=True,
    raises=UnboundLocalError,
    reason="Textual's own table (8.2.8): a line that is a row at first (`<`) and a block that ends the table later "
    "(`<div>`) leaves the table a row fewer, and `MarkdownTableContent._update_rows([])` removes the old last row's "
    "cells and raises UnboundLocalError (`row_index`); the update stops there and `<div>` is never drawn. "
    "AnswerTable builds such a table anew.",
)


@pytest.mark.parametrize(
    "markdown_class",
    [AnswerMarkdown, pytest.param(TextualTables, marks=TEXTUAL_DROPS_A_ROW)],
    ids=["AnswerTable", "textual-table"],
)
async def test_a_row_that_turns_into_a_block_after_the_table_is_dropped(markdown_class):
    text = H + "| 1 | 2 |\n<div>\nx\n</div>\n"
    app = AnswerApp(markdown_class=markdown_class)
    async with app.run_test(size=(40, 20)) as pilot:
        markdown = app.query_one(Markdown)
        cut = text.index("<") + 1
        for part in (text[:cut], text[cut:]):
            await markdown.append(part)
            await pilot.pause()
        assert same(app.export_screenshot()) == await whole(text)


# ---- links in streamed rows ---------------------------------------------------------------------------------------

TEXTUAL_MOUNTS_STATICS = pytest.mark.xfail(
    strict=True,
    reason="Textual's own table (8.2.8): `MarkdownTableContent._update_rows` mounts streamed rows (and the row before "
    "them, again) as plain `Static`s, which have no `action_link`, so their links do nothing when clicked.",
)


class LinkApp(AnswerApp):
    """Records the links a click would open."""

    def __init__(self, markdown_class: type[Markdown]) -> None:
        super().__init__(markdown_class=markdown_class)
        self.opened: list[str] = []

    def open_url(self, url: str, *, new_tab: bool = True) -> None:
        self.opened.append(url)


@pytest.mark.parametrize(
    "markdown_class",
    [AnswerMarkdown, pytest.param(TextualTables, marks=TEXTUAL_MOUNTS_STATICS)],
    ids=["AnswerTable", "textual-table"],
)
async def test_links_in_a_streamed_table_open_when_clicked(markdown_class):
    """Every row streamed in after the table began, a cell at a time: the link in each row opens when clicked, as in
    a table shown whole (an answer read back from the history)."""
    hrefs = [f"http://row{n}.example" for n in range(1, 4)]
    text = H + "".join(f"| [row {n}]({href}) | {n} |\n" for n, href in enumerate(hrefs, 1))
    app = LinkApp(markdown_class)
    async with app.run_test(size=(60, 20)) as pilot:
        markdown = app.query_one(Markdown)
        for cut in range(len(H) + 3, len(text) + 7, 7):
            await markdown.append(text[len(markdown.source) : cut])
            await pilot.pause()
        links = [cell for cell in markdown.query(".cell") if str(cell.content).startswith("row ")]
        assert [str(cell.content) for cell in links] == ["row 1", "row 2", "row 3"]
        for cell in links:
            await pilot.click(cell, offset=(1, 0))
            await pilot.pause()
        assert app.opened == hrefs
