"""Stress fixtures: tiny models (text, vision, broken), bad files, small file systems, and the `--soak` switch.

Tests marked `slow` are the long soak; they run only with `--soak` (or MLXCHAT_SOAK=1). pytest registers
options only from the conftests it loads first, so `--soak` is known when this folder is named on the command
line (`pytest tests/stress --soak`); from the repository root, use MLXCHAT_SOAK=1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from stress_files import bad_images, fill_up, odd_names, small_filesystem  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true", default=False, help="also run the long soak tests (marked slow)")


def soak_enabled(config) -> bool:
    return bool(config.getoption("--soak", default=False)) or os.environ.get("MLXCHAT_SOAK") == "1"


def pytest_collection_modifyitems(config, items):
    if soak_enabled(config):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak (or MLXCHAT_SOAK=1)")
    here = Path(__file__).parent
    for item in items:
        if "slow" in item.keywords and here in Path(item.fspath).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    from mlxchat.models.random_vision import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("models") / "tiny-vlm")


@pytest.fixture(scope="session")
def corrupt_model(tmp_path_factory, tiny_model) -> Path:
    """The tiny model with its weights cut in half: every check before loading passes, the load fails."""
    folder = tmp_path_factory.mktemp("models") / "corrupt-llama"
    folder.mkdir()
    for item in tiny_model.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


@pytest.fixture(scope="session")
def bad_config_model(tmp_path_factory, tiny_model) -> Path:
    """The tiny model with a config.json that is not JSON."""
    folder = tmp_path_factory.mktemp("models") / "bad-config-llama"
    folder.mkdir()
    for item in tiny_model.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    (folder / "config.json").write_text('{"model_type": "llama", "hidden_size": 64,,}')
    return folder


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    return bad_images(tmp_path_factory.mktemp("bad-images"))


@pytest.fixture(scope="session")
def odd_files(tmp_path_factory) -> dict[str, Path]:
    return odd_names(tmp_path_factory.mktemp("odd names"))


REMEMBERED = '{"theme": "nord"}'


@pytest.fixture
def full_data_dir(tmp_path):
    """A full data folder that already remembers a theme (ui-state.json), as after earlier sessions."""
    with small_filesystem(tmp_path / "full-data") as folder:
        (folder / "ui-state.json").write_text(REMEMBERED)
        fill_up(folder)
        yield folder


@pytest.fixture
def read_only_data_dir(tmp_path):
    with small_filesystem(tmp_path / "read-only-data", read_only=True) as folder:
        yield folder
