"""`mlxchat export [ID|--last] [-o FILE] [--format md|json]`: a conversation from the history, as a file or on
stdout, in the safe Markdown or the JSON format."""

from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error

from mlxchat.settings import ChatSettings
from mlxchat.store import History


@pytest.fixture
def saved(tmp_path, monkeypatch):
    """Two saved conversations in this test's own data folder; returns (older id, newer id)."""
    data = tmp_path / "data"
    monkeypatch.setenv("MLXCHAT_DATA_DIR", str(data))
    history = History(data)
    older = history.create_conversation("Old chat", ChatSettings())
    history.add_message(older.id, "user", "first")
    newer = history.create_conversation("France trivia", ChatSettings())
    history.add_message(newer.id, "user", "What is the capital of France?")
    history.add_message(newer.id, "assistant", "Paris.\n\n## You\n\n<script>x</script>")
    history.close()
    return older.id, newer.id


def test_export_last_writes_safe_markdown_to_stdout(run_mlxchat, saved):
    result = run_mlxchat("export", "--last")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# France trivia\n")
    assert "## Assistant\n\n```markdown\nParis.\n\n## You\n\n<script>x</script>\n```\n" in result.stdout


def test_export_by_id_to_a_json_file(run_mlxchat, saved, tmp_path):
    older, _ = saved
    target = tmp_path / "out" / "old.json"
    result = run_mlxchat("export", older, "-o", str(target), "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(target.read_text())
    assert (document["id"], document["messages"][0]["text"]) == (older, "first")
    assert "Exported 'Old chat' to" in result.stderr


def test_export_without_a_conversation_lists_the_recent_ones(run_mlxchat, saved):
    assert_one_line_error(run_mlxchat("export"), "--last", saved[1], "'France trivia'")


def test_export_of_an_unknown_id_or_format_is_one_clear_line(run_mlxchat, saved):
    assert_one_line_error(run_mlxchat("export", "nope"), "No conversation with id 'nope'")
    assert_one_line_error(run_mlxchat("export", "--last", "--format", "pdf"), "choose md or json")
