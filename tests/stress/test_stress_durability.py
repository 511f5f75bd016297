"""`kill -9` mid-answer: the history database still opens and holds every message that had finished.

Two writers are killed: the real chat screen (`mlxchat` in a pseudo-terminal, tiny model, its own data folder),
and a chat on the real engine that saves each message as it ends (`stress_writer.py`), killed many times at
random moments: the store's durability under a real generation, which the screen relies on.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from stress_files import tiny_settings_config

from mlxchat.bench.pty_app import ENTER, ESCAPE, PtyApp, mlxchat_command
from mlxchat.store import History

WRITER = Path(__file__).with_name("stress_writer.py")


def integrity(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_kill_9_of_the_chat_screen_mid_answer(tiny_model, tmp_path):
    data = tmp_path / "data"
    env = {"MLXCHAT_DATA_DIR": str(data), "MLXCHAT_CONFIG_DIR": str(tiny_settings_config(tmp_path / "config"))}
    with PtyApp(mlxchat_command("--model", str(tiny_model)), env=env) as app:
        app.wait_for("● ready", 60)
        app.type("first question")
        app.send(ENTER)
        app.wait_for("generating", 30)
        app.send(ESCAPE)  # the first answer ends (stopped), so it is a finished message
        app.wait_for("stopped after", 30)
        mark = app.mark()
        app.type("second question")
        app.send(ENTER)
        app.wait_for("generating", 30, after=mark)
        time.sleep(random.Random(9).uniform(0.05, 0.4))  # seeded: the same moment every run
        app.kill(signal.SIGKILL)
        assert app.process.returncode == -signal.SIGKILL
    database = data / "history.sqlite3"
    assert database.exists(), "the chat screen saved nothing before the kill"
    assert integrity(database) == "ok"
    conversation = History(data).last_conversation()
    assert conversation is not None, "the conversation with a finished answer is gone"
    texts = [(m.role, m.text, m.status) for m in conversation.messages]
    assert texts[0][:2] == ("user", "first question"), texts
    assert texts[1][0] == "assistant" and texts[1][2] == "stopped" and texts[1][1], texts
    assert ("user", "second question") in [t[:2] for t in texts], texts


def run_writer_and_kill(model: Path, data: Path, kill_at_answer: int, delay_s: float) -> tuple[str, dict[int, str]]:
    process = subprocess.Popen(
        [sys.executable, str(WRITER), str(model), str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[list[str]] = []
    streaming = threading.Semaphore(0)

    def read() -> None:
        for line in process.stdout:
            lines.append(line.split())
            if line.startswith("streaming"):
                streaming.release()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for _ in range(kill_at_answer):
        if not streaming.acquire(timeout=60):
            process.kill()
            raise AssertionError(f"the writer stopped answering: {lines[-3:]} {process.stderr.read()[-2000:]}")
    time.sleep(delay_s)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    reader.join(10)
    assert process.returncode == -signal.SIGKILL, process.stderr.read()[-2000:]
    conversation_id = next(words[1] for words in lines if words[0] == "conversation")
    saved = {int(words[1]): words[2] for words in lines if words[0] == "saved" and len(words) == 4}
    return conversation_id, saved


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_of_a_chat_that_saves_as_it_answers(tiny_model, tmp_path, seed):
    check_kill_9_of_a_saving_chat(tiny_model, tmp_path, seed)


def check_kill_9_of_a_saving_chat(tiny_model: Path, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = tmp_path / "data"
    conversation_id, saved = run_writer_and_kill(tiny_model, data, kill_at_answer=rng.randint(2, 4), delay_s=rng.uniform(0, 0.3))
    assert integrity(data / "history.sqlite3") == "ok"
    messages = {m.id: m for m in History(data).get_conversation(conversation_id).messages}
    missing = sorted(set(saved) - set(messages))
    assert not missing, f"messages saved before the kill are gone: {missing}"
    for message_id, digest in saved.items():
        assert hashlib.sha1(messages[message_id].text.encode()).hexdigest() == digest, message_id
    assert len(saved) >= 3, "the kill came before any finished answer was saved"
