"""Provides the status pane: one line that always says what the engine is doing.

`mlxchat.ui.engine_status` turns engine events into an `EngineStatus`; the chat screen sets it here (attributes
down) and the pane only draws it. While the reader is in another conversation than the one answering, the phase
says where the answer goes ("answering in 'France trivia'").

Draining has its own colour and a spinner with the time since the cancel key, because "I pressed Esc and it is
still going" is the moment a user most needs to see the truth. The context meter on the right turns to the
warning colour from 80 % of the model's context and to the error colour from 95 % (classes `-context-filling` and
`-context-full`), and says how many turns are out of the model's view. While a server is silent mid-answer, the
rate gives way to "waiting for 127.0.0.1:8080 · 4 s": a rate left standing would say tokens still flow. The clock
is injected so snapshot tests show a fixed elapsed time, and animation can be switched off for them.
"""

from __future__ import annotations

import time
from typing import Callable
from urllib.parse import urlsplit

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Label

from mlxchat.engine import ModelInfo
from mlxchat.terminal_text import visible

from ..attachment_files import human_size
from ..engine_status import EngineStatus, StatusPhase

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_ANIMATED = {"starting", "loading", "prefill", "thinking", "generating", "draining"}
_PHASES = StatusPhase.__args__


class StatusBar(Horizontal):
    """The engine's state on the left, the model and its resources on the right."""

    DEFAULT_CSS = """
    StatusBar { height: 1; }
    StatusBar > #status-detail { width: 1fr; }
    StatusBar.-error { height: auto; max-height: 3; }
    """

    status: reactive[EngineStatus] = reactive(EngineStatus, always_update=True, init=False, repaint=False)
    """What to show. The chat screen replaces it with what the `engine_status` reducer returns.

    It does not repaint the bar: the labels repaint themselves when their text changes. A repainting reactive
    marked the bar dirty on every text event, so each event cost a frame of its own, though nothing visible
    changed (on the H200 most of the ~40 frames a second of a fast answer, issue 11)."""

    frame: reactive[int] = reactive(0, init=False, repaint=False)
    """Spinner frame, advanced while the engine works (frozen when animation is off): with the answer's own
    draws while one streams, its live thinking or its text (`answer_drawn`), else by a timer."""

    tick_s = 0.1
    """How often the spinner turns (and a streaming answer's token count is drawn)."""

    give_way_s = 0.3
    """The timer leaves the spinner to the answer while the answer drew within this time (its frame budget
    stretches to 0.2 s while the UI thread is busy; a thinking block with no new thinking redraws its clock every
    0.1 s). With nothing drawn for longer (a silent model), the timer turns it: the pane always shows life."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, animate: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self._clock = clock
        self._animate = animate
        self._shown: dict[str, tuple[str, int]] = {}  # label id -> (text, visible width) last drawn
        self._drawn_phase: StatusPhase | None = None
        self._turned_at = float("-inf")  # clock time the spinner last turned
        self._answer_at = float("-inf")  # clock time of the last `answer_drawn`

    def compose(self) -> ComposeResult:
        yield Label(id="status-phase")
        yield Label(id="status-detail", markup=False)
        yield Label(id="status-model", markup=False)

    def on_mount(self) -> None:
        if self._animate:
            self.set_interval(self.tick_s, self.tick)
        self._draw()

    def tick(self) -> None:
        """The timer's turn of the spinner. It gives way while an answer streams, thinking or text, and turns it
        (`answer_drawn`): two clocks a tenth of a second apart each cost the screen a frame, one clock costs one."""
        now = self._clock()
        if self.status.phase in _ANIMATED and now - self._answer_at >= self.give_way_s:
            self._turn(now)

    def answer_drawn(self, *, whole: bool = False) -> None:
        """The streaming answer (its live thinking, or its text) has just drawn: turn the spinner and draw the
        waiting token count now, at most once a `tick_s` (give or take a quarter), so they go out in the answer's
        frame. `whole`: the thinking's last draw (ThinkingDone), whose count is drawn now whatever the spinner."""
        now = self._answer_at = self._clock()
        if self._animate and self.status.phase in _ANIMATED and now - self._turned_at >= 0.75 * self.tick_s:
            self._turn(now)
        elif whole:
            self._draw()

    def _turn(self, now: float) -> None:
        self._turned_at = now
        self.frame += 1

    def watch_status(self, status: EngineStatus) -> None:
        """A new phase is drawn at once. While the spinner turns in the same phase (an answer streaming), a new
        token count waits for its next tick: the screen posts a status after every text event, and drawing each
        one is UI-thread time taken from the engine between tokens, for a figure nobody reads 30 times a second
        (issue 11)."""
        if status.phase == self._drawn_phase and self._animate and status.phase in _ANIMATED:
            return  # the spinner's next turn draws it within `tick_s`
        if status.phase != self._drawn_phase:
            self._drawn_phase = status.phase
            self.set_class(True, f"-{status.phase}")
            for phase in _PHASES:
                if phase != status.phase:
                    self.remove_class(f"-{phase}")
        self._draw()

    def watch_frame(self) -> None:
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        self._show(self.query_one("#status-phase", Label), self.phase_text(), markup=True)
        self._show(self.query_one("#status-detail", Label), visible(self.detail_text()))  # a server's words, maybe
        model = self.query_one("#status-model", Label)
        room = self.size.width - cell_len(self.phase_text() + self.detail_text()) if self.size.width else None
        facts = self.model_text()
        self._show(model, facts if room is None else fit_model_facts(facts, room))
        warning = self.status.context_warning
        model.set_class(warning == "filling", "-context-filling")
        model.set_class(warning == "full", "-context-full")

    def _show(self, label: Label, text: str, *, markup: bool = False) -> None:
        """Update `label` only when its text changed, and lay the screen out again only when its width changed.

        The bar redraws after every text event of a streaming answer; a layout pass rearranges the whole screen
        (every block of every answer), so a token count that keeps its width must not cause one (issue 11)."""
        shown = self._shown.get(label.id)
        if shown is not None and shown[0] == text:
            return
        width = Content.from_markup(text).cell_length if markup else cell_len(text)
        self._shown[label.id] = (text, width)
        label.update(text, layout=shown is None or shown[1] != width)

    def phase_text(self) -> str:
        status = self.status
        spin = SPINNER[self.frame % len(SPINNER)]
        match status.phase:
            case "loading":
                return f" {spin} loading {_percent(status.progress)}"
            case "prefill" | "thinking" | "generating" if status.answering_in is not None:  # the reader is elsewhere
                return f" {spin} answering in '{_shortened(status.answering_in)}' "
            case "prefill":
                if not status.prefill_total:
                    return f" {spin} prefill "
                return f" {spin} prefill {status.prefill_done}/{status.prefill_total} "
            case "thinking":
                return f" {spin} thinking "
            case "generating":
                return f" {spin} generating "
            case "draining":
                return f" {spin} draining {self._elapsed():.1f}s "
            case "ready":
                return " ● ready "
            case "stopped":
                return " ■ stopped "
            case "busy":
                return " ⊘ busy "
            case "error":
                return " ✖ error "
            case "no-model":
                return " ○ no model "
        return f" {spin} starting "

    def detail_text(self) -> str:
        status = self.status
        if status.phase in ("thinking", "generating") and not status.detail:
            if status.silent_s is not None:
                return f" {status.tokens} tokens · waiting for {server_name(status.model)} · {int(status.silent_s)} s"
            rate = f" · {status.tokens_per_s:.1f} tok/s" if status.tokens_per_s else ""
            return f" {status.tokens} tokens{rate}"
        if status.phase == "loading" and status.progress is not None:
            return f" {_bar(status.progress)} {status.detail}"
        return f" {status.detail}" if status.detail else ""

    def model_text(self) -> str:
        status = self.status
        if status.model_name is None and status.phase in ("starting", "loading"):
            return ""
        parts = [status.model_name or "no model"]
        if status.memory_bytes:
            parts.append(f"mem {human_size(status.memory_bytes)}")
        if status.context_size:
            used = "?" if status.context_used is None else status.context_used  # unknown until the next answer
            share = f" {status.context_used / status.context_size:.0%}" if status.context_warning else ""
            parts.append(f"ctx {used}/{status.context_size}{share}")
        if status.turns_out_of_view:
            count = status.turns_out_of_view
            parts.append(f"{count} message{'s' if count != 1 else ''} out of view")
        return " · ".join(parts) + " "

    def _elapsed(self) -> float:
        return max(0.0, self._clock() - self.status.since) if self.status.since is not None else 0.0


def fit_model_facts(facts: str, room: int) -> str:
    """The model facts ("name · mem … · ctx …") in at most `room` columns. The phase and its detail (tok/s, an
    error) matter more, so the facts give way: first the memory, then the name is shortened, then dropped; the
    context figure goes last."""
    parts = facts.strip().split(" · ")
    name, rest = parts[0], [part for part in parts[1:] if not part.startswith("mem ")]
    for candidate in (parts, [name, *rest], [_shortened(name, 16), *rest], rest):
        text = " · ".join(candidate) + " " if candidate else ""
        if cell_len(text) <= room:
            return text
    return ""


def server_name(model: ModelInfo | None) -> str:
    """The answering server as the status names it: its host and port ("the server" for none known)."""
    endpoint = model.endpoint if model is not None else None
    if not endpoint:
        return "the server"
    return urlsplit(endpoint).netloc or endpoint


def _shortened(title: str, limit: int = 24) -> str:
    """A conversation's title short enough to leave the status line room for the model."""
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def _percent(progress: float | None) -> str:
    return "" if progress is None else f"{progress:.0%} "


def _bar(progress: float, width: int = 10) -> str:
    filled = round(max(0.0, min(1.0, progress)) * width)
    return "▰" * filled + "▱" * (width - filled)
