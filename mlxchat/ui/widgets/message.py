"""Provides `MessageView`: one turn of the conversation, streaming its Markdown as the answer arrives.

Answer text goes through an `AnswerStream` (code_stream.py): it appends to the document instead of re-parsing the
whole answer per chunk, at most 25 times a second (10 once text outpaces reading), and draws an open code fence
line by line in a `CodeStream` until it closes, so the cost of an update follows the new text, not the answer's or
the code block's length. Below the fold the view grows in steps of lines, so most updates repaint only what
changed instead of scrolling (and repainting) the whole window.
The footer line says how the answer ended: its stats (TTFT, tok/s, tokens), "stopped" with the keys that
continue or retry it, or the error.
"""

from __future__ import annotations

import re
from contextlib import suppress

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.dom import NoScreen
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label, Markdown, Static

from mlxchat.engine import Stats
from mlxchat.terminal_text import visible  # model text may hold ESC, BEL, CSI: shown, never obeyed

from ..chat_model import Turn, TurnStatus
from .code_stream import AnswerMarkdown, AnswerStream, CodeStream
from .thinking import ThinkingBlock, stopped_footer
from .steady_update import laid_out_virtual_size

_FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)(?:^\1[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)


def code_blocks(markdown: str) -> list[str]:
    """The contents of each fenced code block in `markdown`, in order (an unclosed last fence counts)."""
    return [match.group(2).rstrip("\n") for match in _FENCE.finditer(markdown)]


def stats_line(stats: Stats) -> str:
    """'TTFT 0.42s · 8.1 tok/s · 57 tokens · prompt 120 (96 cached)'."""
    parts = []
    if stats.ttft_s is not None:
        parts.append(f"TTFT {stats.ttft_s:.2f}s")
    parts.append(f"{stats.decode_tps:.1f} tok/s")
    parts.append(f"{stats.generation_tokens} tokens")
    cached = f" ({stats.cached_tokens} cached)" if stats.cached_tokens else ""
    parts.append(f"prompt {stats.prompt_tokens}{cached}")
    return " · ".join(parts)


class MessageFooter(Label):
    """The line under a message: how it ended. Hidden while empty."""

    text: reactive[str] = reactive("")
    """Set through `MessageView.footer` (data-bound), so it is right whether it changes before or after mount."""

    def watch_text(self, text: str) -> None:
        self.update(text)
        self.display = bool(text)


class MessageView(Vertical, can_focus=True):
    """A user or assistant turn. Focus one (click or tab) to copy it with the copy key.

    The view draws its `Turn`, which the `ConversationView` changes as events arrive: `sync` writes the text not
    shown yet, `refresh_from_turn` the status and footer once the turn ended.
    """

    status: reactive[TurnStatus] = reactive("complete")
    """How the turn stands. A stopped or failed turn has the class `-stopped` or `-error` (its border says so); a
    streaming one has `-streaming` on its header alone (see `watch_status`)."""

    footer: reactive[str] = reactive("")
    """The footer line: the answer's stats, "stopped" with the keys that continue or retry it, or the error."""

    in_view: reactive[bool] = reactive(True, init=False)
    """False when the model no longer reads this turn (the overflow policy left it out): the class
    `-out-of-view` and a note in the header say so; the turn stays in the conversation and its history."""

    virtual_size = laid_out_virtual_size()

    reserve_lines = 8
    """While an answer streams below the fold, its view grows in steps of this many lines (see
    `get_content_height`)."""

    class AnswerDrawn(Message):
        """The streaming answer is updating, its text or its live thinking (at most 25 times a second). The screen
        draws what it shows on the answer's clock (the status pane's spinner and token count) now, so both share one
        frame: the text's update holds the screen's drawing until this has reached it, and the thinking's draw is in
        the screen's queue just ahead of it."""

        def __init__(self, whole: bool = False) -> None:
            super().__init__()
            self.whole = whole
            """The thinking's last draw: what waits for the clock (the token count) is drawn now, whole."""

    def __init__(self, turn: Turn, *, label: str, **kwargs) -> None:
        super().__init__(classes=f"message -{turn.role}", **kwargs)
        self.turn = turn
        self._label = label
        self._stream: AnswerStream | None = None
        self._reserved: tuple[int, int] | None = None  # (width, content height) reserved while streaming
        self._markdown: Markdown | None = None
        self._code: CodeStream | None = None
        self._written = 0
        self.set_reactive(MessageView.status, turn.status)
        self.set_reactive(MessageView.footer, self._footer_for(""))
        self.set_reactive(MessageView.in_view, turn.in_view)

    @property
    def text(self) -> str:
        return self.turn.text

    def compose(self) -> ComposeResult:
        yield Label(self._header(), classes="message-header", markup=False)
        if self.turn.role == "user":
            yield Static(visible(self.turn.text), classes="message-body", markup=False)
            if self.turn.images:
                names = " · ".join(path.name for path in self.turn.images)
                yield Label(f"▣ {names}", classes="message-images", markup=False)
        else:
            yield ThinkingBlock(self.turn, on_draw=self._answer_drawn)
            self._written = len(self.turn.text)
            self._markdown = AnswerMarkdown(visible(self.turn.text), classes="message-body")
            yield self._markdown
            self._code = CodeStream()
            yield self._code
        yield MessageFooter(classes="message-footer", markup=False).data_bind(text=MessageView.footer)

    async def on_mount(self) -> None:
        self.watch_status(self.status)
        self.set_class(not self.in_view, "-out-of-view")
        await self.sync()

    def watch_in_view(self, in_view: bool) -> None:
        self.set_class(not in_view, "-out-of-view")
        if self.is_mounted:
            self.query_one(".message-header", Label).update(self._header())

    def _header(self) -> str:
        return self._label if self.in_view else f"{self._label}  · not in the model's view"

    def watch_status(self, status: TurnStatus) -> None:
        """A class on this view restyles every widget in it (Textual restyles a node's descendants with it, as a
        selector may depend on the class): for a realistic answer (79 widgets) 68–77 ms on this CPU, one 62.5 ms
        stall on the H200 host at the end of every answer (BENCHMARKS.md, round 9). So the view carries only the
        classes that change its own look, which a turn takes rarely (a stop, an error), and the end of every answer
        restyles its header alone."""
        for shown in ("stopped", "error"):
            self.set_class(status == shown, f"-{shown}")
        for header in self.query_children(".message-header"):  # none before compose: `on_mount` shows it then
            header.set_class(status == "streaming", "-streaming")

    async def sync(self) -> None:
        """Stream whatever part of the turn's text is not shown yet.

        The screen adds text to the turn as deltas arrive, possibly before this view has composed: text that
        arrived before `compose` is in the Markdown from the start, and the rest is written here, so no
        delta is lost or shown twice whatever the order of mounting and events.
        """
        markdown = self._markdown
        if markdown is None or not markdown.is_mounted:  # not drawn yet: compose and on_mount show the text then
            return
        new_text = self.turn.text[self._written :]
        if not new_text:
            return
        self._written = len(self.turn.text)
        if self._stream is None:
            self._stream = AnswerStream(markdown, self._code, on_update=self._answer_drawn)
        await self._stream.write(visible(new_text))

    def give_way(self) -> None:
        """A key was typed in the prompt: the answer's next update waits for the screen to draw it (`AnswerStream`)."""
        if self._stream is not None:
            self._stream.give_way()

    def _answer_drawn(self, whole: bool = False) -> None:
        """Tell the screen straight away, not by bubbling: each ancestor's queue is a hop, and the later the
        screen hears, the likelier the status goes out in a frame of its own after the answer's."""
        with suppress(NoScreen):  # a view being removed (its answer streamed into another conversation)
            self.screen.post_message(self.AnswerDrawn(whole))

    async def end_stream(self) -> None:
        """Flush what is pending into the document; later text (a continue) starts a new stream."""
        await self.sync()
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.stop()
        if self._reserved is not None:
            self._reserved = None  # the finished answer takes its own height
            self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:
        """While an answer streams into a conversation taller than its window, the height grows in steps of
        `reserve_lines`: most updates then fill reserved room and leave the conversation's height alone, so the
        anchored view does not scroll and the screen repaints only the changed lines instead of every line of
        the window (issue 11). A conversation that still fits is not padded: its growth scrolls nothing, and
        neither is a long open code fence, whose `CodeStream` grows in steps itself (room reserved twice would
        leave up to twice the blank lines). The room left never reaches a whole step."""
        height = super().get_content_height(container, viewport, width)
        if self._stream is None or not self._overflows() or (self._code is not None and self._code.in_steps):
            self._reserved = None
            return height
        reserved, step = self._reserved, self.reserve_lines
        if reserved is None or reserved[0] != width or not 0 <= reserved[1] - height < step:
            reserved = self._reserved = (width, -(-height // step) * step if step > 0 else height)
        return reserved[1]

    def _overflows(self) -> bool:
        parent = self.parent
        return isinstance(parent, Widget) and parent.max_scroll_y > 0

    async def on_unmount(self) -> None:
        # An answer still streaming when the view goes away (app closing) must not leave its task pending.
        await self.end_stream()

    def refresh_from_turn(self, hint: str = "") -> None:
        """Show the turn's status and footer after it changed (started again, finished, stopped, failed), with
        `hint` (the keys that continue or retry it) after the footer."""
        self.status = self.turn.status
        self.footer = self._footer_for(hint)
        self.show_thinking()

    def show_thinking(self) -> None:
        """Redraw the thinking block from the turn at once (its end, the turn's end)."""
        for block in self.query(ThinkingBlock):
            block.show_turn()

    def thinking_arrived(self, chars: int) -> None:
        """`chars` more characters of thinking are in the turn: the block draws them at its frame budget."""
        for block in self.query(ThinkingBlock):
            block.thinking_arrived(chars)

    def draw_thinking_due(self) -> None:
        """Draw at once the thinking that waits for its frame (the answer's first text came)."""
        for block in self.query(ThinkingBlock):
            block.draw_due()

    def _footer_for(self, hint: str) -> str:
        footer = self._static_footer()
        return f"{footer} — {hint}" if hint and footer else footer or hint

    def _static_footer(self) -> str:
        turn = self.turn
        if turn.status == "streaming":
            return ""
        if turn.status == "error":
            return f"✖ {visible(turn.error or 'the answer failed')}"
        stats = stats_line(turn.stats) if turn.stats is not None and turn.role == "assistant" else ""
        if turn.status == "stopped":
            return stopped_footer(turn)
        return stats
