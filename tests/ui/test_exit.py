"""Quitting while an answer is generating, in a real process: the app drains, exits 0, and the interpreter
does not abort on the way out (NOTES-MLX: a finished MLX thread can abort the process at exit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from mlxchat.settings import ChatSettings
    from mlxchat.ui.app import make_app

    model, where = sys.argv[1], sys.argv[2]
    options = {}
    if where == "process":  # as `mlxchat` runs it: the engine in a child process
        from functools import partial
        from mlxchat.engine import Engine
        from mlxchat.engine.process import process_engine_factory

        options["engine_factory"] = process_engine_factory(partial(Engine))
    app = make_app(model=model, chat_settings=ChatSettings(temperature=0.0, max_tokens=4000, model=model), **options)

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
    child = getattr(app.engine, "process", None)
    print("exit", code, app.chat.session.turns[-1].status, app.engine.state().phase, child and child.poll(), flush=True)
    sys.exit(code or 0)
    """
)


@pytest.mark.parametrize("where", ["thread", "process"])
def test_quit_during_generation_exits_cleanly(tiny_model, where):
    """With the engine on a thread in the app's process, or in its own (as `mlxchat` runs it): there the child has
    exited too, with code 0, by the time the app has: no engine left holding the GPU after the window is gone."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_model), where], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    child = "0" if where == "process" else "None"
    assert f"exit 0 stopped closed {child}" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    assert "terminate called" not in result.stderr
