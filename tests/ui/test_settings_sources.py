"""The settings modal (F3) says where each sampling value comes from, and why thinking cannot be switched on a model
without a thinking format."""

from __future__ import annotations

from textual.app import App
from textual.widgets import Checkbox, Input, Label

from mlxchat.engine.events import ModelInfo
from mlxchat.models.demo import DEMO_SAMPLING
from mlxchat.settings import ChatSettings
from mlxchat.ui.screens.settings import SettingsScreen

DEMO = ModelInfo("SmolLM2", "/m", "text", "4-bit", 1, 8192, sampling_defaults=tuple(DEMO_SAMPLING.items()))
QWEN = ModelInfo("Qwen3", "/q", "text", "4-bit", 1, 8192, thinking="<think> tags", thinking_switch=True)


class Host(App):
    def __init__(self, screen: SettingsScreen) -> None:
        super().__init__()
        self.modal = screen
        self.result: ChatSettings | None = None

    def on_mount(self) -> None:
        self.push_screen(self.modal, lambda result: setattr(self, "result", result))


def source(app: Host, name: str) -> str:
    return str(app.modal.query_one(f"#settings-{name}-source", Label).content)


async def test_each_sampling_value_shows_its_source_by_precedence():
    config = ChatSettings(top_p=0.5, top_k=40)
    conversation = ChatSettings(top_k=40, min_p=0.05)
    app = Host(SettingsScreen(conversation, "Chat", config=config, model=DEMO))
    async with app.run_test(size=(110, 60)) as pilot:
        await pilot.pause()
        assert source(app, "temperature") == f"{DEMO_SAMPLING['temperature']:g}, the model's own"
        assert source(app, "top_p") == "0.5, from config.toml"
        assert source(app, "top_k") == "40, from config.toml", "a copied config value is still the file's"
        assert source(app, "min_p") == "set here"
        assert source(app, "repetition_penalty") == "1, mlxchat's default"
        app.modal.query_one("#settings-temperature", Input).value = "0.9"
        await pilot.pause()
        assert source(app, "temperature") == "set here"


async def test_thinking_is_disabled_with_a_reason_on_a_model_without_a_thinking_format():
    app = Host(SettingsScreen(ChatSettings(), "Chat", model=DEMO))
    async with app.run_test(size=(110, 60)) as pilot:
        await pilot.pause()
        assert app.modal.query_one("#settings-thinking", Checkbox).disabled
        note = str(app.modal.query_one("#settings-thinking-note", Label).content)
        assert note == "SmolLM2 has no thinking format, so there is nothing to switch"


async def test_switching_thinking_off_and_setting_a_budget_are_saved():
    app = Host(SettingsScreen(ChatSettings(), "Chat", model=QWEN))
    async with app.run_test(size=(110, 60)) as pilot:
        await pilot.pause()
        checkbox = app.modal.query_one("#settings-thinking", Checkbox)
        assert not checkbox.disabled and checkbox.value
        checkbox.value = False
        app.modal.query_one("#settings-thinking_budget", Input).value = "256"
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert (app.result.thinking, app.result.thinking_budget, app.result.temperature) == (False, 256, None)


async def test_the_overflow_policy_and_kv_cache_bits_are_chosen_and_saved():
    from textual.widgets import Select

    app = Host(SettingsScreen(ChatSettings(), "Chat", model=DEMO))
    async with app.run_test(size=(110, 60)) as pilot:
        await pilot.pause()
        assert app.modal.query_one("#settings-overflow", Select).value == "truncate-middle"
        assert app.modal.query_one("#settings-kv_bits", Select).value == "0"
        app.modal.query_one("#settings-overflow", Select).value = "rolling-window"
        app.modal.query_one("#settings-kv_bits", Select).value = "8"
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert (app.result.overflow, app.result.kv_bits) == ("rolling-window", 8)
