"""Against a real server: `mlx_lm.server` with the demo model on 127.0.0.1 (started once per session).

Prefill runs at about 9 tokens a second on the test machines' CPUs, so prompts are short and shared: the server's
prompt cache makes every repeat of the Paris question cheap.
"""

from __future__ import annotations

import json
import subprocess
import sys

from remote_turns import ask, select

from mlxchat.engine import ChatRequest, Draining, Message, ModelLoaded, SamplingParams, Started, Stats, TextDelta

PARIS = "What is the capital of France?"


def test_the_answer_streams_from_mlx_lm_server_and_mentions_paris(mlx_server, remote_engines, event_log):
    engine = remote_engines(mlx_server.url)
    selected = select(engine, event_log, "SmolLM2-135M-Instruct-Q4_1")  # the short name of the served folder
    assert selected.reason == "stop", selected.error
    assert event_log.wait_for(ModelLoaded, selected.request_id).info.path == mlx_server.model_id
    finished = ask(engine, event_log, PARIS, max_tokens=12, timeout_s=90)
    assert finished.reason in ("stop", "length"), finished.error
    assert "Paris" in finished.text
    events = event_log.of(finished.request_id)
    assert isinstance(events[0], Started) and events[-1] is finished
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == finished.text
    assert isinstance(events[-2], Stats) and finished.stats.prompt_tokens > 0  # usage came from the server
    assert finished.stats.ttft_s > 0 and finished.usage.generation_tokens > 0


def test_cancel_mid_stream_drains_then_stops_with_the_partial_text_and_the_server_serves_again(
    mlx_server, remote_engines, event_log
):
    engine = remote_engines(mlx_server.url)
    assert select(engine, event_log).reason == "stop"  # no name: the server's only model
    story = ChatRequest(
        (Message("user", PARIS + " Then tell me a long story about it."),),
        sampling=SamplingParams(temperature=0, max_tokens=64),
    )
    assert engine.submit(story) is None
    event_log.first_text(story.request_id, timeout_s=90)
    assert engine.cancel(story.request_id)
    assert any(isinstance(e, Draining) for e in event_log.of(story.request_id))
    stopped = event_log.finished(story.request_id, timeout_s=30)
    assert stopped.reason == "cancelled"
    assert stopped.text and stopped.stats.generation_tokens < 64

    again = ask(engine, event_log, PARIS, max_tokens=12, timeout_s=90)
    assert again.reason in ("stop", "length") and "Paris" in again.text


def test_ask_with_endpoint_answers_from_the_server_end_to_end(mlx_server, tmp_path):
    command = [sys.executable, "-m", "mlxchat", "ask", PARIS, "--endpoint", mlx_server.url]
    command += ["--temp", "0", "--max-tokens", "12", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert "Paris" in document["text"] and document["error"] is None
    assert document["model"]["kind"] == "remote" and document["model"]["endpoint"] == mlx_server.url
    assert document["usage"]["prompt_tokens"] > 0
    assert result.stderr == ""
