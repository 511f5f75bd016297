"""The summary that carries a conversation into a new one is a plain chat request, so it runs through the remote
engine too: `mlxchat ask -c --summarize --endpoint URL` against a fake OpenAI-compatible server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from remote_fakes import stream

from mlxchat.engine.summary import SUMMARY_INSTRUCTION, continued_title, summary_intro
from mlxchat.settings import ChatSettings
from mlxchat.store import History

SUMMARY = "- Four days in Lisbon, 900 euros."
ANSWER = "The Gulbenkian."


def test_ask_summarize_runs_through_a_remote_server(fake_server, tmp_path):
    summary_stream, answer_stream = stream(SUMMARY), stream(ANSWER)

    def answer_by_request(handler) -> None:
        last = handler.fake.chats[-1].body["messages"][-1]["content"]
        (summary_stream if last == SUMMARY_INSTRUCTION else answer_stream)(handler)

    fake_server.chat = answer_by_request
    data = tmp_path / "data"
    with History(data) as history:
        source = history.create_conversation("Lisbon trip", settings=ChatSettings(model="fake/model-a"))
        history.add_message(source.id, "user", "Plan four days in Lisbon, 900 euros.")
        history.add_message(source.id, "assistant", "Day 1: Alfama.")
    env = {**os.environ, "MLXCHAT_DATA_DIR": str(data), "MLXCHAT_CACHE_DIR": str(tmp_path / "cache"),
           "MLXCHAT_CONFIG_DIR": str(tmp_path / "config")}
    result = subprocess.run(
        [sys.executable, "-m", "mlxchat", "ask", "-c", "--summarize", "Which museum first?",
         "--endpoint", fake_server.url],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n", "the summary is saved, not printed"
    summary_body, answer_body = (request.body["messages"] for request in fake_server.chats)
    assert summary_body[-1]["content"] == SUMMARY_INSTRUCTION and len(summary_body) == 3
    assert [message["content"] for message in answer_body] == [
        summary_intro("Lisbon trip", source.id), SUMMARY, "Which museum first?"
    ]
    with History(data) as history:
        (new,) = [summary for summary in history.list_conversations() if summary.id != source.id]
        assert new.title == continued_title("Lisbon trip")
        assert len(history.get_conversation(source.id).messages) == 2
        assert [m.text for m in history.get_conversation(new.id).messages] == [
            summary_intro("Lisbon trip", source.id), SUMMARY, "Which museum first?", ANSWER
        ]
