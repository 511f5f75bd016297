"""Helpers that drive a remote engine one request at a time and wait (bounded) for the request's `Finished`."""

from __future__ import annotations

from mlxchat.engine import ChatRequest, Finished, LoadModel, Message, SamplingParams


def ask(engine, event_log, text: str, *, max_tokens: int = 16, timeout_s: float = 60, **request) -> Finished:
    """Submit one greedy chat turn and wait for its `Finished`."""
    chat = ChatRequest((Message("user", text),), sampling=SamplingParams(temperature=0, max_tokens=max_tokens), **request)
    assert engine.submit(chat) is None
    return event_log.finished(chat.request_id, timeout_s)


def select(engine, event_log, model: str | None = None, timeout_s: float = 30) -> Finished:
    """Submit `LoadModel(model)` and wait for its `Finished`."""
    load = LoadModel(model)
    assert engine.submit(load) is None
    return event_log.finished(load.request_id, timeout_s)
