"""Lists in a streamed answer are updated in place (answer_lists.py) and look exactly as Textual's Markdown draws the
same text: at every point of the stream, not only at the end."""

from __future__ import annotations

import random

import pytest
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown

from mlxchat.ui.widgets.answer_lists import AnswerBulletList, AnswerOrderedList
from mlxchat.ui.widgets.code_stream import AnswerMarkdown

SIZE = (90, 70)

TEXTS = {
    "bullets": "Things to pack:\n\n" + "".join(f"- item {n} with **bold** and `code` words\n" for n in range(12)),
    "numbers past nine": "".join(f"{n}. step {n}, then wait for the light\n" for n in range(1, 13)) + "\nDone.\n",
    "nested": (
        "1. First\n   - a detail\n   - another detail\n2. Second\n   - more\n     - deeper still\n"
        "3. Third, long enough to wrap across the width of the screen at least once when it is drawn here\n\nAfter.\n"
    ),
    "loose with code": (
        "- One paragraph.\n\n  A second paragraph in the same item.\n\n- An item with code:\n\n"
        "      x = 1\n      y = 2\n\n- Last\n"
    ),
    "list after list": "- a\n- b\n\n* c\n* d\n\n1) e\n2) f\n\nText.\n",
    "turns into other blocks": "- a\n- b\nlazy continuation\n---\n\n- c\n\n    code after\n\n# Heading\n",
    "starts at seven": "7. seven\n8. eight\n9. nine\n10. ten\n11. eleven\n",
    "items holding other blocks": (
        "- a\n  > quoted\n  > more\n- b\n\n  | x | y |\n  |---|---|\n  | 1 | 2 |\n- c\n  # Head\n  text\n"
        "- d\n  ```python\n  x = 1\n  ```\n- e\n  ---\n- f\n  ===\n- <div>\n  x\n  </div>\n- g\n"
    ),
    "three deep, then shallower": "- a\n  - b\n    - c1\n    - c2, longer text\n  - d\n- e\n  - f\n",
    "markers and starts": "- a\n- b\n+ c\n* d\n\n0. zero\n1. one\n\n998) a\n999) b\n1000) c\n",
    "empty first lines, lazy lines": "- a\n-\n  text\n- *em\n  spanning* and **strong\nlazy** line\n- b\n\n  loose\n",
}


class MarkdownApp(App):
    def __init__(self, markdown_class: type[Markdown]) -> None:
        super().__init__()
        self.markdown_class = markdown_class

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield self.markdown_class()


async def streamed_screens(text: str, cuts: list[int], step: int = 5) -> list[str]:
    """The answer's Markdown, the text appended `step` characters at a time, drawn at each cut."""
    app = MarkdownApp(AnswerMarkdown)
    screens = []
    async with app.run_test(size=SIZE) as pilot:
        markdown = app.query_one(Markdown)
        done = 0
        for cut in cuts:
            while done < cut:
                step_end = min(cut, done + step)
                await markdown.append(text[done:step_end])
                done = step_end
            await pilot.pause()
            screens.append(app.export_screenshot())
    return screens


async def whole_screens(text: str, cuts: list[int]) -> list[str]:
    """Textual's Markdown given each prefix whole."""
    app = MarkdownApp(Markdown)
    screens = []
    async with app.run_test(size=SIZE) as pilot:
        markdown = app.query_one(Markdown)
        for cut in cuts:
            await markdown.update(text[:cut])
            await pilot.pause()
            screens.append(app.export_screenshot())
    return screens


@pytest.mark.parametrize("name", list(TEXTS))
async def test_a_streamed_list_looks_as_textual_draws_it_at_every_point(name):
    text = TEXTS[name]
    cuts = sorted({*range(9, len(text), max(9, len(text) // 12)), len(text)})
    assert await streamed_screens(text, cuts) == await whole_screens(text, cuts)


def generated_list(rng: random.Random, depth: int = 0) -> str:
    """A small tight list from a grammar: either kind of marker and start, items holding a quote, a fence, a table,
    a heading, a setext heading, a nested list (three deep at most). Tight, and no `---` in an item: Textual's own
    streaming differs from its whole document there (a loose numbered list split by an update that ends at a number,
    which `AnswerStream` holds back: tests/ui/test_code_stream.py; an `hr` in an item is mounted at the top level),
    whatever the list widgets do."""
    ordered = rng.random() < 0.5
    start, delimiter = rng.choice([0, 1, 1, 8, 99]), rng.choice(".)") if ordered else rng.choice("-*+")
    words = ["alpha", "*em*", "**bold**", "`code`", "beta gamma", "[link](u)"]
    lines = []
    for n in range(rng.randint(1, 4)):
        marker = f"{start + n}{delimiter} " if ordered else f"{delimiter} "
        pad = " " * len(marker)
        item = [marker + " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))]
        for _ in range(rng.randint(0, 2)):
            kind = rng.choice(["quote", "fence", "table", "heading", "setext", "list", "list"])
            if kind == "list" and depth < 2:
                item += [pad + line for line in generated_list(rng, depth + 1).split("\n")]
            elif kind == "quote":
                item.append(pad + "> " + rng.choice(words))
            elif kind == "fence":
                item += [pad + "```python", pad + "x = [1]", pad + "```"]
            elif kind == "table":
                item += [pad + "| a | b |", pad + "|---|---|", pad + "| 1 | 2 |"]
            elif kind == "heading":
                item.append(pad + "## " + rng.choice(words))
            elif kind == "setext":
                item += [pad + rng.choice(words), pad + "==="]
        lines += item
    return "\n".join(lines)


async def test_generated_lists_streamed_in_uneven_updates_look_as_textual_draws_them():
    """Lists from a grammar (fixed seed), appended in updates of 1 to 40 characters, compared at every update."""
    rng = random.Random(2026)
    for _ in range(6):
        text = generated_list(rng) + rng.choice(["", "\nlazy line", "\n\nAfter.", "\n- tail"]) + "\n"
        cuts, cut = [], 0
        while cut < len(text):
            cut = min(len(text), cut + rng.randint(1, 40))
            cuts.append(cut)
        assert await streamed_screens(text, cuts, step=40) == await whole_screens(text, cuts), text


async def test_a_link_definition_arriving_whole_links_the_rows_before_it():
    """`[x]: url` makes `[x]` in an earlier item a link: the one way appended text changes a row before the last.
    Typed a character at a time, the definition is first the last item's paragraph, and its vanishing already sent
    the list back to Textual's way; an update that brings the whole definition at once (a fast model) kept the
    first row's `[x]` literal, to the end of the answer."""
    for text in (
        "- see [x] here\n- more\n- [x]: https://example.com\n- end\n",
        "- see [x] here\n- more\n\n  [x]: https://example.com\n\nAfter.\n",
        "- see [x] here\n- more\n\n[x]: https://example.com\n\nAfter.\n",
    ):
        cuts = [text.index("\n- more") + 7, len(text)]
        assert await streamed_screens(text, cuts, step=len(text)) == await whole_screens(text, cuts)


async def test_text_that_only_half_looks_like_a_link_definition_keeps_the_rows():
    """`]:` in an item's code is common (`-> list[int]:`), as is `[` at an item's start (`- [x] done`); only both
    together send the list back to Textual's way (answer_lists.may_define_links)."""
    app = MarkdownApp(AnswerMarkdown)
    async with app.run_test(size=SIZE) as pilot:
        markdown = app.query_one(Markdown)
        await markdown.append("- code: `def f() -> list[int]:`\n- `d[k]: int`\n- last")
        await pilot.pause()
        (shown,) = markdown.query(AnswerBulletList)
        rows = list(shown.children)
        await markdown.append(" item\n- one more")
        await pilot.pause()
        assert markdown.query_one(AnswerBulletList) is shown
        assert list(shown.children)[: len(rows)] == rows


async def test_the_rows_before_the_last_are_kept_while_a_list_streams():
    """The point of it: an update touches the last row, not every row (Textual's way removed and mounted the whole
    list at every update: 54 ms of UI-thread CPU an update for 4 items, 302 ms for 30)."""
    app = MarkdownApp(AnswerMarkdown)
    async with app.run_test(size=SIZE) as pilot:
        markdown = app.query_one(Markdown)
        await markdown.append("".join(f"- item {n}\n" for n in range(6)) + "- last")
        await pilot.pause()
        (shown,) = markdown.query(AnswerBulletList)
        rows = list(shown.children)
        await markdown.append(" item, longer now")
        await markdown.append("\n- and one more")
        await pilot.pause()
        assert markdown.query_one(AnswerBulletList) is shown
        assert list(shown.children)[: len(rows)] == rows
        assert len(shown.children) == len(rows) + 1
        assert "last item, longer now" in shown.children[-2].children[-1].children[0].render().plain


async def test_an_ordered_list_renumbers_its_bullets_when_the_numbers_widen():
    app = MarkdownApp(AnswerMarkdown)
    async with app.run_test(size=SIZE) as pilot:
        markdown = app.query_one(Markdown)
        await markdown.append("".join(f"{n}. x\n" for n in range(1, 10)))
        await pilot.pause()
        shown = markdown.query_one(AnswerOrderedList)
        await markdown.append("10. y\n")
        await pilot.pause()
        assert markdown.query_one(AnswerOrderedList) is shown
        assert [row.children[0].symbol for row in shown.children][::9] == ["  1. ", " 10. "]
