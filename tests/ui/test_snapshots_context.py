"""Snapshots of the long-conversation settings: what a reviewer should see is in each docstring."""

from __future__ import annotations

from textual.app import App
from textual.containers import VerticalScroll

from mlxchat.settings import ChatSettings
from mlxchat.ui.screens.settings import SettingsScreen


class SettingsHost(App):
    CSS_PATH = "../../mlxchat/ui/app.tcss"

    def on_mount(self) -> None:
        self.push_screen(SettingsScreen(ChatSettings(overflow="rolling-window", kv_bits=8), "Long chat"))


def test_settings_overflow_and_kv_cache(snap_compare):
    """You should see the bottom of the settings modal of "Long chat": the model field, then "When the conversation
    outgrows the model's context" set to "keep the latest turns (rolling window)", then "KV cache — quantized uses
    less memory…" set to "8-bit", and the Save and Cancel buttons."""

    async def scroll_to_end(pilot) -> None:
        await pilot.pause()
        pilot.app.screen.query_one("#settings-fields", VerticalScroll).scroll_end(animate=False)
        await pilot.pause()

    assert snap_compare(SettingsHost(), terminal_size=(100, 34), run_before=scroll_to_end)
