"""Fixtures for the history store: a fresh data folder per test and small image files to attach."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxchat.store import History


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def history(data_dir):
    history = History(data_dir)
    yield history
    history.close()


@pytest.fixture
def make_image(tmp_path):
    """Write a small fake image file and return its path (content decides its stored name)."""

    def make(name: str = "photo.png", content: bytes = b"\x89PNG\r\n\x1a\n fake image") -> Path:
        path = tmp_path / "originals" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path

    return make
