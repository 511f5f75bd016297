"""What the `ProcessEngine` tests share (tests/engine/test_process_engine*.py): requests, a model load, and the
`engines` fixture that starts child engines and always ends them."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from events import EventLog
from mlxchat.engine import ChatRequest, Engine, LoadModel, Message, SamplingParams
from mlxchat.engine.process import ProcessEngine

SHORT = SamplingParams(temperature=0.0, max_tokens=24)
ENDLESS = SamplingParams(temperature=0.0, max_tokens=1_000_000)
READER = "mlxchat-engine-events"
"""The name of `ProcessEngine`'s reader thread, the one that calls the sink."""


def ask(text: str, sampling: SamplingParams = SHORT) -> ChatRequest:
    return ChatRequest((Message("user", text),), sampling=sampling)


@pytest.fixture
def engines():
    """Starts `ProcessEngine`s for a test and always closes them afterwards: a stopped child is let go on first
    (SIGCONT), and a child left behind is killed."""
    made: list[ProcessEngine] = []

    def start(sink, factory=Engine, **kwargs) -> ProcessEngine:
        engine = ProcessEngine(sink, factory, **kwargs)
        made.append(engine)
        return engine.start()

    try:
        yield start
    finally:
        for engine in made:
            if engine.process is not None and engine.process.poll() is None:
                try:
                    os.kill(engine.process.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            try:
                engine.close(timeout_s=10)
            except Exception:
                pass
            finally:
                if engine.process is not None and engine.process.poll() is None:
                    engine.process.kill()
                    engine.process.wait()


def load(engine, event_log: EventLog, model: Path) -> None:
    request = LoadModel(str(model))
    assert engine.submit(request) is None
    finished = event_log.finished(request.request_id)
    assert finished.reason == "stop", finished.error
