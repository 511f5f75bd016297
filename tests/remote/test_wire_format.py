"""The wire format, read from strings: SSE framing, completion chunks, error envelopes, endpoints, request bodies."""

from __future__ import annotations

import base64
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlxchat.engine.errors import RequestError
from mlxchat.engine.remote import RemoteModel
from mlxchat.engine.remote.request import Endpoint, chat_body
from mlxchat.engine.remote.sse import (
    MalformedStream,
    SseEvent,
    iter_sse,
    parse_chunk,
    parse_model_list,
    server_error_from_body,
)
from mlxchat.engine.requests import ChatRequest, Message, SamplingParams


def test_sse_events_end_at_blank_lines_join_data_lines_and_surface_comments():
    lines = [": keep-alive", "", "event: delta", "data: one", "data:two", "id: 7", "", "data: [DONE]", ""]
    assert list(iter_sse(lines)) == [SseEvent(None), SseEvent("one\ntwo", "delta"), SseEvent("[DONE]")]


def test_an_event_still_open_when_the_stream_ends_is_not_lost():
    assert list(iter_sse(["data: [DONE]"])) == [SseEvent("[DONE]")]


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=20), max_size=8))
def test_any_data_survives_sse_framing(payloads):
    lines = [line for payload in payloads for line in (f"data: {payload}", "")]
    assert [event.data for event in iter_sse(lines)] == payloads


def test_a_chunk_gives_its_text_finish_reason_and_reasoning():
    data = json.dumps({"choices": [{"index": 0, "delta": {"content": "Hi", "reasoning": "hm"}, "finish_reason": None}]})
    update = parse_chunk(data)
    assert (update.content, update.reasoning, update.finish_reason) == ("Hi", "hm", None)
    older_vllm = json.dumps({"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}, "finish_reason": "stop"}]})
    assert (parse_chunk(older_vllm).reasoning, parse_chunk(older_vllm).finish_reason) == ("hm", "stop")


def test_the_usage_chunk_gives_the_servers_token_counts():
    data = json.dumps(
        {"choices": [], "usage": {"prompt_tokens": 37, "completion_tokens": 8, "prompt_tokens_details": {"cached_tokens": 36}}}
    )
    usage = parse_chunk(data).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (37, 8, 36)


def test_a_chunk_without_choices_adds_nothing():
    assert parse_chunk('{"id": "x", "object": "chat.completion.chunk"}') == parse_chunk('{"choices": []}')


def test_an_in_band_error_frame_is_an_error_not_an_empty_answer():
    """vllm-mlx answers a busy engine on a streaming request with 200 and an error frame."""
    data = json.dumps({"error": {"message": "queue is full", "type": "server_error", "code": "text_generation_busy"}})
    error = parse_chunk(data).error
    assert error.message == "queue is full" and error.busy


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '{"choices": "nope"}', '{"choices": [{"delta": 3}]}'])
def test_payloads_that_are_not_chunks_are_malformed(data):
    with pytest.raises(MalformedStream):
        parse_chunk(data)


@pytest.mark.parametrize(
    "body, message, code",
    [
        (b'{"error": {"message": "Invalid API key", "code": "invalid_api_key"}}', "Invalid API key", "invalid_api_key"),
        (b'{"error": "Cannot find the model"}', "Cannot find the model", None),  # mlx_lm.server
        (b'{"detail": "Not authenticated"}', "Not authenticated", None),  # FastAPI
        (b"Bad Gateway\n", "Bad Gateway", None),
    ],
)
def test_error_bodies_of_every_common_shape_give_the_servers_message(body, message, code):
    error = server_error_from_body(body)
    assert (error.message, error.code) == (message, code)


def test_a_long_server_message_is_cut_to_one_short_line():
    error = server_error_from_body(json.dumps({"error": "Traceback\n" + "x" * 5000}).encode())
    assert len(error.message) <= 300 and "\n" not in error.message and error.message.endswith("…")


def test_the_model_list_and_short_names_for_path_like_ids():
    body = json.dumps({"data": [{"id": "mlx-community/Qwen3-4B-4bit"}, {"id": "/srv/models/SmolLM2"}, {"x": 1}]})
    listed = [RemoteModel.from_id(model_id) for model_id, _ in parse_model_list(body.encode())]
    assert [(m.id, m.name) for m in listed] == [
        ("mlx-community/Qwen3-4B-4bit", "mlx-community/Qwen3-4B-4bit"),
        ("/srv/models/SmolLM2", "SmolLM2"),
    ]
    with pytest.raises(MalformedStream):
        parse_model_list(b"")  # what mlx_lm.server sends when its Hugging Face cache folder is missing


@pytest.mark.parametrize(
    "given_url, base",
    [
        ("localhost:8080", "http://localhost:8080/v1"),
        ("http://gpu-box:8000", "http://gpu-box:8000/v1"),
        ("https://api.example.com/openai/v1/", "https://api.example.com/openai/v1"),
        ("http://127.0.0.1:8000/v1/chat/completions", "http://127.0.0.1:8000/v1"),
        ("http://[::1]:8000", "http://[::1]:8000/v1"),
    ],
)
def test_endpoints_are_normalised_to_their_v1_root(given_url, base):
    assert Endpoint.parse(given_url).base_url == base


def test_a_credential_in_the_url_is_used_but_never_displayed():
    endpoint = Endpoint.parse("https://user:s3cret@example.com/v1")
    assert "s3cret" in endpoint.base_url
    assert "s3cret" not in endpoint.display and "s3cret" not in str(endpoint) and "s3cret" not in repr(endpoint)


@pytest.mark.parametrize("bad", ["", "ftp://example.com", "http://", "http://host:notaport"])
def test_unusable_endpoints_are_refused_with_a_reason(bad):
    with pytest.raises(ValueError):
        Endpoint.parse(bad)


def test_the_body_streams_asks_for_usage_and_carries_the_sampling():
    request = ChatRequest(
        (Message("system", "Be brief."), Message("user", "Hi")),
        sampling=SamplingParams(temperature=0.0, top_p=0.9, max_tokens=12, seed=3),
    )
    body = chat_body(request, "fake/model-a")
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        "fake/model-a", 0.0, 0.9, 12, 3
    )
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert "model" not in chat_body(request, None)  # the server's default model


def test_images_go_as_data_urls_in_image_url_parts_before_the_text(tmp_path):
    from PIL import Image

    png, jpg = tmp_path / "diagram.png", tmp_path / "photo.jpg"
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(png)
    Image.new("RGB", (3000, 1500), (0, 0, 255)).save(jpg)
    request = ChatRequest((Message("user", "What are these?", (png, jpg)),))
    (message,) = chat_body(request, "m")["messages"]
    first, second, text = message["content"]
    assert text == {"type": "text", "text": "What are these?"}
    assert first["type"] == second["type"] == "image_url"
    assert first["image_url"]["url"].startswith("data:image/png;base64,")
    assert second["image_url"]["url"].startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(second["image_url"]["url"].split(",", 1)[1])))
    assert decoded.size == (2048, 1024)  # shrunk like the local vision route's images


def test_a_missing_image_is_named_before_anything_is_sent(tmp_path):
    with pytest.raises(RequestError, match="missing.png"):
        chat_body(ChatRequest((Message("user", "?", (tmp_path / "missing.png",)),)), "m")
