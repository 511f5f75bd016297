"""Reasoning from OpenAI-compatible servers: `delta.reasoning` (mlx_lm.server, newer vLLM) and
`delta.reasoning_content` (older vLLM, LM Studio, DeepSeek) become the same thinking events as a local model's,
and `mlxchat ask` keeps stdout for the answer alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from remote_fakes import DONE, chunk, raw_events, usage_chunk
from remote_turns import ask, select

from mlxchat.engine import TextDelta, ThinkingDelta, ThinkingDone

MIXED = raw_events(
    chunk(role="assistant"),
    chunk(reasoning="The user asks "),
    chunk(reasoning_content="about France."),
    chunk("Paris"),
    chunk(" it is."),
    chunk(finish="stop"),
    DONE,
)
"""`reasoning`, then `reasoning_content`, then content: one server may use either name."""


def test_both_reasoning_fields_become_thinking_events_apart_from_the_answer(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = MIXED
    finished = ask(engine, event_log, "Capital?")
    events = event_log.of(finished.request_id)
    thought = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert (thought, answer) == ("The user asks about France.", "Paris it is.")
    assert (finished.reasoning, finished.text) == (thought, answer)
    done = [e for e in events if isinstance(e, ThinkingDone)]
    assert len(done) == 1 and done[0].tokens == 2 and not done[0].by_budget
    assert finished.usage.reasoning_tokens == 2


TAGGED = raw_events(
    chunk(role="assistant"),
    chunk("<thi"),
    chunk("nk>\nThe user asks "),
    chunk("about France.\n</think>"),
    chunk("\n\nParis"),
    chunk(" it is, not <think>."),
    chunk(finish="stop"),
    DONE,
)
"""A server that parses no reasoning leaves the model's `<think>` tags in the content (split mid-tag here)."""


def test_think_tags_in_the_content_are_thinking_counted_apart_from_the_answer(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = TAGGED
    finished = ask(engine, event_log, "Capital?")
    events = event_log.of(finished.request_id)
    thought = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert (thought, answer) == ("The user asks about France.\n", "Paris it is, not <think>.")
    assert (finished.reasoning, finished.text) == (thought, answer)
    assert (finished.usage.generation_tokens, finished.usage.reasoning_tokens) == (5, 3)
    assert finished.stats.reasoning_tokens == 3
    assert sum(e.tokens for e in events if isinstance(e, ThinkingDelta)) == 3
    assert sum(e.tokens for e in events if isinstance(e, TextDelta)) == 2
    assert [e.tokens for e in events if isinstance(e, ThinkingDone)] == [3]


def test_an_answer_that_opens_with_whitespace_and_never_thinks_is_kept_as_sent(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = raw_events(chunk("    indented"), chunk(" code"), chunk(finish="stop"), DONE)
    finished = ask(engine, event_log, "Code?")
    assert (finished.text, finished.reasoning, finished.usage.reasoning_tokens) == ("    indented code", "", 0)


def test_the_servers_own_reasoning_count_replaces_the_pieces_counted(fake_server, remote_engines, event_log):
    """vLLM and OpenAI send several tokens per piece; their usage says how many of the completion were thinking."""
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 40,
        "total_tokens": 49,
        "completion_tokens_details": {"reasoning_tokens": 31},
    }
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = raw_events(
        chunk(reasoning="The user asks about France."),
        chunk("Paris it is."),
        chunk(finish="stop"),
        f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n",
        DONE,
    )
    finished = ask(engine, event_log, "Capital?")
    assert (finished.usage.generation_tokens, finished.usage.reasoning_tokens) == (40, 31)
    assert (finished.stats.generation_tokens, finished.stats.reasoning_tokens) == (40, 31)


def test_a_usage_without_a_reasoning_count_never_counts_more_thinking_than_tokens(
    fake_server, remote_engines, event_log
):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = raw_events(
        *(chunk(reasoning=f"step {n}. ") for n in range(6)),
        chunk("Paris."),
        chunk(finish="stop"),
        usage_chunk(9, 4),
        DONE,
    )
    finished = ask(engine, event_log, "Capital?")
    assert (finished.usage.generation_tokens, finished.usage.reasoning_tokens) == (4, 4)


def test_thinking_off_is_sent_to_the_template_and_unset_sampling_is_left_to_the_server(
    fake_server, remote_engines, event_log
):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = MIXED
    ask(engine, event_log, "Capital?", thinking=False)
    body = fake_server.chats[-1].body
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "top_k" not in body and "min_p" not in body, "the server applies the model's own values"


def run_ask(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlxchat", "ask", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ},
    )


def test_ask_prints_only_the_answer_on_stdout(fake_server):
    fake_server.chat = MIXED
    result = run_ask("Capital?", "--endpoint", fake_server.url, "--model", "model-b")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Paris it is.\n"
    assert "France" not in result.stderr, "stderr is not a terminal: no thinking there either"


def test_ask_show_thinking_prints_the_thinking_first_framed(fake_server):
    fake_server.chat = MIXED
    result = run_ask("Capital?", "--endpoint", fake_server.url, "--model", "model-b", "--show-thinking")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Thinking…\nThe user asks about France.\n…done thinking.\n\nParis it is.\n"


def test_ask_json_has_the_reasoning_apart(fake_server):
    fake_server.chat = MIXED
    result = run_ask("Capital?", "--endpoint", fake_server.url, "--model", "model-b", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["text"], document["reasoning"]) == ("Paris it is.", "The user asks about France.")
    assert document["usage"]["reasoning_tokens"] == 2


def test_a_think_tag_after_the_answer_began_in_the_same_chunk_is_answer_text(fake_server, remote_engines, event_log):
    """A server sends several tokens a chunk, so an answer's first words and a `<think>` it merely mentions can
    arrive together: the tag must not turn the rest of the answer into hidden thinking."""
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = raw_events(chunk("  Hello <think> tags"), chunk(" open it."), chunk(finish="stop"), DONE)
    finished = ask(engine, event_log, "Tags?")
    events = event_log.of(finished.request_id)
    assert (finished.text, finished.reasoning) == ("  Hello <think> tags open it.", "")
    assert not [e for e in events if isinstance(e, (ThinkingDelta, ThinkingDone))]
    assert finished.usage.reasoning_tokens == 0


def test_a_servers_zero_reasoning_count_keeps_the_thinking_counted_from_tags(fake_server, remote_engines, event_log):
    """A server that parses no reasoning reports `reasoning_tokens: 0` while the model's `<think>` tags sit in its
    content: the thinking the tags showed is still counted (capped by the server's completion count)."""
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 20,
        "total_tokens": 29,
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = raw_events(
        chunk("<think>\nThe user asks "),
        chunk("about France.\n</think>"),
        chunk("\n\nParis."),
        chunk(finish="stop"),
        f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n",
        DONE,
    )
    finished = ask(engine, event_log, "Capital?")
    assert finished.reasoning == "The user asks about France.\n"
    assert (finished.usage.generation_tokens, finished.usage.reasoning_tokens) == (20, 2)
    assert finished.stats.reasoning_tokens == 2
