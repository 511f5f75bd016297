"""Provides `AnswerStream`: an answer's Markdown streamed at a frame budget, with open code fences drawn line by line.

Textual's `Markdown.append` re-parses the document's last block on every update. While a long code fence is
open, that block is the whole fence, so each update re-parses and re-highlights every line so far: at 200+ lines
a keypress waited 300–450 ms for a repaint (BENCHMARKS.md). And `MarkdownStream` appends as often as text
arrives, so a fast model keeps the UI thread busy in Python, holding the GIL that the engine's owner thread
needs between tokens.

`AnswerStream` fixes both, with the same `write` / `stop` interface as `MarkdownStream`:

- **A frame budget that follows reading speed** (`FrameBudget`, frame_budget.py: the live thinking block follows
  the same rule). Text is applied at most `frame_interval_s` apart (25 updates a second) while it arrives at about
  reading speed, and `fast_interval_s` apart (10 a second) once it arrives faster than `fast_chars_per_s` (about
  100 tok/s), when nobody reads each word as it lands anyway; further apart while the UI thread is busy (twice its
  CPU time since the last update, up to `max_interval_s`). Whatever arrives in between is coalesced into the next
  update, and `stop` draws the last text at once.
- **Typing first** (`give_way`). A key or paste in the prompt makes the next update wait one screen gap, in
  which the screen draws it: a frame that draws an update repaints much of the conversation (25–45 ms on a slow
  CPU), and a key that landed just before an update waited for that frame instead of taking a frame of its own
  of a few ms. The update follows, coalescing what arrived meanwhile. (The live thinking block draws on its own
  clock and does not give way.)
- **Open fences stream into a `CodeStream`**, a line-API widget below the Markdown that highlights each new line
  once and draws only lines, so an update costs the new lines, not the block. When the closing fence
  arrives, the whole block is highlighted on a worker thread, and once that is done and the next block has
  begun, it goes to the Markdown in one append and the `CodeStream` empties: the finished answer is the
  Markdown's own rendering of the full text, exactly what plain streaming gives. The answer's Markdown
  (`AnswerMarkdown`) makes its fences with that highlight (`AnswerFence`), so the handover does not highlight
  the block again on the UI thread (36–40 ms for 500 lines, 95 ms the first time), and the Markdown never
  re-parses it as its last block.

`FenceTracker` is the part without Textual: it reads the text once, line by line, and says where an open fence
starts. Only fences at the start of a line (CommonMark's ``` or ~~~, three or more) are streamed this way; an
indented fence (inside a list item) simply streams through the Markdown as before.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from typing import Callable

from textual.app import ComposeResult
from textual.content import Content
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.visual import Visual
from textual.widgets import Label, Markdown
from textual.widgets._markdown import (
    MarkdownBlock,
    MarkdownFence,
    MarkdownParagraph,
    MarkdownTable,
    MarkdownTableCellContents,
    MarkdownTableContent,
)

from ..lexer_setup import highlight_guarded
from .answer_lists import AnswerBulletList, AnswerOrderedList
from .frame_budget import FrameBudget
from .steady_update import laid_out_virtual_size, steady_update

_OPENING = re.compile(r"(`{3,}|~{3,})([^\n]*)$")
_MARKER_SO_FAR = re.compile(r"[ \t]*\d{1,9}")
"""A last line that is only a number so far: a numbered item's marker before its `.` or `)`."""


@dataclass(frozen=True)
class OpenFence:
    """A fence whose closing line has not arrived: `start` is the offset of its opening line, `body_start` that
    of its first code line, `language` the info string's first word ("" when none)."""

    start: int
    body_start: int
    marker: str
    language: str


class FenceTracker:
    """Follows a growing text and knows whether it ends inside an open, top-level code fence.

    `feed` reads only the lines that completed since the last call, so following an answer costs its length once.
    """

    def __init__(self) -> None:
        self.text = ""
        self.open: OpenFence | None = None
        self.closings: dict[int, tuple[int, int]] = {}
        """For each closed fence (by its `start`), where its closing line starts and ends (after the newline)."""
        self._scanned = 0  # offset of the first line not yet read completely

    def feed(self, fragment: str) -> None:
        self.text += fragment
        text = self.text
        while True:
            end = text.find("\n", self._scanned)
            if end < 0:
                return
            line = text[self._scanned : end]
            if self.open is None:
                match = _OPENING.match(line)
                # A backtick fence's info string may not contain backticks (CommonMark 4.5).
                if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                    words = match.group(2).split()
                    self.open = OpenFence(self._scanned, end + 1, match.group(1), words[0] if words else "")
            elif _closes(line, self.open.marker):
                self.closings[self.open.start] = (self._scanned, end + 1)
                self.open = None
            self._scanned = end + 1

    @property
    def partial_line(self) -> str:
        """The last line, still without its newline."""
        return self.text[self._scanned :]

    def safe_end(self) -> int:
        """How far the text can go to the Markdown now: up to an open fence, or else all of it except a last,
        incomplete line that may still become a fence's opening line or a numbered item's marker.

        The marker: a loose numbered list streamed to `…\n\n2` makes `2` a paragraph after the list, and
        `Markdown.append` then re-parses from that paragraph on, never from the list: `2. Second` becomes a list
        of its own, and every item after it too, a blank row between each, until the answer is drawn again.
        Models often send `2` and `.` as two tokens. Held back, the `2` reaches the Markdown with its `.`."""
        if self.open is not None:
            return self.open.start
        partial = self.partial_line
        if partial[:1] in ("`", "~") and partial == partial[:1] * min(len(partial), 3) + partial[3:]:
            return self._scanned
        if _MARKER_SO_FAR.fullmatch(partial):
            return self._scanned
        return len(self.text)


def _closes(line: str, marker: str) -> bool:
    stripped = line.rstrip(" \t")
    return len(stripped) >= len(marker) and stripped == marker[0] * len(stripped)


class CodeStream(Widget):
    """An open code fence drawn line by line: each appended line is highlighted once, and each frame draws only
    the lines on screen. Looks like Textual's `MarkdownFence`, which takes over when the fence closes.

    Past its first `reserve_lines` lines its height grows in steps of `reserve_lines`: an append that fits the room
    already reserved repaints this widget alone, and only one in `reserve_lines` lines asks the screen for a
    layout pass (which re-arranges and, when the conversation scrolls, repaints the whole window: the largest
    per-frame cost in issue 11). A short block is drawn at its exact height."""

    reserve_lines = 8
    """Lines of room the view reserves at a time once the open fence is longer than this (0: never)."""

    virtual_size = laid_out_virtual_size()

    DEFAULT_CSS = """
    CodeStream {
        width: 1fr;
        height: auto;
        margin: 1 0;
        padding: 1 2;
        color: rgb(210,210,210);
        background: black 10%;
        &:light { background: white 30%; }
        &.-idle { display: none; }
    }
    CodeStream:ansi {
        background: transparent;
        margin: 0;
        padding: 1 0;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.language = ""
        self.lines: list[Content] = []
        self.partial = Content("")
        self._strips: dict[int, Strip] = {}
        self._strips_key: tuple | None = None
        self._pass_key: tuple | None = None  # the line key while `render_lines` draws (one ancestor walk a frame)
        self.add_class("-idle")

    @property
    def line_count(self) -> int:
        return len(self.lines)

    def begin(self, language: str) -> None:
        """Start showing a new fence in `language` ("" for none)."""
        self.language = language
        self.lines = []
        self._strips = {}
        self.partial = Content("")
        self.remove_class("-idle")
        self.refresh(layout=True)

    def append_lines(self, lines: list[str], partial: str) -> None:
        """Add complete `lines` and show `partial`, the line still arriving.

        Each line is highlighted on its own, so what a line looks like depends on its text alone, never on how
        the stream happened to batch it (a construct spanning lines, like a docstring, is coloured right once the
        Markdown takes the finished block)."""
        before, first_changed = self._reserved_height(), len(self.lines)  # the old partial line's row
        self.lines.extend(self._highlight_line(line) for line in lines)
        self.partial = self._highlight_line(partial)
        layout, width = self._reserved_height() != before, self.size.width
        if layout or not width:
            self.refresh(layout=layout)
        else:
            # Only the rows from the old partial line to the new one changed: the others keep their rendered
            # lines in the styles cache (a whole refresh re-rendered every visible row, each frame).
            self.refresh(Region(0, first_changed, width, len(self.lines) + 1 - first_changed))

    def clear(self) -> None:
        """The fence closed and the Markdown shows it now."""
        self.lines = []
        self._strips = {}
        self.partial = Content("")
        self.add_class("-idle")
        self.refresh(layout=True)

    def _highlight_line(self, line: str) -> Content:
        if not self.language or not line.strip():
            return Content(line)
        highlighted = highlight_guarded(line, self.language, self.app.native_ansi_color, self.app.current_theme.dark)
        return highlighted.split("\n")[0]

    def get_content_height(self, container, viewport, width: int) -> int:
        return self._reserved_height()

    @property
    def in_steps(self) -> bool:
        """True while the open fence is past its first step, so its height changes only a step at a time."""
        return 0 < self.reserve_lines < self._drawn_lines()

    def _drawn_lines(self) -> int:
        return len(self.lines) + (1 if self.partial else 0)

    def _reserved_height(self) -> int:
        drawn, step = self._drawn_lines(), self.reserve_lines
        return -(-drawn // step) * step if self.in_steps else drawn

    def render_lines(self, crop: Region) -> list[Strip]:
        # `rich_style` walks every ancestor's styles: once per frame, not once per line.
        self._pass_key = self._line_key()
        try:
            return super().render_lines(crop)
        finally:
            self._pass_key = None

    def _line_key(self) -> tuple:
        return (self.size.width, self.rich_style, self.visual_style)

    def render_line(self, y: int) -> Strip:
        """A complete line is rendered once per width and style (cached): a frame after an append redraws the
        rows that changed, and only the new lines cost more than a lookup."""
        key = self._pass_key or self._line_key()
        width, style = key[0], key[1]
        if key != self._strips_key:
            self._strips_key, self._strips = key, {}
        if y < len(self.lines):
            strip = self._strips.get(y)
            if strip is None:
                strip = self._strips[y] = self._render(self.lines[y], width, style)
            return strip
        if y == len(self.lines) and self.partial:
            return self._render(self.partial, width, style)
        return Strip.blank(width, style)

    def _render(self, content: Content, width: int, style) -> Strip:
        segments = content.render_segments(self.visual_style)
        return Strip(segments).crop_extend(0, width, style).simplify()


HighlightKey = tuple[str, str, bool, bool]
"""(code, info string, ansi, dark): what a fence's highlight depends on."""

_HIGHLIGHTED: OrderedDict[HighlightKey, tuple[Content, list[Content] | None]] = OrderedDict()
"""The last few highlights, each with its lines where they were made with it: evicted together, so nothing of an
old highlight outlives it."""
_HIGHLIGHTS_KEPT = 8


def kept_highlight(key: HighlightKey) -> Content | None:
    kept = _HIGHLIGHTED.get(key)
    return kept[0] if kept is not None else None


def keep_highlight(key: HighlightKey, content: Content, lines: list[Content] | None = None) -> None:
    """Keep `content`, the highlight of `key`, for the next fence made of that block, and its `lines`
    (`content.split("\\n")`) where they were made already (lines kept for the same content stay)."""
    kept = _HIGHLIGHTED.get(key)
    if lines is None and kept is not None and kept[0] is content:
        lines = kept[1]
    _HIGHLIGHTED[key] = (content, lines)
    _HIGHLIGHTED.move_to_end(key)
    while len(_HIGHLIGHTED) > _HIGHLIGHTS_KEPT:
        _HIGHLIGHTED.popitem(last=False)


def split_lines(content: Content) -> list[Content]:
    """`content`'s lines: those made with its highlight on the worker thread, else split here."""
    kept = next((lines for made, lines in _HIGHLIGHTED.values() if made is content and lines is not None), None)
    return kept if kept is not None else content.split("\n")


def highlight_block(code: str, info: str, ansi: bool, dark: bool) -> tuple[Content, list[Content]]:
    """Textual's highlight of a fence's block and its lines: the work `AnswerStream` does on a worker thread."""
    content = highlight_guarded(code, info, ansi, dark)
    return content, content.split("\n")


class FenceCode(Label):
    """The code of a finished fence (Textual's fence shows it in a `Label`), drawn a line at a time.

    A `Label` renders all of its lines the first time any of them is drawn, and wraps them all to learn its height:
    a 500-line block took one long frame when it reached the screen, though the window shows ~30 of its lines. A
    fence's lines never wrap (it scrolls sideways), so its height is its number of lines, and each line renders
    alone, when it is on screen, and is kept per width and style. Anything else (a line wider than the widget or
    holding a tab, a selection, a visual that is not `Content`) is measured and rendered as the `Label` does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lines_of: Content | None = None
        self._lines: list[Content] = []
        self._widest = 0.0
        self._strips: dict[int, Strip] = {}
        self._strips_key: tuple | None = None

    def _lines_fit(self, width: int) -> bool:
        """Whether the visual is `Content` whose lines each fit `width` cells as they are (split once per visual)."""
        visual = self.visual
        if not isinstance(visual, Content):
            return False
        if visual is not self._lines_of:
            self._lines_of, self._lines, self._strips = visual, split_lines(visual), {}
            widths = [float("inf") if "\t" in line.plain else line.cell_length for line in self._lines]
            self._widest = max(widths, default=0)
        return self._widest <= width

    def get_content_height(self, container, viewport, width: int) -> int:
        if self._lines_fit(width):
            return len(self._lines)
        return super().get_content_height(container, viewport, width)

    def render_line(self, y: int) -> Strip:
        width, style = self.size.width, self.visual_style
        if self.text_selection is not None or not self._lines_fit(width):
            return super().render_line(y)
        if (width, style) != self._strips_key:
            self._strips_key, self._strips = (width, style), {}
        strip = self._strips.get(y)
        if strip is None:
            if y >= len(self._lines):
                return Strip.blank(width, style.rich_style)
            # Rendered alone, the line's text-selection offsets say row 0: they are set to its row.
            strip = Visual.to_strips(self, self._lines[y], width, 1, style)[0].apply_offsets(0, y)
            self._strips[y] = strip
        return strip


class AnswerFence(MarkdownFence):
    """Textual's fence, which takes its block already highlighted when it can.

    `MarkdownFence` highlights its whole block when it is made, on the UI thread, and `Markdown.append` makes it
    again whenever it re-parses the document's last block: 36–40 ms for a 500-line block (95 ms the first time).
    `AnswerStream` highlights a closed block on a worker thread before the Markdown gets it, and the last few
    highlights are kept, so making the fence (again) costs a lookup. The content is Textual's own highlight, in the
    info string's first word as the code view streamed it (`fence_language`: Textual looks up the whole string)."""

    @classmethod
    def highlight(cls, code: str, language: str, ansi: bool = False, dark: bool = False) -> Content:
        key = (code, language, ansi, dark)
        content = kept_highlight(key)
        if content is None:
            content = highlight_guarded(code, language, ansi, dark)  # Textual's own, its lexer's first build guarded
        keep_highlight(key, content)
        return content

    def compose(self) -> ComposeResult:
        yield FenceCode(self._highlighted_code, id="code-content", expand=True)


class AnswerParagraph(MarkdownParagraph):
    """Textual's paragraph, which takes streamed text as a repaint while its rows stay the same (`steady_update`).

    The paragraph an answer is writing is the Markdown's last block, and `Markdown.append` hands it the re-parsed
    text at every update; `MarkdownParagraph` shows it with `Static.update`, which asks for a layout pass of the
    whole screen each time. A paragraph gains a row every dozen or so tokens, so most of those passes laid out the
    same sizes again: Python on the UI thread, holding the GIL the owner thread needs (issue 11)."""

    virtual_size = laid_out_virtual_size()

    async def _update_from_block(self, block: MarkdownBlock) -> None:
        if isinstance(block, MarkdownParagraph):
            self._content = block._content
            steady_update(self, block._content)
            self._copy_context(block)
        else:
            await super()._update_from_block(block)


class AnswerTableContent(MarkdownTableContent):
    """Textual's table content, whose rows added while the table streams are cells like the ones it composes.

    Textual's `_update_rows` mounts the streamed rows (and the last row again, with them) as plain `Static`s, which
    have no `action_link`: a link in a table did nothing when clicked in any answer that streamed it (a table
    starts with its first row, and every row after re-mounts the one before), and opened once the chat was read
    back from the history. Here they are `MarkdownTableCellContents`, named and tipped as `compose` makes them."""

    virtual_size = laid_out_virtual_size()

    async def _update_rows(self, updated_rows: list[list[Content]]) -> None:
        self.styles.grid_size_columns = len(self.headers)
        await self.query_children(f".cell.row{self.last_row}").remove()
        cells: list[MarkdownTableCellContents] = []
        row_index = self.last_row
        for row_index, row in enumerate(updated_rows, self.last_row):
            for cell_index, cell in enumerate(row, 1):
                name = f"cell{row_index}.{cell_index}"
                contents = MarkdownTableCellContents(cell, classes=f"row{row_index} cell", name=name)
                cells.append(contents.with_tooltip(cell.plain))
        self.last_row = row_index
        await self.mount_all(cells)


class AnswerTable(MarkdownTable):
    """Textual's table, whose last row takes streamed text in place.

    `Markdown.append` hands the table it is writing the re-parsed table at every update, and Textual's table then
    removes its last row's cells and mounts them again, even when the row only gained a few characters: two layout
    passes of the whole screen and a row of new widgets styled from nothing, at every update while a table streams
    (ten a second at reading speed; the layout passes were the keypress tail's longest frames, issue 11). Here the
    last row's cells are updated in place while the table keeps its rows and that row its cells; a new row, or a
    new cell in the last row, goes Textual's way. A table that lost a row (a line parsed as a row until more of it
    came: `<` becoming `<div>`, a block after the table) is built anew: Textual's update raises on it
    (`_update_rows([])`: UnboundLocalError), and the rest of the answer was never drawn. Rows that stream in are
    mounted by `AnswerTableContent`, as cells whose links open."""

    def compose(self) -> ComposeResult:
        self._headers, self._rows = self._get_headers_and_rows()
        yield AnswerTableContent(self._headers, self._rows)

    async def _update_from_block(self, block: MarkdownBlock) -> None:
        if isinstance(block, MarkdownTable) and self._rows:
            _headers, rows = block._get_headers_and_rows()
            if len(rows) < len(self._rows):
                await MarkdownBlock._update_from_block(self, block)  # remove this table, mount the new one
                return
            last = rows[-1] if rows else None
            if last is not None and len(rows) == len(self._rows) and len(last) == len(self._rows[-1]):
                for content in self.query_children(MarkdownTableContent):
                    cells = list(content.query_children(f".cell.row{content.last_row}"))
                    if len(cells) != len(last):
                        break
                    for cell, text in zip(cells, last):
                        cell.content = text  # not `update`: the grid's auto widths need the cell's size measured anew
                        cell.tooltip = text.plain  # as Textual's compose tips its cells
                    content.refresh(layout=True)  # its keylines (the table's borders) follow the new column widths
                    self._rows = rows
                    self._copy_context(block)
                    return
        await super()._update_from_block(block)


class AnswerMarkdown(Markdown):
    """An answer's Markdown: Textual's, with its code fences made by `AnswerFence` (highlighted ahead, drawn a line at
    a time by `FenceCode`), its lists updated in place as they stream (answer_lists.py) and its paragraphs repainted
    where they keep their rows (`AnswerParagraph`); it draws exactly what Textual's draws (tests/ui/test_code_stream.py
    and tests/ui/test_answer_lists.py compare screens)."""

    virtual_size = laid_out_virtual_size()

    BLOCKS = {
        **Markdown.BLOCKS,
        "paragraph_open": AnswerParagraph,
        "table_open": AnswerTable,
        "fence": AnswerFence,
        "bullet_list_open": AnswerBulletList,
        "ordered_list_open": AnswerOrderedList,
    }


class AnswerStream:
    """Writes an answer into a `Markdown` and a `CodeStream` at a frame budget (see the module docstring).

    `shown_chars` is how much of the written text the widgets hold after the last update (the benchmark matches
    frames to it)."""

    def __init__(
        self,
        markdown: Markdown,
        code: CodeStream,
        *,
        frame_interval_s: float | None = None,
        on_update: Callable[[], None] | None = None,
    ) -> None:
        self.markdown = markdown
        self.code = code
        self.on_update = on_update
        """Called as each update begins, so what else the screen shows on the answer's clock goes out in its frame."""
        self.budget = FrameBudget(frame_interval_s)
        """When the next update may draw: the rule the live thinking block follows too."""
        self.fences = FenceTracker()
        self.shown_chars = 0
        self.updates = 0
        self._to_markdown = 0  # offset of the first character not yet handed to the Markdown
        self._code_shown_upto = 0  # offset up to which the open fence's complete lines are drawn
        self._showing: OpenFence | None = None
        self._highlight: asyncio.Future | None = None  # the shown fence's closed block, highlighted on a thread
        self._pending: list[str] = []
        self._new_text = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopped = False
        self._updating = False
        self.typed_at = float("-inf")
        """`perf_counter` when a key was last typed (`give_way`)."""

    key_frame_s = FrameBudget.screen_gap_s
    """How long after a typed key the next update waits (`give_way`): two of the screen's update periods, so the
    key's frame falls due inside it whatever the timer's phase and is drawn (on this same thread) before the update
    begins, unless the UI thread's queue is slower than that. Counted once per update, so keys typed meanwhile (a
    held key repeating) delay an update by this much at most. 0: updates never give way (`ui_bench --no-give-way`:
    what typing first buys)."""

    def give_way(self) -> None:
        """A key was typed: the next update waits for the screen to draw it (see the module docstring). An update
        already drawing is not interrupted; its frame shows the key."""
        self.typed_at = time.perf_counter()

    def key_frame_left_s(self) -> float:
        """How long an update due now waits for a typed key's frame (0: none)."""
        return max(0.0, min(self.typed_at + self.key_frame_s - time.perf_counter(), self.key_frame_s))

    async def write(self, fragment: str) -> None:
        if self._stopped:
            raise RuntimeError("Can't write to the stream after it has stopped.")
        if not fragment:
            return
        self._pending.append(fragment)
        self.budget.note(len(fragment))
        self._new_text.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)

    async def stop(self) -> None:
        """Draw everything written, hand an unclosed fence to the Markdown, and end the stream."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self._new_text.set()  # wakes the task if it waits for text
        task, self._task = self._task, None
        if task is not None and self._updating:
            await task  # an update is drawing: let it finish (the loop ends after it)
            task = None
        elif task is not None:
            task.cancel()  # waiting for text or for its frame: the last update below replaces it
        # The last update starts at once, so the Markdown's source holds the whole answer before this yields.
        await self._update(final=True)
        if task is not None:
            with suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self._new_text.wait()
            wait_s = self.key_frame_left_s()
            if wait_s > 0:  # typing first: the key's frame is drawn before this update
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), wait_s)
            if self._stop.is_set():
                return
            started = time.perf_counter()
            self._updating = True
            try:
                await self._update(final=False)
            finally:
                self._updating = False
            # The frame budget: text that arrives now waits for the next update. Never less than the screen's gap:
            # an update holds the screen's drawing (`_update`'s batch), so an update slower than its budget (the
            # engine holding the GIL) followed at once by the next would leave the screen no moment to draw,
            # typed keys included, until the answer ended.
            try:
                await asyncio.wait_for(self._stop.wait(), self.budget.rest_s(started))
            except TimeoutError:
                pass

    settle_turns = 4
    """Event-loop turns the batch is held after an update draws, so every widget it refreshed (and the status pane,
    told at the start) has reported to the screen before the screen may draw: one frame, not two (issue 11)."""

    async def _update(self, *, final: bool) -> None:
        """One update, drawn in one screen frame: the screen draws nothing while the Markdown mounts its blocks (a
        half-made update was a frame of its own), and what else shows on the answer's clock (`on_update`) is told
        first, so it is drawn with it instead of in a frame just after."""
        self._new_text.clear()
        if self._pending:
            self.fences.feed("".join(self._pending))
            self._pending.clear()
        fence = self.fences.open
        hand_over = self._showing is not None and (final or fence is None or fence.start != self._showing.start)
        # The shown fence closed (or the answer ended inside it): the Markdown takes the whole block once it is
        # highlighted, which the last update waits for, outside the batch (the screen keeps drawing meanwhile).
        ready = await self._block_ready(final) if hand_over else False
        if self.on_update is not None:
            self.on_update()
        app = self.markdown.app
        with app.batch_update():
            await self._draw(final, hand_over, ready)
            for _ in range(self.settle_turns):
                await asyncio.sleep(0)
        with suppress(Exception):  # the screen resumes drawing when it next goes idle: now
            self.markdown.screen.check_idle()
        self.updates += 1

    async def _draw(self, final: bool, hand_over: bool, ready: bool) -> None:
        fences, text = self.fences, self.fences.text
        fence = fences.open
        if hand_over:
            if not ready:
                self._draw_closed_block()  # the code view shows the whole block a little longer
                return
            self._showing, self._highlight = None, None
            self._code_shown_upto = 0
            await self._to_markdown_upto(len(text) if final else fences.safe_end())
            self.code.clear()
        end = len(text) if final else fences.safe_end()
        await self._to_markdown_upto(end)
        if fence is not None and not final:
            if self._showing is None:
                self._showing = fence
                self.code.begin(fence.language)
            complete_end = len(text) - len(fences.partial_line)
            shown = max(self._code_shown_upto, fence.body_start)
            new_lines = text[shown:complete_end].split("\n")[:-1] if complete_end > shown else []
            self._code_shown_upto = max(shown, complete_end)
            self.code.append_lines(new_lines, fences.partial_line)
            self.shown_chars = len(text)
        else:
            self.shown_chars = self._to_markdown

    def _draw_closed_block(self) -> None:
        """Draw the lines that came with the closing fence (the last one was the partial line) while the closed
        block waits for its highlight and for the text after it: the code view shows the block complete."""
        fence, text = self._showing, self.fences.text
        code_end, after = self.fences.closings[fence.start]
        shown = max(self._code_shown_upto, fence.body_start)
        if code_end > shown or self.code.partial:
            self.code.append_lines(text[shown:code_end].split("\n")[:-1] if code_end > shown else [], "")
            self._code_shown_upto = max(shown, code_end)
        self.shown_chars = max(self.shown_chars, after)

    async def _block_ready(self, final: bool) -> bool:
        """Whether the closed fence on show goes to the Markdown now (always at the end of the answer).

        Its block is highlighted on a worker thread first (started by the first call), so the Markdown's fence finds
        it made (`AnswerFence`) instead of taking a long frame to highlight it; and it waits for the next block to
        begin, so that the fence is not the Markdown's last block, which `Markdown.append` parses, makes and
        redraws again on the next update."""
        fence, text = self._showing, self.fences.text
        closing = self.fences.closings.get(fence.start)
        if closing is None:  # the answer ended inside the fence
            return True
        if self._highlight is None:
            app = self.markdown.app
            code = text[fence.body_start : closing[0]].rstrip()  # what markdown-it gives the fence, as it strips it
            info = text[fence.start + len(fence.marker) : fence.body_start - 1]
            key = (code, info, app.native_ansi_color, app.current_theme.dark)
            if (content := kept_highlight(key)) is not None:  # the same block again: made already, no worker
                self._highlight = asyncio.get_running_loop().create_future()
                self._highlight.set_result((content, None))
            else:
                self._highlight = asyncio.ensure_future(asyncio.to_thread(highlight_block, *key))

            def done(future: asyncio.Future) -> None:
                if not future.cancelled() and future.exception() is None:
                    keep_highlight(key, *future.result())
                self._new_text.set()  # an update hands the block over now

            self._highlight.add_done_callback(done)
        if final:
            with suppress(Exception):
                await self._highlight
            return True
        return self._highlight.done() and bool(text[closing[1] : self.fences.safe_end()].strip())

    async def _to_markdown_upto(self, end: int) -> None:
        if end > self._to_markdown:
            fragment = self.fences.text[self._to_markdown : end]
            first, self._to_markdown = self._to_markdown == 0, end
            source = self.markdown.source
            if first and _MARKER_SO_FAR.fullmatch(source[source.rfind("\n") + 1 :]):
                # A continue after a stop at `…\n\n2`: the stop drew the held-back number as a paragraph, and
                # `append` would re-parse from it on and split its list (`safe_end`); the whole text, once.
                await self.markdown.update(source + fragment)
            else:
                await self.markdown.append(fragment)
