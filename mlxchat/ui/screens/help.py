"""Provides the F1 help screen: every action with the keys that run it now (after the user's keymap)."""

from __future__ import annotations

from typing import Mapping

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..keys import ACTIONS, keys_for

_SCOPES = {"prompt": "In the prompt", "chat": "Conversation", "app": "Anywhere"}


def help_table(keymap: Mapping[str, str]) -> Table:
    table = Table(box=None, expand=True, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("Keys", no_wrap=True)
    table.add_column("Action", no_wrap=True)
    table.add_column("What it does", ratio=1)
    for scope, heading in _SCOPES.items():
        table.add_row(f"[b]{heading}[/b]", "", "")
        for spec in ACTIONS:
            if spec.scope == scope:
                table.add_row(keys_for(spec, keymap), spec.title, spec.help)
        table.add_row("", "", "")
    return table


class HelpScreen(ModalScreen[None]):
    """Every key, grouped by where it works. Esc, F1 or q closes it."""

    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="close_help")]

    def __init__(self, keymap: Mapping[str, str]) -> None:
        super().__init__()
        self._keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Label("mlxchat keys", id="help-title")
            yield Static(help_table(self._keymap), id="help-table")
            yield Label(
                "Drop an image or a document on the window, or paste its path, to attach it; /attach PATH works too. "
                "Every action is also in the command palette (ctrl+p).",
                id="help-footer",
                markup=False,
            )

    def action_dismiss(self, result=None) -> None:
        self.dismiss(None)
