"""Engine events that arrive before the chat screen has finished sending must still reach the turn they belong to.

`ChatScreen.send` submitted the request, then awaited two mounts (the user's turn, then the answer's view) before it
recorded the request as active; engine events are handled meanwhile on the app's own message pump. With a fast
model, the answer's first text, or the whole answer and its `Finished`, can come in that window. (Found here with
a one-token answer: the turn never ended and the screen stayed busy for good; fixed in 5151589 by tracking the
request before the first await. These tests keep it fixed.)
"""

from __future__ import annotations

import pytest
from stress_app import SIZE, RealApps, loaded, send, until

from mlxchat.engine import Finished


@pytest.fixture
def apps():
    factory = RealApps()
    yield factory
    factory.close()


async def test_a_one_token_answer_ends_its_turn(apps, tiny_model):
    app = apps(tiny_model, max_tokens=1)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for attempt in range(5):
            app.chat.prompt.clear()
            await send(pilot, f"hello {attempt}")
            await until(pilot, lambda: not app.chat.busy, 10, f"answer {attempt} to end (the engine is idle)")
            finished = [e for e in apps.events if isinstance(e, Finished)][-1]
            answer = app.chat.session.turns[-1]
            assert (answer.status, answer.text) == ("complete", finished.text)


async def test_the_answer_on_screen_is_the_engines_whole_text(apps, tiny_model):
    """Longer answers: the first text delta comes ~30 ms after the request, usually after the view is mounted."""
    app = apps(tiny_model, max_tokens=60)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for attempt in range(5):
            app.chat.prompt.clear()
            await send(pilot, f"tell me more {attempt}")
            await until(pilot, lambda: not app.chat.busy, 30, f"answer {attempt}")
            finished = [e for e in apps.events if isinstance(e, Finished)][-1]
            answer = app.chat.session.turns[-1]
            assert answer.text == finished.text, f"answer {attempt}: the screen lost the start of the answer"
