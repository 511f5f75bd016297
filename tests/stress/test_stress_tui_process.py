"""Bad surroundings for the real `mlxchat` chat screen (a process in a pseudo-terminal): a config file with syntax
errors, a read-only or full data folder. Each is named on screen, the chat still answers, and Ctrl+Q exits 0
(after offering to export what the history could not take).
"""

from __future__ import annotations

import pytest
from stress_files import tiny_settings_config

from mlxchat.bench.pty_app import CTRL_Q, ENTER, PtyApp, mlxchat_command


def chat_then_quit(app: PtyApp, *, notice: str, unsaved: bool = False) -> None:
    """Wait for the model, send a question, see `notice` (at start or once the question is sent) and the
    finished answer, then quit (`unsaved`: the quit names what was not saved; `e` exports it)."""
    app.wait_for("● ready", 60)
    mark = app.mark()
    app.type("hello there")
    app.send(ENTER)
    app.wait_for("TTFT", 60, after=mark)  # the answer's footer: it finished and is shown
    app.wait_for(notice, 10)
    mark = app.mark()
    app.send(CTRL_Q)
    if unsaved:
        app.wait_for("could not be saved to the history", 30, after=mark)
        app.send("e")
    assert app.wait(60) == 0, app.text()[-1500:]


def test_a_config_file_with_syntax_errors_is_named_and_the_chat_works(tiny_model, tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text('theme = "nord\n[chat]\nmax_tokens = = 40\n')
    env = {"MLXCHAT_CONFIG_DIR": str(config), "MLXCHAT_DATA_DIR": str(tmp_path / "data")}
    with PtyApp(mlxchat_command("--model", str(tiny_model)), env=env) as app:
        chat_then_quit(app, notice="config.toml")


@pytest.mark.parametrize("data", ["read_only_data_dir", "full_data_dir"])
def test_a_data_folder_that_takes_no_writes_is_named_and_the_chat_works(tiny_model, tmp_path, request, data):
    folder = request.getfixturevalue(data)
    config = tiny_settings_config(tmp_path / "config", max_tokens=40)
    home = tmp_path / "home"
    home.mkdir()
    env = {"MLXCHAT_CONFIG_DIR": str(config), "MLXCHAT_DATA_DIR": str(folder), "HOME": str(home)}
    with PtyApp(mlxchat_command("--model", str(tiny_model)), env=env, columns=140) as app:
        chat_then_quit(app, notice="History not saved", unsaved=True)
        app.wait_for("the conversation is in", 10)
    (exported,) = home.glob("unsaved-*.md")
    assert "hello there" in exported.read_text()
