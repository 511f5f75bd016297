"""Provides `check_weights`: a cheap integrity check of a model's safetensors files before loading them.

A partial download or a full disk leaves a `model.safetensors` whose header promises more data than the
file holds; `mx.load` then fails with a raw message, or crashes. The header is small (8-byte length plus a
JSON table), so reading it and comparing the promised byte ranges with the file size costs milliseconds
even for a multi-gigabyte file and lets the engine say "model.safetensors is truncated" instead.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from mlxchat.models.errors import CorruptWeightsError, NotAModelError

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip


def read_safetensors_header(path: str | Path) -> dict[str, Any]:
    """Return the JSON header of one safetensors file, raising `CorruptWeightsError` if it is damaged."""
    return _read_header(Path(path))[0]


def _read_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """(header, offset where tensor data starts, file size)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CorruptWeightsError(f"{path.name} is truncated: {size} bytes, too short for a header ({path}).")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > _MAX_HEADER_BYTES:
            raise CorruptWeightsError(f"{path.name} is not a valid safetensors file: bad header length ({path}).")
        if 8 + header_len > size:
            raise CorruptWeightsError(
                f"{path.name} is truncated: the file ends inside its header ({size:,} bytes) ({path})."
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CorruptWeightsError(f"{path.name} has a damaged header (not valid JSON) ({path}).") from None
    if not isinstance(header, dict):
        raise CorruptWeightsError(f"{path.name} has a damaged header (not a JSON object) ({path}).")
    return header, 8 + header_len, size


def check_safetensors_file(path: str | Path) -> dict[str, Any]:
    """Check one file: every tensor's byte range must fit its shape and dtype and lie inside the file."""
    path = Path(path)
    header, data_start, size = _read_header(path)
    data_size = size - data_start
    needed = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            shape, dtype = entry["shape"], entry["dtype"]
        except (TypeError, KeyError, ValueError):
            raise CorruptWeightsError(f"{path.name} has a damaged entry for tensor {name!r} ({path}).") from None
        expected = math.prod(shape) * _DTYPE_BYTES[dtype] if dtype in _DTYPE_BYTES else None
        if end < begin or (expected is not None and end - begin != expected):
            raise CorruptWeightsError(f"{path.name} has a damaged entry for tensor {name!r} ({path}).")
        needed = max(needed, end)
    if needed > data_size:
        raise CorruptWeightsError(
            f"{path.name} is truncated: its header promises {needed:,} bytes of tensor data but the file "
            f"holds {max(data_size, 0):,}. Download or convert the model again ({path})."
        )
    return header


def weight_files(folder: Path) -> list[Path]:
    """The folder's `*.safetensors` files, the same set mlx-lm and mlx-vlm load."""
    return sorted(p for p in folder.glob("*.safetensors") if p.is_file())


def check_weights(path: str | Path) -> list[Path]:
    """Check a safetensors file, or every `*.safetensors` file of a model folder; return the files checked.

    Raises `CorruptWeightsError` naming the file that is truncated or damaged, `NotAModelError` if a
    folder holds no safetensors at all or a shard named by `model.safetensors.index.json` is missing.
    """
    path = Path(path)
    if path.is_file():
        check_safetensors_file(path)
        return [path]
    files = weight_files(path)
    if not files:
        raise NotAModelError(f"{path} has no *.safetensors weight files; expected an MLX model folder.")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        except (json.JSONDecodeError, AttributeError):
            raise CorruptWeightsError(f"{index.name} is damaged (not valid JSON) ({index}).") from None
        missing = sorted(s for s in shards if not (path / s).is_file())
        if missing:
            raise NotAModelError(f"{path} is missing weight shards named by {index.name}: {', '.join(missing)}.")
    for file in files:
        check_safetensors_file(file)
    return files
