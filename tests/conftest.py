"""Shared fixtures: isolated user folders, tiny random models, and a started engine with an event log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from events import EventLog  # noqa: E402


@pytest.fixture(scope="session")
def user_dirs(tmp_path_factory) -> dict[str, Path]:
    """Cache, data and config folders for the whole session, never the developer's own."""
    root = tmp_path_factory.mktemp("user")
    return {name: root / name for name in ("cache", "data", "config")}


@pytest.fixture(autouse=True)
def isolated_user_dirs(user_dirs, monkeypatch):
    monkeypatch.setenv("MLXCHAT_CACHE_DIR", str(user_dirs["cache"]))
    monkeypatch.setenv("MLXCHAT_DATA_DIR", str(user_dirs["data"]))
    monkeypatch.setenv("MLXCHAT_CONFIG_DIR", str(user_dirs["config"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Every engine's owner thread (in this process or a child) starts from the same random state, so a request
    # sampled without its own seed draws the same tokens on every run and in any order of tests.
    monkeypatch.setenv("MLXCHAT_SEED", "0")
    return user_dirs


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random-weight llama folder: fast, and greedy decoding never stops by itself."""
    from mlxchat.models.random_weights import build_random_llama

    return build_random_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def short_model(tmp_path_factory) -> Path:
    """A tiny random-weight llama that reads at most 512 tokens: a long chat overflows it in a few exchanges
    (the overflow policies, the "stop" policy's offer in the TUI and in `mlxchat ask`)."""
    from mlxchat.models.random_weights import RandomLlamaSpec, build_random_llama

    spec = RandomLlamaSpec(hidden_size=128, num_attention_heads=4, max_position_embeddings=512)
    return build_random_llama(tmp_path_factory.mktemp("models") / "short-context", spec)


@pytest.fixture
def event_log() -> EventLog:
    return EventLog()


@pytest.fixture
def engine(event_log):
    """A started engine, closed after the test."""
    from mlxchat.engine import Engine

    engine = Engine(event_log).start()
    yield engine
    engine.close(timeout_s=30)


@pytest.fixture
def loaded_engine(engine, event_log, tiny_model):
    """A started engine with the tiny model loaded."""
    from mlxchat.engine import LoadModel

    request = LoadModel(str(tiny_model))
    assert engine.submit(request) is None
    finished = event_log.finished(request.request_id)
    assert finished.reason == "stop", finished.error
    return engine
