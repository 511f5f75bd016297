"""`kill -9` at a random moment: the database still opens and holds every message whose write returned."""

from __future__ import annotations

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

from mlxchat.store import History

WRITER = Path(__file__).with_name("durability_writer.py")


def _run_and_kill(data_dir: Path, image: Path, kill_after_s: float) -> tuple[str, dict[int, int]]:
    """Start the writer, SIGKILL it `kill_after_s` after its first save; return what it reported as saved."""
    process = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir), str(image)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    first_save = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line.split())
            if line.startswith("saved"):
                first_save.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert first_save.wait(30), f"the writer never saved a message: {lines}"
    time.sleep(kill_after_s)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    reader.join(10)
    assert process.returncode == -signal.SIGKILL
    conversation_id = next(words[1] for words in lines if words[0] == "conversation")
    saved = {int(words[1]): int(words[2]) for words in lines if words[0] == "saved" and len(words) == 3}
    return conversation_id, saved


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_returned_write_survives_kill_9(tmp_path, seed):
    kill_after_s = random.Random(seed).uniform(0.0, 0.6)
    image = tmp_path / "image.png"
    image.write_bytes(os.urandom(4096))
    data_dir = tmp_path / "data"

    conversation_id, saved = _run_and_kill(data_dir, image, kill_after_s)

    with sqlite3.connect(data_dir / "history.sqlite3") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    messages = {m.id: m for m in History(data_dir).get_conversation(conversation_id).messages}
    assert saved, "the writer reported no saves before the kill"
    missing = sorted(set(saved) - set(messages))
    assert not missing, f"messages reported saved but lost after kill -9 at {kill_after_s:.2f}s: {missing}"
    for message_id, n in saved.items():
        message = messages[message_id]
        assert message.text == f"message {n} " * 20
        if n % 7 == 0:
            assert message.attachments[0].path.read_bytes() == image.read_bytes()
