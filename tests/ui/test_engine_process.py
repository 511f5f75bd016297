"""The chat screen on the engine as `mlxchat` runs it, in a child process (`process_engine_factory`, engine/process.py):
real MLX in the child, the tiny random model. What only the process can bring to the screen: the child dying
mid-answer (a GPU abort, the OOM killer) must end that answer with words that say what happened, keep the chat
open and what was written, and make the next send say to restart. (Quitting ends the child too:
tests/ui/test_exit.py.)"""

from __future__ import annotations

import os
import signal
from functools import partial

from mlxchat.engine import Engine
from mlxchat.engine.process import ProcessEngine, process_engine_factory
from mlxchat.settings import ChatSettings
from mlxchat.ui.app import make_app

from conftest import SIZE, generating, idle, loaded, until


async def test_the_engine_process_dying_mid_answer_ends_the_answer_and_keeps_the_chat(tiny_model, tmp_path):
    """SIGKILL to the child while it decodes: the answer ends as an error, its text so far kept, the status names
    the process, how it stopped and its log; the next send says to restart and keeps the prompt; no traceback."""
    log = tmp_path / "engine.log"
    settings = ChatSettings(temperature=0.0, max_tokens=100_000, model=str(tiny_model))
    app = make_app(
        model=str(tiny_model),
        engine_factory=process_engine_factory(partial(Engine), log_path=log),
        chat_settings=settings,
    )
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.engine, ProcessEngine)
            await loaded(pilot)
            await pilot.press(*"hello", "enter")
            await generating(pilot, tokens=10)
            os.kill(app.engine.process.pid, signal.SIGKILL)
            await idle(pilot)
            turn = app.chat.session.turns[-1]
            assert turn.status == "error", turn.status
            assert turn.text, "what was written before the child died is kept"
            said = app.chat.status.detail
            assert "engine process stopped unexpectedly" in said and "SIGKILL" in said and str(log) in said, said
            await pilot.press(*"again", "enter")
            notice = app.chat.notice
            await until(pilot, lambda: "Restart mlxchat" in str(notice.content), what="the restart notice")
            assert "engine process stopped unexpectedly" in str(notice.content)
            assert app.chat.prompt.text == "again", "the refused prompt is kept"
            assert app.is_running
    finally:
        app.engine.close(timeout_s=10)
