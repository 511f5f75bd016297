"""While a model thinks, the status pane's spinner and token count go out in the thinking block's draws (issue 11),
as they go out in the answer's: the pane's own 10 Hz timer was a screen update of its own between two draws of the
block, about 9 a second at 300 tok/s. The pane still tells the truth at each turn of the answer: the whole token
count when the thinking ends, "generating" with the answer's first text, and "draining" then "stopped" after Esc.

The real app on the staged engine (its API and real event types, no MLX: the thinking arrives exactly as scripted),
with animation on and the real clock, since the timers are what is tested.
"""

from __future__ import annotations

import asyncio
import time

import staged
from mlxchat.engine import TextDelta, ThinkingDelta, ThinkingDone
from mlxchat.ui.app import make_app
from mlxchat.ui.widgets.thinking import ThinkingBlock

from conftest import SIZE, until

QWEN_INFO = staged.THINKING_INFO

BATCH_S = 0.03
"""The engine's event batching: a piece of thinking every 30 ms."""
PIECE = "so the cache keeps the prefix and the template adds\n"
PIECE_TOKENS = 10
"""Ten tokens a batch: 330 tok/s, a fast model on a big GPU."""


def animated_app():
    """The app with animation on (the spinner's timer, the block's clock) and the real clock."""
    holder: dict[str, staged.StagedEngine] = {}

    def factory(sink):
        holder["engine"] = staged.StagedEngine(sink)
        return holder["engine"]

    app = make_app(engine_factory=factory, animate=True)
    return app, holder


def phase(app) -> str:
    return str(app.query_one("#status-phase").content)


def detail(app) -> str:
    return str(app.query_one("#status-detail").content)


def in_status(widget) -> bool:
    return any(node.id == "status" for node in (widget, *widget.ancestors))


class Frames:
    """What each screen update drew (the widgets dirty in it), and the status pane's text at that moment."""

    def __init__(self, app) -> None:
        self.drawn: list[set] = []
        self.status: list[tuple[str, str]] = []
        self.block_header: list[str] = []
        display = app._display

        def recording(screen, update) -> None:
            self.drawn.append(set(screen._dirty_widgets))
            self.status.append((phase(app), detail(app)))
            block = app.chat.conversation.views()[-1].query(ThinkingBlock)
            self.block_header.append(str(block.first().query_one(".thinking-header").content) if block else "")
            display(screen, update)

        app._display = recording

    def status_only(self) -> int:
        return sum(1 for widgets in self.drawn if widgets and all(in_status(widget) for widget in widgets))


async def start_thinking(pilot, engine) -> str:
    rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO)
    await until(pilot, lambda: pilot.app.chat.status.phase == "prefill", what="the prefill")
    return rid


async def think_fast(engine, rid: str, seconds: float) -> int:
    """A piece of thinking every `BATCH_S` for `seconds`, on time whatever each takes; returns the tokens sent."""
    sent, due = 0, time.perf_counter()
    for _ in range(int(seconds / BATCH_S)):
        engine.emit(ThinkingDelta(rid, PIECE, PIECE_TOKENS))
        sent += PIECE_TOKENS
        due += BATCH_S
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
    return sent


async def test_fast_thinking_draws_the_status_in_the_blocks_frames_not_in_frames_of_its_own():
    """Two seconds of thinking at 330 tok/s: the block draws about 10 times a second (its frame budget), and the
    status pane's spinner and count go out in those frames. Before, the pane's timer drew it in a frame of its own
    between two of the block's, about as often as the block drew."""
    app, holder = animated_app()
    async with app.run_test(size=SIZE) as pilot:
        engine = holder["engine"]
        rid = await start_thinking(pilot, engine)
        frames = Frames(app)
        sent = await think_fast(engine, rid, seconds=2.0)
        await until(pilot, lambda: app.chat.status.tokens == sent, what="the last piece")
        with_block = sum(
            1 for widgets in frames.drawn if any(isinstance(widget.parent, ThinkingBlock) for widget in widgets)
        )
        spinner_turns = len({status for status in frames.status if "thinking" in status[0]})
        assert with_block >= 5, f"the block drew in {with_block} screen updates"
        assert spinner_turns >= 3, "the spinner turned while the model thought"
        assert frames.status_only() <= max(2, with_block // 5), (
            f"{frames.status_only()} screen updates drew only the status pane, beside {with_block} of the block"
        )


async def test_a_silent_thinking_model_still_turns_the_spinner():
    """No thinking arrives for a second after the first piece: the pane shows life all along (the block's clock or
    the pane's timer turns the spinner), never a frozen spinner."""
    app, holder = animated_app()
    async with app.run_test(size=SIZE) as pilot:
        engine = holder["engine"]
        rid = await start_thinking(pilot, engine)
        engine.emit(ThinkingDelta(rid, PIECE, PIECE_TOKENS))
        await until(pilot, lambda: app.chat.status.phase == "thinking", what="thinking")
        seen: set[str] = set()
        started = time.perf_counter()
        while time.perf_counter() - started < 1.0:
            seen.add(phase(app))
            await pilot.pause(0.02)
        assert len(seen) >= 5, f"the spinner showed {sorted(seen)} in a silent second"
        assert detail(app) == f" {PIECE_TOKENS} tokens"


async def test_the_status_is_whole_when_thinking_ends_and_the_answer_starts():
    """In the screen update that collapses the block to "Thought …", the pane shows every thinking token and that
    the answer is being written ("generating": the thinking is over); once the answer's text comes, its tokens
    are counted too."""
    app, holder = animated_app()
    async with app.run_test(size=SIZE) as pilot:
        engine = holder["engine"]
        rid = await start_thinking(pilot, engine)
        frames = Frames(app)
        sent = await think_fast(engine, rid, seconds=0.6)
        engine.emit(ThinkingDelta(rid, "done.\n", 3))  # the last piece lands inside the block's frame interval
        engine.emit(ThinkingDone(rid, sent + 3, 0.6))
        await until(pilot, lambda: any(h.startswith("▸ Thought") for h in frames.block_header), what="the collapse")
        collapsed = next(i for i, h in enumerate(frames.block_header) if h.startswith("▸ Thought"))
        shown_phase, shown_detail = frames.status[collapsed]
        assert "generating" in shown_phase
        assert shown_detail == f" {sent + 3} tokens", "the whole count goes out with the collapsed block"
        engine.emit(TextDelta(rid, "The cache is kept.", 5))
        await until(pilot, lambda: any(d == f" {sent + 8} tokens" for _, d in frames.status), what="the answer")
        assert all("generating" in p for p, d in frames.status[collapsed:] if d == f" {sent + 8} tokens")
        engine.finish("stop")
        await until(pilot, lambda: not app.chat.busy, what="the finish")


async def test_esc_while_thinking_fast_shows_draining_at_once_then_stopped_with_every_token():
    app, holder = animated_app()
    async with app.run_test(size=SIZE) as pilot:
        engine = holder["engine"]
        rid = await start_thinking(pilot, engine)
        sent = await think_fast(engine, rid, seconds=0.6)
        await pilot.press("escape")
        assert "draining" in phase(app), "the cancel key is shown at once"
        engine.emit(ThinkingDelta(rid, "late words\n", 2))  # late thinking while it drains: still draining
        await pilot.pause()
        assert "draining" in phase(app)
        engine.finish("cancelled")
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        assert phase(app) == " ■ stopped "
        assert detail(app).startswith(f" after {sent} tokens"), detail(app)
