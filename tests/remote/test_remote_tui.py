"""The chat screen on a remote engine: the same app, only its engine factory differs."""

from __future__ import annotations

import time

from remote_fakes import stream

from mlxchat.engine.remote import remote_engine_factory
from mlxchat.settings import ChatSettings
from mlxchat.store import History
from mlxchat.ui.app import make_app


async def until(pilot, condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


async def test_the_chat_screen_streams_an_answer_from_a_remote_server(fake_server, tmp_path):
    fake_server.chat = stream("Paris", " is the capital.")
    app = make_app(
        engine_factory=remote_engine_factory(fake_server.url, None, "model-b"),
        model="model-b",
        history=History(tmp_path),
        chat_settings=ChatSettings(temperature=0.0, model="model-b"),
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.chat.model is not None and not app.chat.busy)
        assert app.chat.model.kind == "remote"
        await pilot.press(*"Capital of France?", "enter")
        await until(pilot, lambda: app.chat.session.turns and app.chat.session.turns[-1].status == "complete"
                    and app.chat.session.turns[-1].role == "assistant")
        assert app.chat.session.turns[-1].text == "Paris is the capital."
        assert fake_server.chats[-1].body["messages"][-1]["content"] == "Capital of France?"
