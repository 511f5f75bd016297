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


class FrozenClock:
    """The bar's clock, moved by the test: the spinner's timer still fires, but it reads this time."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ClockedStatusApp(App):
    def __init__(self, clock: FrozenClock) -> None:
        super().__init__()
        self.clock = clock

    def compose(self) -> ComposeResult:
        yield StatusBar(clock=self.clock, animate=True)


async def test_the_answers_update_turns_the_spinner_and_draws_the_count_in_its_frame():
    clock = FrozenClock()
    app = ClockedStatusApp(clock)
    async with app.run_test(size=(80, 3)):
        bar = app.query_one(StatusBar)
        generating = EngineStatus(phase="generating", tokens=10, tokens_per_s=50.0)
        bar.status = generating
        bar.status = replace(generating, tokens=20)
        turned = bar.frame
        bar.answer_drawn()
        assert detail(app) == " 20 tokens · 50.0 tok/s", "drawn with the answer's update, not on the timer's tick"
        assert bar.frame == turned + 1
        bar.status = replace(generating, tokens=30)
        bar.answer_drawn()
        assert bar.frame == turned + 1, "at most one turn a tick_s"
        bar.tick()
        assert bar.frame == turned + 1, "the timer gives way while the answer turns the spinner"
        clock.now += StatusBar.give_way_s + 0.01
        bar.tick()
        assert bar.frame > turned + 1, "the timer turns it again once the answer stops updating"
        assert detail(app) == " 30 tokens · 50.0 tok/s"


async def test_a_status_that_changes_nothing_visible_costs_no_frame():
    from mlxchat.bench.frames import FrameRecorder

    clock = FrozenClock()
    app = ClockedStatusApp(clock)
    async with app.run_test(size=(80, 3)) as pilot:
        bar = app.query_one(StatusBar)
        generating = EngineStatus(phase="generating", tokens=10, tokens_per_s=50.0)
        bar.status = generating
        bar.answer_drawn()  # the answer turns the spinner from here: the frozen clock keeps the timer's ticks away
        await pilot.pause()
        recorder = FrameRecorder(app)
        for tokens in range(11, 60):
            bar.status = replace(generating, tokens=tokens)  # waits for the spinner's next turn
        await pilot.pause()
        recorder.close()
        assert recorder.frames == []


async def test_a_streaming_answer_tells_the_screen_each_time_it_updates():
    from textual import on

    from mlxchat.ui.chat_model import Turn
    from mlxchat.ui.widgets.message import MessageView

    class AnswerApp(App):
        def __init__(self) -> None:
            super().__init__()
            self.drawn = 0

        def compose(self) -> ComposeResult:
            yield MessageView(Turn("assistant", "", status="streaming"), label="assistant")

        @on(MessageView.AnswerDrawn)
        def count(self) -> None:
            self.drawn += 1

    app = AnswerApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(MessageView)
        view.turn.text += "Hello there."
        await view.sync()
        await until(pilot, lambda: app.drawn >= 1, timeout_s=5, what="the first update")
        view.turn.text += " More words."
        await view.end_stream()
        await until(pilot, lambda: app.drawn >= 2, timeout_s=5, what="the last update")


async def test_the_chat_screen_turns_the_status_on_each_frame_of_the_answer(staged_app, monkeypatch):
    """Through the real `ChatScreen`: the streaming answer's updates reach its status bar
    (`ChatScreen.on_message_view_answer_drawn`, a handler matched by its name only)."""
    import staged

    from conftest import SIZE

    drawn: list[StatusBar] = []
    original = StatusBar.answer_drawn

    def counting(bar: StatusBar, **kwargs) -> None:
        drawn.append(bar)
        original(bar, **kwargs)

    monkeypatch.setattr(StatusBar, "answer_drawn", counting)
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot)
        assert not drawn, "no answer drawn yet"
        staged.play_answer_start(engine, "Hello there.", 3)
        await until(pilot, lambda: len(drawn) >= 1, timeout_s=5, what="the answer's first frame")
        staged.play_answer_end(engine, "Hello there. More words.", 6)
        await until(pilot, lambda: not app.chat.busy, timeout_s=5, what="the finish")
        await until(pilot, lambda: len(drawn) >= 2, timeout_s=5, what="the answer's last frame")
        assert all(bar is app.chat.status_bar for bar in drawn)
