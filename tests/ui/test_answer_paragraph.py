"""The paragraph an answer is writing is a repaint, not a layout pass, while its rows hold (issue 11,
`AnswerParagraph`): Textual's paragraph shows each update with `Static.update`, which asks for a layout of the whole
screen. Words that land on the paragraph's last row now repaint it where it stands; a word that wraps to a new row
still lays it out, so the answer looks exactly as a fresh layout draws it."""

from __future__ import annotations

import pytest
import staged
from mlxchat.engine import TextDelta
from mlxchat.ui.widgets.code_stream import AnswerParagraph

from conftest import SIZE, until
from test_thinking_layout import LayoutPasses, laid_out_afresh, rows


def paragraph(app) -> AnswerParagraph:
    return app.chat.conversation.views()[-1].query(AnswerParagraph).last()


def shown(app) -> str | None:
    """The text of the answer's last paragraph, or None before it has one."""
    found = app.chat.conversation.views()[-1].query(AnswerParagraph)
    return found.last()._content.plain if found else None


async def write(pilot, engine, rid: str, text: str, piece: str, tokens: int = 1) -> str:
    """One more piece of the answer, waited for until the paragraph shows it; returns the answer so far."""
    text += piece
    engine.emit(TextDelta(rid, piece, tokens))
    expected = " ".join(text.split())
    await until(pilot, lambda: shown(pilot.app) == expected, what=f"{piece!r} drawn")
    return text


async def test_words_on_the_last_row_cause_no_layout_pass(staged_app, monkeypatch):
    """A one-row paragraph gets 10 short words, none of which fills the row: 10 draws, no layout pass, and the row
    reads as a fresh layout draws it. Textual's own paragraph laid out the screen at each of them (the test fails
    with `AnswerParagraph._update_from_block` set back to `MarkdownParagraph`'s)."""
    passes = LayoutPasses(monkeypatch)
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        rid = await staged.prefilled_scene(pilot, engine)
        text = await write(pilot, engine, rid, "", "Paris", tokens=20)  # the status's count stays two digits wide
        await passes.settle(pilot)
        for n in range(10):
            text = await write(pilot, engine, rid, text, f" w{n}")
            await pilot.pause()
        assert paragraph(app).size.height == 1
        assert passes.count == 0, f"{passes.count} layout passes in 10 draws that kept the row"
        assert rows(paragraph(app)) == await laid_out_afresh(pilot, paragraph(app))


@pytest.mark.parametrize(
    "piece",
    [
        pytest.param(" reason", id="words"),
        pytest.param("思考", id="cjk"),  # two cells a character
        pytest.param("xxxx", id="one-long-word"),
    ],
)
async def test_a_growing_paragraph_wraps_as_a_fresh_layout_draws_it(staged_app, piece):
    """A paragraph growing past several rows, piece by piece: after every draw it has the height and rows a fresh
    layout gives it, and the status and prompt below it stay where a fresh layout puts them."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        rid = await staged.prefilled_scene(pilot, engine)
        text = await write(pilot, engine, rid, "", "Start")
        heights = set()
        for _ in range(40):
            text = await write(pilot, engine, rid, text, piece * 2)
            await pilot.pause()
            drawn = rows(paragraph(app))
            heights.add(drawn[0])
            assert drawn == await laid_out_afresh(pilot, paragraph(app)), f"stale after {len(text)} characters"
        assert len(heights) >= 3, f"the paragraph never wrapped: heights {heights}"
