"""Provides the conversation settings modal: system prompt, sampling, thinking, seed and model, kept per conversation.

Values are checked by `ChatSettings` itself, so the modal and `config.toml` accept exactly the same things; a
value that does not fit is named under the form and nothing is saved until every field fits. A sampling field left
empty is "not set": beside it the modal shows the value that applies instead and where it comes from (config.toml,
the model's own `generation_config.json`, or mlxchat's default), decided by `mlxchat.settings.resolve_sampling`.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, TextArea

from mlxchat.engine.events import ModelInfo
from mlxchat.settings import SAMPLING_DEFAULTS, ChatSettings, resolve_sampling, sampling_values

_NUMBERS = (
    ("temperature", "Temperature", "0 is greedy (the same answer every time); higher is more varied"),
    ("top_p", "Top-p", "keep the most likely tokens adding up to this (0–1]; 1 keeps all"),
    ("top_k", "Top-k", "keep only this many of the most likely tokens; 0 keeps all"),
    ("min_p", "Min-p", "drop tokens less likely than this share of the likeliest (0–1); 0 keeps all"),
    ("repetition_penalty", "Repetition penalty", "above 1 discourages repeating words; 1 is off"),
    ("max_tokens", "Max tokens", "the longest answer, in tokens"),
    ("seed", "Seed", "a whole number for reproducible sampling; empty for a fresh seed each answer"),
    ("thinking_budget", "Thinking budget", "the most tokens a reasoning model may think; empty for no cap"),
)
_WHOLE_NUMBERS = ("max_tokens", "seed", "top_k", "thinking_budget")
_MAY_BE_EMPTY = ("seed", "thinking_budget", *SAMPLING_DEFAULTS)

OVERFLOW_CHOICES = (
    ("keep the start and the latest turns (truncate middle)", "truncate-middle"),
    ("keep the latest turns (rolling window)", "rolling-window"),
    ("stop and say so", "stop"),
)
KV_BITS_CHOICES = (("full precision", "0"), ("8-bit", "8"), ("4-bit", "4"))

SOURCE_WORDS = {
    "conversation": "set here",
    "config.toml": "from config.toml",
    "model": "the model's own",
    "mlxchat default": "mlxchat's default",
}


def parse_settings(
    values: dict[str, str], system_prompt: str, base: ChatSettings, thinking: bool | None = None
) -> ChatSettings:
    """Settings from the form's text. An empty sampling field is None (not set). Raises `ValueError` naming the
    field and why."""
    parsed: dict = {"system_prompt": system_prompt}
    for name, label, _ in _NUMBERS:
        if name not in values:
            continue
        text = values[name].strip()
        if name in _MAY_BE_EMPTY and not text:
            parsed[name] = None
            continue
        try:
            parsed[name] = int(text) if name in _WHOLE_NUMBERS else float(text)
        except ValueError:
            raise ValueError(f"{label}: {text!r} is not a number") from None
    if "model" in values:
        parsed["model"] = values["model"].strip() or None
    if "overflow" in values:
        parsed["overflow"] = values["overflow"]
    if "kv_bits" in values:
        parsed["kv_bits"] = int(values["kv_bits"]) or None  # "0": full precision
    parsed["thinking"] = thinking if thinking is not None else base.thinking
    fields = {**base.to_dict(), **parsed}
    return ChatSettings(**fields)


def thinking_note(model: ModelInfo | None) -> str:
    """Why the thinking switch is off limits, or what it does for this model."""
    if model is None:
        return "applies to reasoning models (Qwen3, DeepSeek-R1, gpt-oss…) once one is loaded"
    if model.thinking is None:
        return f"{model.name} has no thinking format, so there is nothing to switch"
    if not model.thinking_switch:
        return f"{model.thinking}: its template has no off switch, so off ends the thinking at once"
    return f"{model.thinking}, switched by its chat template"


class SettingsScreen(ModalScreen[ChatSettings | None]):
    """Edit the open conversation's settings. ctrl+s saves, Esc cancels.

    `config` (config.toml's chat settings) and `model` (the loaded model) let the modal say where a value that is
    not set comes from, and whether the loaded model can think.
    """

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="settings_save"),
        Binding("escape", "cancel", "Cancel", id="settings_cancel"),
    ]

    def __init__(
        self, settings: ChatSettings, title: str, config: ChatSettings | None = None, model: ModelInfo | None = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.config = config
        self.model = model
        self._title = title

    def compose(self) -> ComposeResult:
        settings = self.settings
        with Vertical(id="settings-box"):
            yield Label(f"Settings of “{self._title}”", id="settings-title", markup=False)
            with VerticalScroll(id="settings-fields"):
                yield Label("System prompt", classes="settings-label")
                yield TextArea(settings.system_prompt, id="settings-system_prompt", soft_wrap=True, compact=True)
                for name, label, help_text in _NUMBERS:
                    value = getattr(settings, name)
                    yield Label(f"{label} — {help_text}", classes="settings-label", markup=False)
                    with Horizontal(classes="settings-row"):
                        yield Input("" if value is None else str(value), id=f"settings-{name}", compact=True)
                        if name in SAMPLING_DEFAULTS:
                            yield Label("", id=f"settings-{name}-source", classes="settings-source", markup=False)
                can_think = self.model is None or self.model.thinking is not None
                yield Checkbox(
                    "Think before answering (reasoning models)",
                    value=settings.thinking is not False,
                    id="settings-thinking",
                    compact=True,
                    disabled=not can_think,
                )
                yield Label(thinking_note(self.model), id="settings-thinking-note", classes="settings-source",
                            markup=False)
                yield Label("Model — a folder, a cached Hugging Face id or an imported name; empty for the demo model",
                            classes="settings-label", markup=False)
                yield Input(settings.model or "", id="settings-model", compact=True)
                yield Label("When the conversation outgrows the model's context", classes="settings-label")
                yield Select(
                    OVERFLOW_CHOICES, value=settings.overflow, allow_blank=False, id="settings-overflow", compact=True
                )
                yield Label("KV cache — quantized uses less memory at long contexts, decodes a little slower",
                            classes="settings-label", markup=False)
                yield Select(
                    KV_BITS_CHOICES, value=str(settings.kv_bits or 0), allow_blank=False, id="settings-kv_bits",
                    compact=True,
                )
            yield Label("", id="settings-problem", markup=False)
            with Horizontal(id="settings-buttons"):
                yield Button("Save", variant="primary", id="settings-save-button")
                yield Button("Cancel", id="settings-cancel-button")

    def on_mount(self) -> None:
        self.query_one("#settings-problem").display = False
        self.show_sources()
        self.query_one("#settings-system_prompt", TextArea).focus()

    @on(Input.Changed)
    def show_sources(self) -> None:
        """Beside each sampling field: the value that applies and where it comes from, as typed so far."""
        typed: dict = {}
        for name in SAMPLING_DEFAULTS:
            text = self.query_one(f"#settings-{name}", Input).value.strip()
            try:
                typed[name] = (int(text) if name == "top_k" else float(text)) if text else None
            except ValueError:
                typed[name] = None
        config = sampling_values(self.config) if self.config is not None else None
        model = dict(self.model.sampling_defaults) if self.model is not None else None
        for name, (value, source) in resolve_sampling(typed, config, model).items():
            words = "set here" if source == "conversation" else f"{value:g}, {SOURCE_WORDS[source]}"
            self.query_one(f"#settings-{name}-source", Label).update(words)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "settings-save-button":
            self.action_save()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        values = {name: self.query_one(f"#settings-{name}", Input).value for name, _, _ in _NUMBERS}
        values["model"] = self.query_one("#settings-model", Input).value
        values["overflow"] = str(self.query_one("#settings-overflow", Select).value)
        values["kv_bits"] = str(self.query_one("#settings-kv_bits", Select).value)
        system_prompt = self.query_one("#settings-system_prompt", TextArea).text
        checkbox = self.query_one("#settings-thinking", Checkbox)
        # An untouched switch keeps "the model's default" (None); a toggled one is the user's choice.
        thinking = None if checkbox.value == (self.settings.thinking is not False) else checkbox.value
        try:
            settings = parse_settings(values, system_prompt, self.settings, thinking)
        except ValueError as exc:
            problem = self.query_one("#settings-problem", Label)
            problem.update(f"Not saved: {exc}")
            problem.display = True
            return
        self.dismiss(settings)

    def action_cancel(self) -> None:
        self.dismiss(None)
