"""Quitting the real `mlxchat` (in a pseudo-terminal) at the worst moments exits 0, with no abort and no traceback:
while the model loads, mid-answer (several times), and mid-answer about an image on a vision model.

On this platform a process whose MLX thread has run often aborts at exit ("terminate called without an active
exception", rc 134); stderr goes to the same terminal, so its text would show in what the app wrote.
"""

from __future__ import annotations

import pytest
from stress_files import tiny_settings_config

from mlxchat.bench.pty_app import CTRL_Q, ENTER, PtyApp, mlxchat_command

ABORT_MARKERS = ("terminate called", "Traceback (most recent call last)", "Fatal Python error", "Aborted")


def quit_and_check(app: PtyApp) -> None:
    app.send(CTRL_Q)
    rc = app.wait(60)
    text = app.text()
    assert rc == 0, f"exit code {rc}; the terminal ends with: {text[-1500:]!r}"
    tail = app.output[-20000:].decode("utf-8", "replace")
    assert not any(marker in tail for marker in ABORT_MARKERS), tail[-2000:]


def start(model, tmp_path, name: str) -> PtyApp:
    env = {
        "MLXCHAT_DATA_DIR": str(tmp_path / f"data-{name}"),
        "MLXCHAT_CONFIG_DIR": str(tiny_settings_config(tmp_path / f"config-{name}")),
    }
    return PtyApp(mlxchat_command("--model", str(model)), env=env).start()


@pytest.mark.parametrize("attempt", range(3))
def test_quit_mid_answer(tiny_model, tmp_path, attempt):
    with start(tiny_model, tmp_path, f"answer-{attempt}") as app:
        app.wait_for("● ready", 60)
        app.type("tell me everything")
        app.send(ENTER)
        app.wait_for("generating", 30)
        quit_and_check(app)


def test_quit_while_the_model_loads(tiny_vlm, tmp_path):
    with start(tiny_vlm, tmp_path, "loading") as app:
        app.wait_for("Ask anything", 30)
        quit_and_check(app)


def test_quit_mid_answer_about_an_image(tiny_vlm, bad_files, tmp_path):
    with start(tiny_vlm, tmp_path, "image") as app:
        app.wait_for("● ready", 60)
        app.type(f"/attach {bad_files['good']}")
        app.send(ENTER)
        app.wait_for("for the next message", 30)  # the pane lists it: the attach (read off the event loop) is done
        app.type("What is in this picture?")
        app.send(ENTER)
        app.wait_for("generating", 30)
        quit_and_check(app)


@pytest.mark.slow
def test_soak_quit_mid_answer_twenty_times(tiny_model, tmp_path):
    for attempt in range(20):
        test_quit_mid_answer(tiny_model, tmp_path, attempt)
