"""Provides `MessageView`: one turn of the conversation, streaming its Markdown as the answer arrives.

Answer text goes through Textual's `MarkdownStream`, which appends to the document instead of re-parsing the
whole answer per chunk, so the cost of an update follows the new text, not the answer's length. The footer line
says how the answer ended: its stats (TTFT, tok/s, tokens), "stopped" with the keys that continue or retry it,
or the error.
"""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Label, Markdown, Static
from textual.widgets.markdown import MarkdownStream

from mlxchat.engine import Stats

from ..chat_model import Turn, TurnStatus

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


class MessageView(Vertical, can_focus=True):
    """A user or assistant turn. Focus one (click or tab) to copy it with the copy key."""

    status: reactive[TurnStatus] = reactive("complete")
    """How the turn stands; shown as the class `-streaming`, `-complete`, `-stopped` or `-error`."""

    def __init__(self, turn: Turn, *, label: str, **kwargs) -> None:
        super().__init__(classes=f"message -{turn.role}", **kwargs)
        self.turn = turn
        self._label = label
        self._stream: MarkdownStream | None = None
        self.set_reactive(MessageView.status, turn.status)

    @property
    def text(self) -> str:
        return self.turn.text

    def compose(self) -> ComposeResult:
        yield Label(self._label, classes="message-header", markup=False)
        if self.turn.role == "user":
            yield Static(self.turn.text, classes="message-body", markup=False)
            if self.turn.images:
                names = " · ".join(path.name for path in self.turn.images)
                yield Label(f"▣ {names}", classes="message-images", markup=False)
        else:
            yield Markdown(self.turn.text, classes="message-body")
        yield Label("", classes="message-footer", markup=False)

    def on_mount(self) -> None:
        self.set_class(True, f"-{self.status}")
        self.set_footer(self._static_footer())

    def watch_status(self, old: TurnStatus, new: TurnStatus) -> None:
        self.remove_class(f"-{old}")
        self.add_class(f"-{new}")

    async def append(self, text: str) -> None:
        """Stream `text` onto the end of the answer."""
        if self._stream is None:
            self._stream = Markdown.get_stream(self.query_one(Markdown))
        await self._stream.write(text)

    async def end_stream(self) -> None:
        """Flush what is pending into the document; later text (a continue) starts a new stream."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.stop()

    async def on_unmount(self) -> None:
        # An answer still streaming when the view goes away (app closing) must not leave its task pending.
        await self.end_stream()

    def set_footer(self, text: str) -> None:
        footer = self.query_one(".message-footer", Label)
        footer.update(text)
        footer.display = bool(text)

    def refresh_from_turn(self, hint: str = "") -> None:
        """Show the turn's status and footer after it changed (finished, stopped, failed)."""
        self.status = self.turn.status
        footer = self._static_footer()
        self.set_footer(f"{footer} — {hint}" if hint and footer else footer or hint)

    def _static_footer(self) -> str:
        turn = self.turn
        if turn.status == "streaming":
            return ""
        if turn.status == "error":
            return f"✖ {turn.error or 'the answer failed'}"
        stats = stats_line(turn.stats) if turn.stats is not None and turn.role == "assistant" else ""
        if turn.status == "stopped":
            return f"■ stopped after {turn.tokens} tokens"
        return stats
