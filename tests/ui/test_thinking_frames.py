"""Live thinking is drawn at the answer's frame budget (issue 11): a thinking model at 300 tok/s sends a piece of
thinking per engine batch, and each piece was a redraw of the block (a screen update, with a layout pass) of its
own. Now the first piece draws at once, later ones share at most one draw per frame interval (`FrameBudget`, the
rule `AnswerStream` follows), and the end of thinking (ThinkingDone, a stop, the answer's first text) is drawn at
once and whole: no piece is left behind."""

from __future__ import annotations

import asyncio
import random

import pytest
from textual.widgets import Static

import staged
from mlxchat.engine import TextDelta, ThinkingDelta, ThinkingDone, Usage
from mlxchat.terminal_text import visible
from mlxchat.ui.widgets.frame_budget import FrameBudget
from mlxchat.ui.widgets.thinking import LIVE_LINES, ThinkingBlock, live_tail

from conftest import SIZE, until

QWEN_INFO = staged.THINKING_INFO

PIECES = 200
"""Pieces of thinking, in bursts of `BURST` with a short pause between: faster than the frame budget."""
BURST = 20


def piece(n: int) -> str:
    return f"step {n} weighs it" + ("\n" if n % 3 == 2 else ", ")  # a line every three pieces


def block(app) -> ThinkingBlock:
    return app.chat.conversation.views()[-1].query_one(ThinkingBlock)


def body(app) -> Static:
    return block(app).query_one(".thinking-body", Static)


def header(app) -> str:
    return str(block(app).query_one(".thinking-header").content)


async def start_thinking(pilot, engine) -> str:
    """The model starts to think: the first piece is drawn at once. Returns the request id."""
    rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO)
    engine.emit(ThinkingDelta(rid, "Let me think.\n", 4))
    await until(pilot, lambda: str(body(pilot.app).content) == "Let me think.", what="the first piece drawn")
    return rid


async def think_fast(engine, rid: str) -> str:
    """`PIECES` pieces as fast as a fast model's batches come; returns the whole thought."""
    thought = "Let me think.\n"
    for n in range(PIECES):
        engine.emit(ThinkingDelta(rid, piece(n), 3))
        thought += piece(n)
        if n % BURST == BURST - 1:
            await asyncio.sleep(0.03)
    return thought


def count_draws(app) -> list[str]:
    """Each redraw of the block's body, with what it drew."""
    drawn: list[str] = []
    shown = body(app)
    update = shown.update

    def counted(content="", *args, **kwargs):
        drawn.append(str(content))
        return update(content, *args, **kwargs)

    shown.update = counted
    return drawn


async def test_fast_thinking_shares_draws_and_its_last_lines_show_exactly(staged_app):
    """200 pieces are far fewer than 200 redraws, and once they stop, the block shows the thought's newest lines
    exactly and the tokens of every piece."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        rid = await start_thinking(pilot, engine)
        drawn = count_draws(app)
        thought = await think_fast(engine, rid)
        tail = visible(live_tail(thought))
        await until(pilot, lambda: str(body(app).content) == tail, what="the last piece drawn")
        assert len(drawn) <= PIECES // 5, f"{len(drawn)} redraws for {PIECES} pieces"
        assert str(body(app).content) == "\n".join(thought.rstrip("\n").split("\n")[-LIVE_LINES:])
        assert header(app) == f"Thinking… 0.0 s · {4 + 3 * PIECES} tokens"  # the test's clock stands still
        assert app.chat.conversation.views()[-1].turn.thinking == thought


async def test_the_thought_is_whole_when_thinking_ends_inside_a_frame(staged_app):
    """ThinkingDone right behind a burst, before its frame is due: the collapsed block holds the whole thought
    (expanded, it shows it), and no late live draw comes after it."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        rid = await start_thinking(pilot, engine)
        thought = await think_fast(engine, rid)
        engine.emit(ThinkingDone(rid, 4 + 3 * PIECES, 2.0))
        await until(pilot, lambda: header(app).startswith("▸ Thought"), what="the thinking's end")
        assert header(app) == f"▸ Thought for 2.0 s · {4 + 3 * PIECES} tokens"
        assert str(body(app).content) == visible(thought.strip("\n")) and not body(app).display
        await pilot.pause(2 * FrameBudget.max_interval_s)  # longer than any frame the budget gives
        assert header(app).startswith("▸ Thought"), "a live draw came after the end"
        block(app).toggle()
        await pilot.pause()
        assert body(app).display and str(body(app).content) == visible(thought.strip("\n"))


async def test_the_thought_is_whole_when_stopped_with_esc_inside_a_frame(staged_app):
    """Esc right behind a burst: the stopped block shows the whole thought at once, its last piece included."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        rid = await start_thinking(pilot, engine)
        thought = await think_fast(engine, rid)
        await pilot.press("escape")
        engine.finish("cancelled", usage=Usage(42, 0, 4 + 3 * PIECES, 4 + 3 * PIECES))
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        assert header(app) == f"■ Stopped while thinking · {4 + 3 * PIECES} tokens"
        assert body(app).display and str(body(app).content) == visible(thought.strip("\n"))


async def test_the_answers_first_text_draws_the_thinking_due(staged_app):
    """An answer that starts without a ThinkingDone (the engine always sends one; a server may not): the thinking
    waiting for its frame is drawn with the answer's first text, not a frame later."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        rid = await start_thinking(pilot, engine)
        drawn = count_draws(app)
        engine.emit(ThinkingDelta(rid, "One more thing.", 3))
        engine.emit(ThinkingDelta(rid, "\nAnd the last.", 3))  # inside the frame of the piece before
        engine.emit(TextDelta(rid, "MLX is", 2))
        await until(pilot, lambda: app.chat.conversation.views()[-1].turn.text == "MLX is", what="the answer")
        assert drawn and drawn[-1] == "Let me think.\nOne more thing.\nAnd the last."


@pytest.mark.parametrize("seed", range(5))
def test_the_live_tail_is_the_last_lines_of_the_thought(seed):
    """Found from the end (a draw costs the tail, not the thought), it is what splitting the whole thought gives."""
    rng = random.Random(seed)
    for _ in range(300):
        thought = "".join(rng.choice(["a", "b ", "\n", "\n\n", "c\n"]) for _ in range(rng.randrange(0, 40)))
        lines = rng.randrange(1, 9)
        assert live_tail(thought, lines) == "\n".join(thought.rstrip("\n").split("\n")[-lines:]), repr(thought)
