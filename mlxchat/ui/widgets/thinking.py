"""Provides `ThinkingBlock`: a reasoning model's thinking, shown above its answer.

While the model thinks the block is live at once: dim, streaming the newest lines, with the time so far and the
tokens. When the answer starts it collapses to one line ("▸ Thought for 12.4 s · 380 tokens") that a click or the
show-thinking key expands again. An answer stopped while thinking keeps its thinking open, and a thinking cut by
the budget says so. The block owns this state; `MessageView` only tells it that the turn changed.

Live thinking is drawn at the answer's frame budget (`FrameBudget`): the first piece at once, later pieces
coalesced into at most one draw per frame interval, and the end of thinking (ThinkingDone, a stop, an error, the
answer's first text) at once and whole. Drawn per piece, a thinking model at 300 tok/s cost a screen update per
engine batch (~30 a second), each holding the GIL the engine's owner thread needs (issue 11). A live draw that
keeps the block's size (the same rows, the same header width) is a repaint only (`steady_update`): every
`Static.update` asked for a layout pass, which re-arranges the whole screen.

What else shows on the thinking's clock (the status pane's spinner and token count) is told of each draw of a
thinking that streams (`on_draw`), as `AnswerStream` tells it of the answer's, so it goes out in the block's screen
update instead of one of its own on a timer.
"""

from __future__ import annotations

import time
from typing import Callable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Label, Static

from mlxchat.terminal_text import visible

from ..chat_model import Turn
from .frame_budget import FrameBudget
from .steady_update import laid_out_virtual_size, steady_update

LIVE_LINES = 6
"""How many of the newest lines of thinking show while it streams (the whole of it once expanded)."""


def live_tail(thinking: str, lines: int = LIVE_LINES) -> str:
    """The newest `lines` lines of `thinking`, trailing newlines left out: found from the end, so a draw costs the
    tail, not the whole thought (thousands of tokens of it were split on every draw)."""
    end = len(thinking)
    while end and thinking[end - 1] == "\n":
        end -= 1
    start = end
    for _ in range(lines):
        start = thinking.rfind("\n", 0, start)
        if start < 0:
            return thinking[:end]
    return thinking[start + 1 : end]


def thinking_header(turn: Turn, expanded: bool, now: float) -> str:
    """The block's one line, from the turn's thinking state."""
    tokens = f"{turn.thinking_tokens} tokens" if turn.thinking_tokens else ""
    if turn.thought_s is not None:
        arrow = "▾" if expanded else "▸"
        budget = " · ended at its budget" if turn.thinking_cut else ""
        took = f" for {turn.thought_s:.1f} s" if turn.thought_before_s is not None else ""  # None: part unknown
        return f"{arrow} Thought{took}" + (f" · {tokens}" if tokens else "") + budget
    before = turn.thought_before_s
    clock_ran = before is not None and (turn.thinking_since is not None or before > 0)
    elapsed = (before or 0.0) + (now - turn.thinking_since if turn.thinking_since is not None else 0.0)
    took = f"{elapsed:.1f} s" if clock_ran else ""
    numbers = " · ".join(part for part in (took, tokens) if part)
    if turn.status == "streaming":
        return f"Thinking… {numbers}".rstrip()
    if turn.status in ("stopped", "error"):
        return f"■ Stopped while thinking · {numbers}" if numbers else "■ Stopped while thinking"
    if not turn.text:  # finished without an answer: the token limit came first
        return f"■ Still thinking when the answer reached its token limit · {numbers}".rstrip(" ·")
    arrow = "▾" if expanded else "▸"  # from history: no timing, only what was thought
    return f"{arrow} Thought" + (f" · {tokens}" if tokens else "")


def stopped_footer(turn: Turn) -> str:
    """The footer of an answer the reader stopped. Thinking is not answer text, so an answer stopped before it said
    anything names the thinking it stopped instead of "0 tokens"."""
    if turn.tokens or not turn.thinking_tokens:
        return f"■ stopped after {turn.tokens} tokens"
    when = "while thinking" if turn.thought_s is None else "after thinking, before the answer"
    return f"■ stopped {when} · {turn.thinking_tokens} thinking tokens"


def is_settled(turn: Turn) -> bool:
    """Whether the thinking is over and may collapse (it ended, or the turn was read back from history)."""
    return turn.thought_s is not None or (turn.status == "complete" and bool(turn.text))


class ThinkingBlock(Vertical):
    """The thinking of one assistant turn. Hidden while the turn has none."""

    virtual_size = laid_out_virtual_size()

    DEFAULT_CSS = """
    ThinkingBlock { height: auto; color: $text-muted; margin-bottom: 1; }
    ThinkingBlock > .thinking-header { text-style: italic; }
    ThinkingBlock > .thinking-body { padding-left: 2; text-style: dim; }
    """

    expanded: reactive[bool] = reactive(False, init=False)
    """True when the reader opened settled thinking (a click, or the show-thinking key)."""

    tick_s = 0.1
    """How often the live block's elapsed time is redrawn while no thinking arrives."""

    give_way_s = 0.15
    """The clock leaves the header to the thinking itself while it arrived within this time: each piece redraws
    the header with the time, and a tick of its own between two pieces was a screen update more (issue 11)."""

    def __init__(self, turn: Turn, *, on_draw: Callable[[bool], None] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.turn = turn
        self.on_draw = on_draw
        """Told of each draw while the turn streams, first thing (so what it draws shares the block's frame); its
        argument is True for the draw that ends the thinking."""
        self.clock = time.monotonic
        self.ticking = True
        self._ticker = None
        self._drawn_at = float("-inf")  # clock time `show_turn` last drew the header
        self.budget = FrameBudget()
        """When live thinking may draw next: the answer's rule (`AnswerStream`), one rule for both."""
        self._next_draw = float("-inf")  # `perf_counter` time the budget lets the next piece draw
        self._due: Timer | None = None  # the draw that will show the pieces arrived since the last

    def compose(self) -> ComposeResult:
        yield Label("", classes="thinking-header", markup=False)
        yield Static("", classes="thinking-body", markup=False)

    def on_mount(self) -> None:
        # The chat screen's clock stamps `turn.thinking_since`, so the elapsed time must be read on the same one;
        # a screen with animation off (tests, screenshots) gets no ticking clock.
        self.clock = getattr(self.screen, "clock", time.monotonic)
        self.ticking = getattr(self.screen, "animate", True)
        self.show_turn()

    def on_click(self) -> None:
        self.toggle()

    def toggle(self) -> None:
        if self.turn.thinking and is_settled(self.turn):
            self.expanded = not self.expanded

    def watch_expanded(self) -> None:
        self.show_turn()

    def thinking_arrived(self, chars: int) -> None:
        """`chars` more characters of thinking are in the turn. The first piece draws at once; later ones wait for
        the frame budget and share one draw (`show_turn` draws at once, whatever is due)."""
        self.budget.note(chars)
        if self._due is not None:
            return  # a draw is due: it shows this piece too
        wait = self._next_draw - time.perf_counter()
        if wait <= 0 or not self.is_mounted or not self.display:
            self.show_turn()
        else:
            self._due = self.set_timer(wait, self._draw_due, name="thinking frame")

    def draw_due(self) -> None:
        """Draw now the thinking that waits for its frame, if any (the answer began: no more of it comes)."""
        if self._due is not None:
            self.show_turn()

    def _draw_due(self) -> None:
        self._due = None
        self.show_turn()

    def show_turn(self) -> None:
        """Draw the turn's thinking as it stands now; a live block ticks its clock until the thinking ends."""
        if self._due is not None:
            self._due.stop()
            self._due = None
        started = time.perf_counter()
        turn = self.turn
        self.display = bool(turn.thinking or turn.thinking_tokens)
        if not self.is_mounted or not self.display:
            return
        live = turn.status == "streaming" and turn.thought_s is None
        if live and self._ticker is None and self.ticking:
            self._ticker = self.set_interval(self.tick_s, self._tick)
        elif not live and self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        if turn.status == "streaming":
            self._tell_drawn(whole=not live)
        self._drawn_at = self.clock()
        header = self.query_one(".thinking-header", Label)
        body = self.query_one(".thinking-body", Static)
        if live:  # drawn many times a second: a repaint only while its size holds (issue 11)
            steady_update(header, thinking_header(turn, self.expanded, self._drawn_at))
            steady_update(body, visible(live_tail(turn.thinking)))
        else:
            header.update(thinking_header(turn, self.expanded, self._drawn_at))
            body.update(visible(turn.thinking.strip("\n")))
        body.display = live or self.expanded or not is_settled(turn)
        self._next_draw = time.perf_counter() + self.budget.rest_s(started)

    def _tick(self) -> None:
        now = self.clock()
        if self._due is None and now - self._drawn_at >= self.give_way_s:  # a due draw shows the time too
            self._tell_drawn(whole=False)  # a silent model: the status's spinner turns with the clock shown here
            steady_update(self.query_one(".thinking-header", Label), thinking_header(self.turn, self.expanded, now))

    def _tell_drawn(self, *, whole: bool) -> None:
        if self.on_draw is not None:
            self.on_draw(whole)
