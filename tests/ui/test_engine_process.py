"""The chat screen on the engine as `mlxchat` runs it, in a child process (`process_engine_factory`, engine/process.py):
real MLX in the child, the tiny random model. What only the process can bring to the screen: the child dying
mid-answer (a GPU abort, the OOM killer) must end that answer with words that say what happened, keep the chat
open and what was written, and make the next send say to restart; quitting must end the child too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
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


QUIT = textwrap.dedent(
    """
    import sys, time
    from functools import partial
    from mlxchat.engine import Engine
    from mlxchat.engine.process import process_engine_factory
    from mlxchat.settings import ChatSettings
    from mlxchat.ui.app import make_app

    model = sys.argv[1]
    app = make_app(model=model, engine_factory=process_engine_factory(partial(Engine)),
                   chat_settings=ChatSettings(temperature=0.0, max_tokens=4000, model=model))

    async def until(pilot, condition, timeout_s=60.0):
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            await pilot.pause(0.02)

    async def user(pilot):
        await until(pilot, lambda: app.chat.model is not None and not app.chat.busy)
        await pilot.press(*"hello", "enter")
        await until(pilot, lambda: app.chat.status.phase == "generating" and app.chat.status.tokens >= 10)
        await pilot.press("ctrl+q")

    code = app.run(headless=True, auto_pilot=user, size=(100, 30))
    child = app.engine.process
    print("exit", code, app.chat.session.turns[-1].status, child.poll(), flush=True)
    sys.exit(code or 0)
    """
)


def test_quit_mid_answer_ends_the_engine_process_too(tiny_model):
    """Ctrl+Q while the child decodes: the app drains it, saves the answer as stopped, exits 0, and the child has
    exited (code 0) by then: no engine left holding the GPU after the window is gone."""
    result = subprocess.run([sys.executable, "-c", QUIT, str(tiny_model)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "exit 0 stopped 0" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
