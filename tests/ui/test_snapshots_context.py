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


class StatusHost(App):
    """The status pane alone, showing a fixed status."""

    CSS_PATH = "../../mlxchat/ui/app.tcss"

    def __init__(self, status) -> None:
        super().__init__()
        self.shown = status

    def compose(self):
        from mlxchat.ui.widgets.status import StatusBar

        yield StatusBar(animate=False, clock=lambda: 0.0)

    def on_mount(self) -> None:
        from mlxchat.ui.widgets.status import StatusBar

        self.query_one(StatusBar).status = self.shown


def status_of(used: int, out_of_view: int = 0, detail: str = ""):
    from mlxchat.ui.engine_status import EngineStatus

    return EngineStatus(
        phase="ready",
        detail=detail,
        model_name="SmolLM2-135M",
        memory_bytes=150 * 2**20,
        context_used=used,
        context_size=8192,
        turns_out_of_view=out_of_view,
    )


def test_status_context_filling(snap_compare):
    """You should see "● ready" on the left and, on the right, "SmolLM2-135M · mem 157.3 MB · ctx 6800/8192 83%"
    with the context part in the warning colour (yellow)."""
    assert snap_compare(StatusHost(status_of(6800)), terminal_size=(100, 3))


def test_status_context_full_with_turns_out_of_view(snap_compare):
    """You should see "● ready  reached the context limit" on the left and, on the right, "… ctx 7900/8192 96% ·
    6 messages out of view" in the error colour (red, bold)."""
    status = status_of(7900, out_of_view=6, detail="reached the context limit")
    assert snap_compare(StatusHost(status), terminal_size=(120, 3))
