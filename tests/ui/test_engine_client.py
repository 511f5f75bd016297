"""The UI is typed against `EngineClient`; the local, remote and scripted test engines all provide it."""

from __future__ import annotations

import inspect

from mlxchat.engine import Engine
from mlxchat.engine.client import EngineClient
from mlxchat.engine.remote import RemoteEngine

from staged import StagedEngine


def test_every_engine_the_ui_can_be_given_is_an_engine_client():
    def sink(event) -> None:
        pass

    engines = [Engine(sink), RemoteEngine(sink, "http://127.0.0.1:9"), StagedEngine(sink)]
    for engine in engines:
        assert isinstance(engine, EngineClient), type(engine).__name__
        for name in ("submit", "prepare", "cancel", "close"):  # the calls the screen makes, with the protocol's parameters
            expected = list(inspect.signature(getattr(EngineClient, name)).parameters)[1:]
            assert list(inspect.signature(getattr(engine, name)).parameters) == expected, (type(engine), name)
