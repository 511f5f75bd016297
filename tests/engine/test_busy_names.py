"""A busy refusal names what the person knows (the conversation's title, the model being loaded), never an
internal id such as `chat-4` or `load-1`."""

from __future__ import annotations

import re

import pytest

from mlxchat.engine import Busy, ChatRequest, Message, SamplingParams, TextDelta

ENDLESS = SamplingParams(temperature=0.0, max_tokens=1_000_000)


def test_a_chat_refused_while_another_answers_names_that_conversation(loaded_engine, event_log):
    first = ChatRequest((Message("user", "Keep talking"),), sampling=ENDLESS, label="France trivia")
    assert loaded_engine.submit(first) is None
    event_log.wait_for(TextDelta, first.request_id)
    busy = loaded_engine.submit(ChatRequest((Message("user", "Me too"),), label="Other chat"))
    loaded_engine.cancel(first.request_id)
    event_log.finished(first.request_id)
    assert isinstance(busy, Busy) and busy.active_label == "France trivia"
    assert re.fullmatch(
        r"Engine busy: answering in 'France trivia' \(generating, \d+\.\d s\)\. Wait for it to finish or cancel it\.",
        busy.message,
    ), busy.message
    assert first.request_id not in busy.message


@pytest.mark.parametrize(
    "kind, label, says",
    [
        ("chat", None, "answering another message (prefill, 1.5 s)"),
        ("load", "mlx-community/Qwen3-4B-4bit", "loading mlx-community/Qwen3-4B-4bit (loading, 1.5 s)"),
        ("load", None, "loading a model (loading, 1.5 s)"),
        ("unload", None, "unloading the model (draining, 1.5 s)"),
    ],
)
def test_every_kind_of_busy_says_what_is_running_in_words(kind, label, says):
    phase = {"chat": "prefill", "load": "loading", "unload": "draining"}[kind]
    busy = Busy("chat-9", f"{kind}-4", kind, phase, 1.49, label)
    assert busy.message == f"Engine busy: {says}. Wait for it to finish or cancel it."
    assert f"{kind}-4" not in busy.message


def test_a_load_names_the_model_it_loads(engine, event_log, tiny_model):
    from mlxchat.engine import LoadModel

    load = LoadModel(str(tiny_model))
    assert engine.submit(load) is None
    busy = engine.submit(ChatRequest((Message("user", "Hi"),)))
    event_log.finished(load.request_id)
    assert isinstance(busy, Busy), "a chat submitted right after a load is refused while the load runs"
    assert busy.message.startswith(f"Engine busy: loading {tiny_model} (loading, ")
