"""Every way a server or the way to it can fail ends in one `Finished(error)` that names the endpoint and keeps the
partial answer; nothing raises, and the engine answers the next request."""

from __future__ import annotations

import logging
import uuid

import pytest
from remote_fakes import (
    DONE,
    chunk,
    error_response,
    free_port,
    raw_events,
    silent_before_headers,
    stall,
    stream,
)
from remote_turns import ask, select

from mlxchat.engine import Finished, ModelLoadFailed
from mlxchat.engine.remote.request import RemoteTimeouts

BUSY_MESSAGE = "SimpleEngine generation queue is full; retry after 2s"
BUSY_ENVELOPE = {"error": {"message": BUSY_MESSAGE, "type": "server_error", "code": "text_generation_busy"}}
PARTIAL = (chunk("Hello"), chunk(" wor"))

FAILURES = {
    "503 busy": (
        error_response(503, BUSY_ENVELOPE, {"Retry-After": "2"}),
        ["Server busy", "HTTP 503", BUSY_MESSAGE, "Try again in 2 s"],
        "",
    ),
    "busy frame in a 200 stream (vllm-mlx)": (
        raw_events(f'data: {{"error": {BUSY_ENVELOPE["error"]!r}}}\n\n'.replace("'", '"'), DONE),
        ["Server busy", "text_generation_busy", BUSY_MESSAGE],
        "",
    ),
    "stream cut mid-way": (
        raw_events(*PARTIAL, then="cut"),
        ["stream from", "was cut off before it finished", "the answer is incomplete"],
        "Hello wor",
    ),
    "stream ended without [DONE]": (
        raw_events(*PARTIAL, chunked=False, then="cut"),
        ["ended before it finished (no [DONE])"],
        "Hello wor",
    ),
    "malformed SSE": (
        raw_events(*PARTIAL, "data: {not json\n\n", DONE),
        ["sent a malformed stream event", "not JSON: {not json"],
        "Hello wor",
    ),
    "server error frame": (
        raw_events(chunk("Hel"), 'data: {"error": {"message": "Metal command buffer failed", "code": "engine_error"}}\n\n'),
        ["reported an error (engine_error)", "Metal command buffer failed"],
        "Hel",
    ),
    "401": (
        error_response(401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}}),
        ["refused the request (HTTP 401 Unauthorized)", "Invalid API key", "--api-key-env"],
        "",
    ),
    "404 (mlx_lm.server's error shape)": (
        error_response(404, {"error": "Cannot find an appropriate cached snapshot folder"}),
        ["HTTP 404 Not Found for /chat/completions", "Cannot find an appropriate cached snapshot folder"],
        "",
    ),
    "500": (
        error_response(500, b"Internal Server Error"),
        ["HTTP 500 Internal Server Error", "Internal Server Error"],
        "",
    ),
    "a server that ignores stream=true": (
        error_response(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}]}),
        ["answered without streaming (application/json)"],
        "",
    ),
    "slow server, mid-stream (read timeout)": (
        stall(*["Hello", " wor"], keepalive_s=None),
        ["sent nothing for 0.5 s (read timeout)", "the answer is incomplete"],
        "Hello wor",
    ),
    "slow server, before answering (read timeout)": (
        silent_before_headers(),
        ["sent nothing for 0.5 s (read timeout)"],
        "",
    ),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_a_failure_ends_in_one_error_naming_the_endpoint_and_the_engine_stays_usable(
    name, fake_server, remote_engines, event_log
):
    scenario, needles, partial = FAILURES[name]
    engine = remote_engines(fake_server.url, timeouts=RemoteTimeouts(read_s=0.5))
    assert select(engine, event_log, "model-b").reason == "stop"
    fake_server.chat = scenario
    failed = ask(engine, event_log, "Hi")
    assert failed.reason == "error"
    assert fake_server.url in failed.error
    for needle in needles:
        assert needle in failed.error, failed.error
    assert failed.text == partial
    assert event_log.terminal_counts()[failed.request_id] == 1

    fake_server.chat = stream("Hello", " world")
    again = ask(engine, event_log, "Hi")
    assert (again.reason, again.text) == ("stop", "Hello world")


def test_connection_refused_names_the_endpoint_at_selection_and_at_chat(remote_engines, event_log):
    url = f"http://127.0.0.1:{free_port()}/v1"
    engine = remote_engines(url)
    finished = select(engine, event_log, "any")
    failed_load = event_log.wait_for(ModelLoadFailed, finished.request_id)
    assert finished.reason == "error"
    assert failed_load.message == finished.error == f"Cannot connect to {url} (connection refused). Is the server running?"


def test_a_model_the_server_does_not_serve_is_refused_and_the_selection_kept(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    assert select(engine, event_log, "model-b").reason == "stop"
    finished = select(engine, event_log, "model-z")
    failed = event_log.wait_for(ModelLoadFailed, finished.request_id)
    assert failed.message == f"{fake_server.url} does not serve 'model-z'. It serves: fake/model-a, /srv/models/model-b."
    assert failed.still_loaded == "model-b" and engine.model.name == "model-b"


def test_the_api_key_is_sent_as_a_header_and_never_appears_in_events_errors_or_logs(
    fake_server, remote_engines, event_log, monkeypatch, caplog
):
    secret = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("MLXCHAT_TEST_REMOTE_KEY", secret)
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request at this level
    engine = remote_engines(fake_server.url, api_key_env="MLXCHAT_TEST_REMOTE_KEY")
    assert select(engine, event_log, "model-b").reason == "stop"
    fake_server.chat = stream("fine")
    assert ask(engine, event_log, "Hi").text == "fine"
    # A server that quotes the key back in its error: we must not repeat it.
    fake_server.chat = error_response(401, {"error": {"message": f"key {secret} is revoked"}})
    failed = ask(engine, event_log, "Hi")
    assert "key [redacted] is revoked" in failed.error and "Check the API key in $MLXCHAT_TEST_REMOTE_KEY" in failed.error
    fake_server.models_status = 401
    with pytest.raises(Exception) as raised:
        engine.list_models()

    assert {r.headers.get("Authorization") for r in fake_server.seen} == {f"Bearer {secret}"}
    everything = [repr(e) for e in event_log.drain()] + [caplog.text, repr(engine), str(vars(engine))]
    everything += [str(raised.value), repr(raised.value), repr(raised.value.__cause__), repr(raised.value.__context__)]
    assert not [text for text in everything if secret in text]


def test_a_key_variable_that_is_not_set_is_named_before_anything_is_sent(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url, api_key_env="MLXCHAT_TEST_UNSET_KEY")
    finished = select(engine, event_log, "model-b")
    assert finished.reason == "error" and "MLXCHAT_TEST_UNSET_KEY is not set" in finished.error
    assert fake_server.seen == []


def test_a_failure_before_the_first_token_still_reports_one_finished_with_stats(fake_server, remote_engines, event_log):
    engine = remote_engines(fake_server.url)
    select(engine, event_log, "model-b")
    fake_server.chat = error_response(503, BUSY_ENVELOPE)
    failed = ask(engine, event_log, "Hi")
    kinds = [type(e).__name__ for e in event_log.of(failed.request_id)]
    assert kinds == ["Started", "Stats", "Finished"]
    assert isinstance(failed, Finished) and failed.stats.ttft_s is None
