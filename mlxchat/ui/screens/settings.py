"""Provides the conversation settings modal: system prompt, sampling, seed and model, kept per conversation.

Values are checked by `ChatSettings` itself, so the modal and `config.toml` accept exactly the same things; a
value that does not fit is named under the form and nothing is saved until every field fits.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea

from mlxchat.settings import ChatSettings

_NUMBERS = (
    ("temperature", "Temperature", "0 is greedy (the same answer every time); higher is more varied"),
    ("top_p", "Top-p", "keep the most likely tokens adding up to this (0–1]; 1 keeps all"),
    ("max_tokens", "Max tokens", "the longest answer, in tokens"),
    ("seed", "Seed", "a whole number for reproducible sampling; empty for a fresh seed each answer"),
)


def parse_settings(values: dict[str, str], system_prompt: str, base: ChatSettings) -> ChatSettings:
    """Settings from the form's text. Raises `ValueError` naming the field and why."""
    parsed: dict = {"system_prompt": system_prompt}
    for name, label, _ in _NUMBERS:
        text = values[name].strip()
        if name == "seed" and not text:
            parsed[name] = None
            continue
        try:
            parsed[name] = int(text) if name in ("max_tokens", "seed") else float(text)
        except ValueError:
            raise ValueError(f"{label}: {text!r} is not a number") from None
    model = values["model"].strip()
    parsed["model"] = model or None
    fields = {**base.to_dict(), **parsed}
    return ChatSettings(**fields)


class SettingsScreen(ModalScreen[ChatSettings | None]):
    """Edit the open conversation's settings. ctrl+s saves, Esc cancels."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="settings_save"),
        Binding("escape", "cancel", "Cancel", id="settings_cancel"),
    ]

    def __init__(self, settings: ChatSettings, title: str) -> None:
        super().__init__()
        self.settings = settings
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
                    yield Input("" if value is None else str(value), id=f"settings-{name}", compact=True)
                yield Label("Model — a folder, a cached Hugging Face id or an imported name; empty for the demo model",
                            classes="settings-label", markup=False)
                yield Input(settings.model or "", id="settings-model", compact=True)
            yield Label("", id="settings-problem", markup=False)
            with Horizontal(id="settings-buttons"):
                yield Button("Save", variant="primary", id="settings-save-button")
                yield Button("Cancel", id="settings-cancel-button")

    def on_mount(self) -> None:
        self.query_one("#settings-problem").display = False
        self.query_one("#settings-system_prompt", TextArea).focus()

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
        system_prompt = self.query_one("#settings-system_prompt", TextArea).text
        try:
            settings = parse_settings(values, system_prompt, self.settings)
        except ValueError as exc:
            problem = self.query_one("#settings-problem", Label)
            problem.update(f"Not saved: {exc}")
            problem.display = True
            return
        self.dismiss(settings)

    def action_cancel(self) -> None:
        self.dismiss(None)
