"""How the real chat screen ends when no key asks it to (issue 10, items 2 and 3): a signal, a terminal that goes
away, `kill -9`. Each is the real `mlxchat` process in a pseudo-terminal, mid-answer, with its own data folder;
the checks are the exit code, the terminal modes it leaves behind and the rows in the history database.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest
from stress_files import tiny_settings_config

from mlxchat.bench.pty_app import ENTER, PtyApp, mlxchat_command

ALT_SCREEN_OFF = b"\x1b[?1049l"
MOUSE_OFF = b"\x1b[?1000l"


def rows(database: Path) -> list[tuple[str, str, str]]:
    """The history's messages as another process sees them now: none while the app has not made the file, or has
    made it but not its tables yet (a clean-clone CI run read it in that moment: "no such table: messages")."""
    if not database.exists():
        return []
    with sqlite3.connect(database) as connection:
        try:
            return connection.execute("SELECT role, status, text FROM messages ORDER BY id").fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


def newest_id(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT MAX(id) FROM messages").fetchone()[0] or 0


def wait_for_rows(database: Path, condition, timeout_s: float, what: str) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        found = rows(database)
        if condition(found):
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} in the history within {timeout_s}s: {found}")
        time.sleep(0.05)


def start(tiny_model: Path, tmp_path: Path, **options) -> tuple[PtyApp, Path]:
    data = tmp_path / "data"
    env = {"MLXCHAT_DATA_DIR": str(data), "MLXCHAT_CONFIG_DIR": str(tiny_settings_config(tmp_path / "config"))}
    return PtyApp(mlxchat_command("--model", str(tiny_model)), env=env, **options), data / "history.sqlite3"


def ask_and_stream(app: PtyApp) -> None:
    app.wait_for("● ready", 60)
    app.type("tell me everything")
    app.send(ENTER)
    app.wait_for("generating", 30)


def assert_saved_stopped(database: Path) -> None:
    saved = rows(database)
    assert saved and saved[0][:2] == ("user", "complete") and saved[0][2] == "tell me everything", saved
    assert len(saved) == 2 and saved[1][:2] == ("assistant", "stopped") and saved[1][2], saved


@pytest.mark.parametrize(
    "signum, exit_code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)], ids=["TERM", "HUP", "INT"]
)
def test_a_signal_mid_answer_drains_saves_restores_the_terminal_and_exits_with_its_code(
    tiny_model, tmp_path, signum, exit_code
):
    app, database = start(tiny_model, tmp_path)
    with app:
        ask_and_stream(app)
        mark = app.mark()
        app.process.send_signal(signum)
        assert app.wait(60) == exit_code, app.text()[-1500:]
        after = app.output[mark:]
        assert ALT_SCREEN_OFF in after and MOUSE_OFF in after, "the terminal was left in the app's modes"
    assert_saved_stopped(database)


def test_a_terminal_lost_without_a_hang_up_ends_the_app_and_saves_the_answer(tiny_model, tmp_path):
    """The pty is not the app's controlling terminal, so closing it sends no SIGHUP: before, the app lived on,
    spinning on end-of-file, and never saved the answer."""
    app, database = start(tiny_model, tmp_path, controlling_terminal=False)
    with app:
        ask_and_stream(app)
        app.close_terminal()
        try:
            assert app.process.wait(60) == 129
        except Exception:
            raise AssertionError("the app outlived its terminal") from None
    assert_saved_stopped(database)


def test_kill_9_mid_answer_loses_at_most_the_last_seconds(tiny_model, tmp_path):
    """A streaming answer is saved every few seconds (as stopped), so even `kill -9` keeps most of it."""
    app, database = start(tiny_model, tmp_path)
    with app:
        ask_and_stream(app)
        saved = wait_for_rows(database, lambda found: len(found) == 2 and found[1][2], 20, "partial answer")
        app.kill(signal.SIGKILL)
    assert saved[1][:2] == ("assistant", "stopped")
    assert rows(database)[1][2].startswith(saved[1][2][:20])


F5 = "\x1b[15~"


def test_two_windows_on_one_conversation_never_delete_each_others_turns(tiny_model, tmp_path):
    """Window A regenerates its answer (F5) after window B answered in the same conversation: before, the
    delete-from-here took B's question and answer with it."""
    from mlxchat.settings import ChatSettings
    from mlxchat.store import History

    data = tmp_path / "data"
    history = History(data)
    conversation = history.create_conversation(
        settings=ChatSettings(model=str(tiny_model), temperature=0.0, max_tokens=6)
    )
    history.add_message(conversation.id, "user", "shared start")
    history.add_message(conversation.id, "assistant", "shared answer")
    history.close()
    env = {
        "MLXCHAT_DATA_DIR": str(data),
        "MLXCHAT_CONFIG_DIR": str(tiny_settings_config(tmp_path / "config", max_tokens=6)),
    }
    command = mlxchat_command("-c", "--model", str(tiny_model))
    with PtyApp(command, env=env) as window_a, PtyApp(command, env=env) as window_b:
        for window, question in ((window_a, "from A"), (window_b, "from B")):
            window.wait_for("● ready", 60)
            window.wait_for("shared answer", 10)
            mark = window.mark()
            window.type(question)
            window.send(ENTER)
            window.wait_for("TTFT", 60, after=mark)
            wait_for_rows(data / "history.sqlite3", lambda found, q=question: any(r[2] == q for r in found) and
                          found[-1][0] == "assistant", 20, f"the answer to {question!r}")
        before, before_id = rows(data / "history.sqlite3"), newest_id(data / "history.sqlite3")
        mark = window_a.mark()
        window_a.send(F5)
        window_a.wait_for("TTFT", 60, after=mark)
        wait_for_rows(data / "history.sqlite3", lambda found: newest_id(data / "history.sqlite3") > before_id, 20,
                      "A's new answer")
        after = rows(data / "history.sqlite3")
    texts = [text for _, _, text in after]
    assert texts[:2] == ["shared start", "shared answer"], after
    assert "from A" in texts and "from B" in texts, f"a window deleted the other's turns: {after}"
    assert texts[texts.index("from B") + 1] == before[5][2], "B's answer is untouched"
    assert after[-1][0] == "assistant" and len(after) == 6, "A's answer was replaced, nothing else"
