"""`mlxchat ask -c` / `--conversation ID`: continue a stored conversation from the command line, save the turn to
it, and resume from its saved prompt cache instead of reading the history again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlxchat.store import History


@pytest.fixture
def own_folders(tmp_path):
    return {"MLXCHAT_DATA_DIR": str(tmp_path / "data"), "MLXCHAT_CACHE_DIR": str(tmp_path / "cache")}


def stored_conversation(data_dir: str) -> str:
    with History(Path(data_dir)) as history:
        conversation = history.create_conversation()
        history.add_message(conversation.id, "user", "The capital of France is Paris.")
        history.add_message(conversation.id, "assistant", "Yes, Paris.")
        return conversation.id


def cached_tokens(stderr: str) -> int:
    found = re.search(r"\((\d+) cached\)", stderr)
    return int(found.group(1)) if found else 0


def test_ask_c_continues_the_last_conversation_and_saves_the_turn(run_mlxchat, tiny_model, own_folders):
    conversation_id = stored_conversation(own_folders["MLXCHAT_DATA_DIR"])
    args = ("--model", str(tiny_model), "--max-tokens", "5", "--temp", "0", "--stats")
    first = run_mlxchat("ask", "-c", "And Italy?", *args, env=own_folders)
    assert first.returncode == 0, first.stderr
    with History(Path(own_folders["MLXCHAT_DATA_DIR"])) as history:
        messages = history.get_conversation(conversation_id).messages
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[2].text == "And Italy?" and messages[3].text == first.stdout.strip()

    second = run_mlxchat("ask", "--conversation", conversation_id, "And Spain?", *args, env=own_folders)
    assert second.returncode == 0, second.stderr
    assert cached_tokens(second.stderr) > 0, second.stderr  # resumed from the cache saved by the first run


def test_ask_c_without_any_conversation_says_so(run_mlxchat, own_folders):
    result = run_mlxchat("ask", "-c", "Hello", env=own_folders)
    assert result.returncode == 2
    assert "no conversation to continue" in result.stderr


def test_ask_with_an_unknown_conversation_names_it(run_mlxchat, own_folders):
    result = run_mlxchat("ask", "--conversation", "nope", "Hello", env=own_folders)
    assert result.returncode == 2
    assert "'nope'" in result.stderr and "Traceback" not in result.stderr


def test_ask_f_reads_a_document_and_c_keeps_it_in_the_history(run_mlxchat, tiny_model, own_folders, tmp_path):
    conversation_id = stored_conversation(own_folders["MLXCHAT_DATA_DIR"])
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nThe capital of France is Paris.\n")
    args = ("--model", str(tiny_model), "--max-tokens", "3", "--temp", "0", "--json")
    plain = run_mlxchat("ask", "Summarise.", *args, env=own_folders)
    attached = run_mlxchat("ask", "-c", "-f", str(notes), "Summarise.", *args, env=own_folders)
    assert attached.returncode == 0, attached.stderr
    assert json.loads(attached.stdout)["usage"]["prompt_tokens"] > (
        json.loads(plain.stdout)["usage"]["prompt_tokens"]
    )
    with History(Path(own_folders["MLXCHAT_DATA_DIR"])) as history:
        question = history.get_conversation(conversation_id).messages[2]
    assert [path.suffix for path in question.document_paths] == [".md"] and question.image_paths == ()
    assert question.to_engine_message().documents == question.document_paths


def test_ask_f_refuses_a_binary_file_by_name(run_mlxchat, own_folders, tmp_path):
    blob = tmp_path / "data.bin"
    blob.write_bytes(b"\x00\x01\x02binary")
    result = run_mlxchat("ask", "-f", str(blob), "Read it.", env=own_folders)
    assert result.returncode == 2
    assert "data.bin: a binary file" in result.stderr and "Traceback" not in result.stderr
