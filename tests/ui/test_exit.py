"""Quitting while an answer is generating, in a real process: the app drains, exits 0, and the interpreter
does not abort on the way out (NOTES-MLX: a finished MLX thread can abort the process at exit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from mlxchat.settings import ChatSettings
    from mlxchat.ui.app import make_app

    model = sys.argv[1]
    app = make_app(model=model, chat_settings=ChatSettings(temperature=0.0, max_tokens=4000, model=model))

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
    print("exit", code, app.chat.session.turns[-1].status, app.engine.state().phase, flush=True)
    sys.exit(code or 0)
    """
)


def test_quit_during_generation_exits_cleanly(tiny_model):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_model)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "exit 0 stopped closed" in result.stdout
    assert "terminate called" not in result.stderr
