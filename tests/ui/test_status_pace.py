"""The status pane draws a new phase at once, and a streaming answer's token count with its spinner's tick (10
times a second), not after every text event."""

from __future__ import annotations

from dataclasses import replace

from textual.app import App, ComposeResult

from mlxchat.ui.engine_status import EngineStatus
from mlxchat.ui.widgets.status import StatusBar

from conftest import until


class StatusApp(App):
    def compose(self) -> ComposeResult:
        yield StatusBar(animate=True)


def detail(app) -> str:
    return str(app.query_one("#status-detail").content)


async def test_a_new_token_count_waits_for_the_spinner_and_a_new_phase_does_not():
    app = StatusApp()
    async with app.run_test(size=(80, 3)) as pilot:
        bar = app.query_one(StatusBar)
        generating = EngineStatus(phase="generating", tokens=10, tokens_per_s=50.0)
        bar.status = generating
        assert detail(app) == " 10 tokens · 50.0 tok/s", "a new phase is drawn at once"
        assert bar.has_class("-generating")
        bar.status = replace(generating, tokens=20)
        assert detail(app) == " 10 tokens · 50.0 tok/s", "the count waits for the tick"
        await until(pilot, lambda: detail(app) == " 20 tokens · 50.0 tok/s", timeout_s=2, what="the tick")
        bar.status = EngineStatus(phase="ready")
        assert str(app.query_one("#status-phase").content) == " ● ready "
        assert bar.has_class("-ready") and not bar.has_class("-generating")
