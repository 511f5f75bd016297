"""The status pane keeps moving while a thinking answer streams in a conversation the reader has left (its view
hidden, its thinking block still drawing and telling the pane, 61f1825), and while the server is silent there,
its "waiting for … · N s" counts on (8d46c58)."""

from __future__ import annotations

import staged
from mlxchat.engine import Silence, ThinkingDelta

from conftest import SIZE, until

QWEN_INFO = staged.THINKING_INFO


def moving_clock(app, condition):
    """`condition`, with the app's test clock moved on 10 ms each time it is asked, as a real clock moves while the
    test waits. A new count is drawn at the spinner's next turn, and the spinner turns only as the clock moves: a
    frozen clock left the count undrawn when the hidden thinking block's clock had turned the spinner just before
    the `Silence` arrived (a CI run waited 30 s for it)."""

    def check() -> bool:
        app.test_clock[0] += 0.01
        return condition()

    return check


async def test_a_silent_server_thinking_out_of_sight_keeps_the_pane_counting(staged_app):
    app, engine = staged_app(animate=True)
    async with app.run_test(size=SIZE) as pilot:
        rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO, "France trivia")
        answering = app.chat.session
        engine.emit(ThinkingDelta(rid, "Let me think.\n", 3))
        bar = app.chat.status_bar
        await until(pilot, lambda: "thinking" in bar.phase_text(), what="thinking")
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.chat.session is not answering, what="the new chat")
        detail = bar.query_one("#status-detail")
        for seconds in (1.0, 2.0, 3.0):
            app.test_clock[0] += 1.0  # the app's clock, which the test sets, moves on as a real one would
            engine.emit(Silence(rid, seconds))
            text = f"waiting for the server · {int(seconds)} s"
            await until(pilot, moving_clock(app, lambda: str(detail.content).endswith(text)), what=f"{text!r} drawn")
        phase = bar.query_one("#status-phase")
        shown = {str(phase.content)}
        for _ in range(20):
            app.test_clock[0] += 0.05
            await pilot.pause(0.05)
            shown.add(str(phase.content))
        assert len(shown) >= 3 and all("answering in" in text for text in shown), shown
