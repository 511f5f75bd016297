"""`mlxchat ask -c` into a conversation that outgrew the model's context under the "stop" policy: the error names
both ways out, and `--summarize` takes the second (a new conversation from the model's summary, saved to history,
the old one untouched). Real subprocesses, a real tiny model that reads at most 512 tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxchat.engine.summary import continued_title, summary_intro
from mlxchat.settings import ChatSettings
from mlxchat.store import History

from conftest import assert_one_line_error

TITLE = "Lisbon trip"


@pytest.fixture
def own_folders(tmp_path):
    return {"MLXCHAT_DATA_DIR": str(tmp_path / "data"), "MLXCHAT_CACHE_DIR": str(tmp_path / "cache")}


def long_conversation(data_dir: str, model: Path) -> str:
    """A stored conversation with `model`, longer than its context, under the "stop" policy."""
    settings = ChatSettings(temperature=0.0, max_tokens=8, overflow="stop", model=str(model))
    with History(Path(data_dir)) as history:
        conversation = history.create_conversation(TITLE, settings=settings)
        for number in range(14):
            history.add_message(conversation.id, "user", f"Day {number}: what should we see, eat and ride in Lisbon?")
            history.add_message(conversation.id, "assistant", f"On day {number}, walk Alfama and ride tram 28.")
        return conversation.id


def stored(data_dir: str) -> dict[str, list[tuple[str, str]]]:
    with History(Path(data_dir)) as history:
        return {
            summary.id: [(m.role, m.text) for m in history.get_conversation(summary.id).messages]
            for summary in history.list_conversations()
        }


def test_ask_c_under_stop_names_both_ways_out_and_changes_nothing(run_mlxchat, short_model, own_folders):
    data = own_folders["MLXCHAT_DATA_DIR"]
    long_conversation(data, short_model)
    before = stored(data)
    result = run_mlxchat("ask", "-c", "Which museum first?", env=own_folders)
    assert result.returncode == 1, result.stderr
    assert '"stop"' in result.stderr
    assert "--overflow truncate-middle" in result.stderr and "--summarize" in result.stderr
    assert stored(data) == before


def test_ask_c_summarize_goes_on_in_a_new_conversation_from_the_summary(run_mlxchat, short_model, own_folders):
    data = own_folders["MLXCHAT_DATA_DIR"]
    source = long_conversation(data, short_model)
    before = stored(data)
    result = run_mlxchat("ask", "-c", "--summarize", "Which museum first?", env=own_folders)
    assert result.returncode == 0, result.stderr
    after = stored(data)
    assert after[source] == before[source], "the summarized conversation stays as it was"
    (new_id,) = set(after) - set(before)
    intro, summary, question, answer = after[new_id]
    assert intro == ("user", summary_intro(TITLE, source))
    assert summary[0] == "assistant" and summary[1].strip()
    assert question == ("user", "Which museum first?") and answer == ("assistant", result.stdout.strip())
    assert f"continuing in “{continued_title(TITLE)}” ({new_id})" in result.stderr
    with History(Path(data)) as history:
        new = history.get_conversation(new_id)
    assert new.title == continued_title(TITLE) and new.settings.overflow == "stop"

    again = run_mlxchat("ask", "-c", "And then?", env=own_folders)
    assert again.returncode == 0, again.stderr
    assert len(stored(data)[new_id]) == 6, "ask -c now continues the new conversation"


def test_summarize_without_a_conversation_is_bad_input(run_mlxchat, own_folders):
    result = run_mlxchat("ask", "--summarize", "Hello", env=own_folders)
    assert_one_line_error(result, "--summarize needs a conversation", "-c")
