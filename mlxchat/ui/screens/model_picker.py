"""Provides the model picker: every local model, what it is and whether it fits; type to filter, Enter loads.

The list comes from `mlxchat.models.discovery.list_models`, which reads configs and file sizes only, so the
picker opens at once however large the models are (BENCHMARKS.md: picker open time with 50 models). Whether a
model fits is an estimate made from those numbers alone: its weights plus a full KV cache at the conversation's
context, against this machine's memory.

Typing `org/name` that is not local offers to download it. The download runs here, on a thread of its own that
reports through messages (the latest progress replaces an older one still queued); Escape cancels it, and a
cancelled download resumes the next time. When it finishes the model is highlighted and Enter loads it.

The screen dismisses with the model spec to load (what `--model` would take), or None.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable, Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from mlxchat.models.discovery import HF_REPO_ID, ModelRef, list_models
from mlxchat.models.hub import DownloadProgress, describe_progress

from ..attachment_files import human_size

Fit = Literal["fits", "tight", "too big"]
USABLE_MEMORY_SHARE = 0.75
"""Of a Mac's memory, what the GPU may use by default (Metal's recommended working set is about this)."""
DOWNLOAD_PREFIX = "download:"


def machine_memory_bytes() -> int:
    """Physical memory of this machine (Linux and macOS alike)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def memory_fit(ref: ModelRef, context_tokens: int, memory_bytes: int) -> Fit:
    """"fits" within the usable share of memory, "tight" within all of it, else "too big"."""
    needed = ref.memory_needed(context_tokens)
    if memory_bytes <= 0 or needed <= memory_bytes * USABLE_MEMORY_SHARE:
        return "fits"
    return "tight" if needed <= memory_bytes else "too big"


def matches(ref: ModelRef, query: str) -> bool:
    """Every word of the query appears in the model's name, kind or quantization (case-insensitive)."""
    haystack = f"{ref.name} {ref.kind_label} {ref.quantization} {ref.source}".lower()
    return all(word in haystack for word in query.lower().split())


def download_offer(query: str, models: list[ModelRef]) -> str | None:
    """The repo id to offer downloading: the query when it is `org/name` and no local model has that name."""
    repo_id = query.strip()
    if not HF_REPO_ID.match(repo_id) or any(ref.name == repo_id for ref in models):
        return None
    return repo_id


def model_spec(ref: ModelRef) -> str:
    """What `--model` would take to load `ref`."""
    if ref.source == "demo":
        return "demo"
    if ref.source == "folder":
        return str(ref.path)
    return ref.name


_FIT_STYLES = {"fits": "green", "tight": "yellow", "too big": "red"}
NAME_WIDTH = 43


def _columns(name: str, kind: str, quantization: str, size: str, context: str) -> str:
    short = name if len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 1] + "…"
    return f"{short:<{NAME_WIDTH}} {kind:<17} {quantization[:13]:<13} {size:>9} {context:>9}  "


COLUMN_HEADINGS = "  " + _columns("name", "kind", "quantization", "size", "context") + "memory"


def model_row(ref: ModelRef, context_tokens: int, memory_bytes: int, *, current: bool) -> Text:
    """One line per model in fixed columns: name, kind, quantization, size, context, fit."""
    fit = memory_fit(ref, context_tokens, memory_bytes)
    context = f"{ref.context_length // 1024}k ctx" if ref.context_length and ref.context_length >= 1024 else (
        f"{ref.context_length} ctx" if ref.context_length else "? ctx"
    )
    row = Text(no_wrap=True, overflow="ellipsis")
    row.append("● " if current else "  ", style="bold")
    row.append(_columns(ref.name, ref.kind_label, ref.quantization, human_size(ref.size_bytes), context))
    row.append(fit, style=_FIT_STYLES[fit])
    return row


class DownloadLine(Static):
    """The download in progress: one line of sizes, speed and time left, and a bar. It owns that state."""

    DEFAULT_CSS = """
    DownloadLine { height: auto; color: $text-muted; }
    DownloadLine.-failed { color: $error; }
    """

    report: reactive[DownloadProgress | None] = reactive(None)
    """The latest progress report; None when no download has reported yet."""

    def watch_report(self, report: DownloadProgress | None) -> None:
        if report is not None:
            self.remove_class("-failed")
            self.update(describe_progress(report))

    def say(self, text: str, *, failed: bool = False) -> None:
        self.set_class(failed, "-failed")
        self.update(text)


class ModelPickerScreen(ModalScreen[str | None]):
    """Pick a model to load, or download one."""

    DEFAULT_CSS = """
    ModelPickerScreen { align: center middle; background: $background 60%; }
    #picker-box {
        width: 95%; max-width: 118; height: 85%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    #picker-title { text-style: bold; color: $primary; }
    #picker-columns { color: $text-muted; padding-left: 1; }
    #picker-list { height: 1fr; background: $surface; }
    #picker-bar { width: 100%; }
    #picker-bar Bar { width: 1fr; }
    #picker-hint { color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close", id="model_picker_close"),
        Binding("down", "move(1)", "Next", show=False, id="model_picker_next"),
        Binding("up", "move(-1)", "Previous", show=False, id="model_picker_previous"),
    ]

    @dataclass
    class DownloadProgressed(Message):
        report: DownloadProgress

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ModelPickerScreen.DownloadProgressed)

    @dataclass
    class DownloadEnded(Message):
        repo_id: str
        problem: str | None
        """None when the model is now local; else what went wrong (or that it was cancelled)."""

    def __init__(
        self,
        *,
        context_tokens: int,
        current: str | None = None,
        highlight: str | None = None,
        models: list[ModelRef] | None = None,
        memory_bytes: int | None = None,
        download: Callable[..., object] | None = None,
    ) -> None:
        """`current` is marked "●"; `highlight` (a model spec) starts highlighted, e.g. the model a conversation was
        held with. `models`, `memory_bytes` and `download` default to the real ones; tests and benchmarks pass
        their own."""
        super().__init__()
        self.context_tokens = context_tokens
        self.current = current
        self.highlight = highlight
        self.models = models
        self.memory_bytes = machine_memory_bytes() if memory_bytes is None else memory_bytes
        self._download = download
        self._cancel: threading.Event | None = None
        self.downloading: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            yield Label("Models", id="picker-title")
            yield Input(placeholder="Filter, or type org/name to download from the Hugging Face Hub…", id="picker-filter")
            yield Label(COLUMN_HEADINGS, id="picker-columns", markup=False)
            yield OptionList(id="picker-list")
            yield DownloadLine(id="picker-download")
            yield ProgressBar(id="picker-bar", show_eta=False, show_percentage=True)
            yield Label(
                f"Enter loads · Esc closes or cancels a download · memory: weights + KV cache at "
                f"{self.context_tokens} tokens, of {human_size(self.memory_bytes)}",
                id="picker-hint",
            )

    def on_mount(self) -> None:
        if self.models is None:
            self.models = list_models()
        self.query_one(DownloadLine).display = False
        self.query_one(ProgressBar).display = False
        self.fill(highlight=self.highlight)
        self.query_one(Input).focus()

    def fill(self, highlight: str | None = None) -> None:
        """Show the models the filter matches (and the download offer); keep `highlight` highlighted."""
        query = self.query_one(Input).value
        shown = [ref for ref in self.models or [] if matches(ref, query)]
        options = self.query_one(OptionList)
        options.clear_options()
        offer = download_offer(query, self.models or [])
        if offer is not None:
            label = Text.assemble(("  ↓ ", "bold"), (f"Download {offer} from the Hugging Face Hub", "bold"))
            options.add_option(Option(label, id=DOWNLOAD_PREFIX + offer))
        current = (self.current or "").strip()
        options.add_options(
            Option(
                model_row(ref, self.context_tokens, self.memory_bytes, current=model_spec(ref) == current),
                id=model_spec(ref),
            )
            for ref in shown
        )
        if not shown and offer is None:
            options.add_option(Option(Text("No model matches" if query.strip() else "No local models"), disabled=True))
            return
        ids = [option.id for option in options.options]
        options.highlighted = ids.index(highlight) if highlight in ids else 0

    @on(Input.Changed, "#picker-filter")
    def _filter(self) -> None:
        self.fill()

    @on(Input.Submitted, "#picker-filter")
    def _submit(self) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is not None:
            self.choose(options.get_option_at_index(options.highlighted).id)

    @on(OptionList.OptionSelected, "#picker-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.choose(event.option.id)

    def choose(self, option_id: str | None) -> None:
        if option_id is None:
            return
        if option_id.startswith(DOWNLOAD_PREFIX):
            self.start_download(option_id.removeprefix(DOWNLOAD_PREFIX))
        elif self.downloading is None:
            self.dismiss(option_id)

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            options.highlighted = ((options.highlighted or 0) + step) % options.option_count

    def action_close(self) -> None:
        if self._cancel is not None and self.downloading is not None:
            self._cancel.set()
            self.query_one(DownloadLine).say(f"Cancelling the download of {self.downloading}…")
            return
        self.dismiss(None)

    # ---- download ----------------------------------------------------------------------------------------

    def start_download(self, repo_id: str) -> None:
        if self.downloading is not None:
            return
        from mlxchat.models import hub

        download = self._download or hub.download_model
        self.downloading, self._cancel = repo_id, threading.Event()
        line, bar = self.query_one(DownloadLine), self.query_one(ProgressBar)
        line.display = bar.display = True
        line.say(f"Asking the Hub about {repo_id}…")
        bar.update(total=None, progress=0)
        cancel = self._cancel

        def run() -> None:
            try:
                download(repo_id, progress=lambda r: self.post_message(self.DownloadProgressed(r)), cancel=cancel)
            except hub.HubError as error:
                self.post_message(self.DownloadEnded(repo_id, str(error)))
            except Exception as error:  # the thread must always report, or the picker would wait forever
                self.post_message(self.DownloadEnded(repo_id, f"Downloading {repo_id} failed: {error}"))
            else:
                self.post_message(self.DownloadEnded(repo_id, None))

        threading.Thread(target=run, name=f"download {repo_id}", daemon=True).start()

    def on_model_picker_screen_download_progressed(self, message: DownloadProgressed) -> None:
        self.query_one(DownloadLine).report = message.report
        self.query_one(ProgressBar).update(total=max(message.report.total, 1), progress=message.report.done)

    def on_model_picker_screen_download_ended(self, message: DownloadEnded) -> None:
        self.downloading, self._cancel = None, None
        self.query_one(ProgressBar).display = False
        line = self.query_one(DownloadLine)
        if message.problem is not None:
            line.say(message.problem, failed=True)
            return
        self.models = list_models()
        self.query_one(Input).value = message.repo_id
        self.fill(highlight=message.repo_id)
        line.say(f"Downloaded {message.repo_id}; Enter loads it.")
