"""Provides the model picker: every local model, what it is and whether it fits; type to filter, Enter loads.

The list comes from `mlxchat.models.discovery.list_models`, which reads configs and file sizes only, so the
picker opens at once however large the models are (BENCHMARKS.md: picker open time with 50 models). Whether a
model fits is an estimate made from those numbers alone: its weights plus a full KV cache at the conversation's
context, against this machine's memory.

Typing `org/name` that is not local offers to download it. The screen then closes at once: the download runs
beside the chat, its progress above the status pane (`widgets.model_download`), so a model of many gigabytes
does not hold the conversation up; the model loads when it has arrived.

The screen dismisses with a `PickerChoice` (a model spec to load, as `--model` would take it, or a repo to
download), or None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from mlxchat.models.discovery import HF_REPO_ID, ModelRef, list_models

from ..attachment_files import human_size

Fit = Literal["fits", "tight", "too big"]
USABLE_MEMORY_SHARE = 0.75
"""Of a Mac's memory, what the GPU may use by default (Metal's recommended working set is about this)."""
DOWNLOAD_PREFIX = "download:"


@dataclass(frozen=True)
class PickerChoice:
    """What the user chose: `spec` to load now, or (`download`) a Hub repo id to download and then load."""

    spec: str
    download: bool = False


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


class ModelPickerScreen(ModalScreen[PickerChoice | None]):
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
    #picker-hint { color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close", id="model_picker_close"),
        Binding("down", "move(1)", "Next", show=False, id="model_picker_next"),
        Binding("up", "move(-1)", "Previous", show=False, id="model_picker_previous"),
    ]

    def __init__(
        self,
        *,
        context_tokens: int,
        current: str | None = None,
        highlight: str | None = None,
        models: list[ModelRef] | None = None,
        memory_bytes: int | None = None,
    ) -> None:
        """`current` is marked "●"; `highlight` (a model spec) starts highlighted, e.g. the model a conversation was
        held with. `models` and `memory_bytes` default to the real ones; tests and benchmarks pass their own."""
        super().__init__()
        self.context_tokens = context_tokens
        self.current = current
        self.highlight = highlight
        self.models = models
        self.memory_bytes = machine_memory_bytes() if memory_bytes is None else memory_bytes

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            yield Label("Models", id="picker-title")
            yield Input(
                placeholder="Filter, or type org/name to download from the Hugging Face Hub…", id="picker-filter"
            )
            yield Label(COLUMN_HEADINGS, id="picker-columns", markup=False)
            yield OptionList(id="picker-list")
            yield Label(
                f"Enter loads (or downloads) · Esc closes · memory: weights + KV cache at "
                f"{self.context_tokens} tokens, of {human_size(self.memory_bytes)}",
                id="picker-hint",
            )

    def on_mount(self) -> None:
        if self.models is None:
            self.models = list_models()
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
            self.dismiss(PickerChoice(option_id.removeprefix(DOWNLOAD_PREFIX), download=True))
        else:
            self.dismiss(PickerChoice(option_id))

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            options.highlighted = ((options.highlighted or 0) + step) % options.option_count

    def action_close(self) -> None:
        self.dismiss(None)
