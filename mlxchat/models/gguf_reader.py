"""Provides a pure-Python reader for a GGUF file's header: metadata, tensor table and size check.

llama.cpp's `gguf` package has a reader too (`GGUFReader`), and we use that package for everything else
(type sizes, dequantization), but its reader parses a large vocabulary slowly: on a 262,144-token
vocabulary it took 38.8 s here against 0.46 s for this one (benchmarks/gguf_reader_speed.py). Reading the
header ourselves (through `mmap`, so a multi-gigabyte file costs only the pages we touch) also lets the
converter refuse a truncated or damaged file with a message that names the file, the tensor and its type
before any tensor data is loaded.
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxchat.models.errors import GGUFImportError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32


def _ggml_types() -> dict[int, tuple[str, int, int]]:
    """ggml tensor type id -> (name, elements per block, bytes per block), from llama.cpp's `gguf` package, so a
    type it learns is sized correctly here too."""
    from gguf.constants import GGML_QUANT_SIZES

    return {qtype.value: (qtype.name, *sizes) for qtype, sizes in GGML_QUANT_SIZES.items()}


GGML_TYPES = _ggml_types()

# Metadata value type id -> struct format for scalars (8 = string, 9 = array are handled apart).
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table. `shape` is in MLX (row-major) order, the reverse of ggml's."""

    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int

    @property
    def type_name(self) -> str:
        return GGML_TYPES.get(self.type_id, (f"type {self.type_id}", 0, 0))[0]

    @property
    def nbytes(self) -> int | None:
        """Bytes of data, or None for a type this table does not know."""
        if self.type_id not in GGML_TYPES:
            return None
        _, block_elems, block_bytes = GGML_TYPES[self.type_id]
        count = 1
        for dim in self.shape:
            count *= dim
        return -(-count // block_elems) * block_bytes


@dataclass(frozen=True)
class GGUFHeader:
    """Everything before the tensor data: plain-Python metadata and the tensor table."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]
    data_offset: int
    file_size: int

    @property
    def architecture(self) -> str | None:
        return self.metadata.get("general.architecture")


class _Cursor:
    """Sequential little-endian reads from a buffer; running off its end means the file is truncated."""

    def __init__(self, buffer: mmap.mmap, path: Path) -> None:
        self.buffer, self.path, self.pos = buffer, path, 0

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buffer):
            raise _Truncated
        (value,) = struct.unpack_from(fmt, self.buffer, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        if self.pos + length > len(self.buffer):
            raise _Truncated
        raw = self.buffer[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, type_id: int) -> Any:
        if type_id == _STRING:
            return self.string()
        if type_id == _ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if item_type in _SCALAR_FORMATS:
                fmt = _SCALAR_FORMATS[item_type]
                size = struct.calcsize(fmt) * count
                if self.pos + size > len(self.buffer):
                    raise _Truncated
                items = list(struct.unpack_from(f"<{count}{fmt[1]}", self.buffer, self.pos))
                self.pos += size
                return items
            return [self.value(item_type) for _ in range(count)]
        if type_id in _SCALAR_FORMATS:
            return self.unpack(_SCALAR_FORMATS[type_id])
        raise GGUFImportError(f"{self.path}: damaged GGUF metadata (unknown value type {type_id}).")


class _Truncated(Exception):
    """Internal: a read ran past the end of the file."""


def read_header(path: str | Path) -> GGUFHeader:
    """Read and validate a GGUF header; raise `GGUFImportError` naming the file if it is not a whole GGUF.

    Checks the magic, the version (2 or 3), and that every tensor's data lies inside the file, so a
    partial download is reported as truncated instead of failing later inside `mx.load`.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            file_size = path.stat().st_size
            if file_size < 24:
                raise GGUFImportError(f"{path} is not a GGUF file (only {file_size} bytes).")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
                if buffer[:4] != GGUF_MAGIC:
                    raise GGUFImportError(f"{path} is not a GGUF file (it does not start with 'GGUF').")
                try:
                    header = _parse(_Cursor(buffer, path), path, file_size)
                except _Truncated:
                    raise GGUFImportError(
                        f"{path} is truncated: the file ends inside its GGUF header "
                        f"({file_size} bytes). Download it again."
                    ) from None
    except FileNotFoundError:
        raise GGUFImportError(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise GGUFImportError(f"{path} is a folder, not a GGUF file.") from None
    except OSError as error:
        raise GGUFImportError(f"{path} could not be read: {error.strerror or error}.") from None
    _check_size(header)
    return header


def _parse(cursor: _Cursor, path: Path, file_size: int) -> GGUFHeader:
    cursor.pos = 4
    version = cursor.unpack("<I")
    if version not in (2, 3):
        raise GGUFImportError(f"{path}: GGUF version {version} is not supported (only versions 2 and 3).")
    tensor_count, kv_count = cursor.unpack("<Q"), cursor.unpack("<Q")
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.unpack("<I"))
    tensors: dict[str, TensorInfo] = {}
    for _ in range(tensor_count):
        name = cursor.string()
        n_dims = cursor.unpack("<I")
        dims = [cursor.unpack("<Q") for _ in range(n_dims)]
        type_id, offset = cursor.unpack("<I"), cursor.unpack("<Q")
        tensors[name] = TensorInfo(name, tuple(reversed(dims)), type_id, offset)
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT)) or DEFAULT_ALIGNMENT
    data_offset = -(-cursor.pos // alignment) * alignment
    return GGUFHeader(path, version, metadata, tensors, data_offset, file_size)


def _check_size(header: GGUFHeader) -> None:
    needed = header.data_offset
    for info in header.tensors.values():
        if info.nbytes is not None:
            needed = max(needed, header.data_offset + info.offset + info.nbytes)
    if needed > header.file_size:
        raise GGUFImportError(
            f"{header.path} is truncated: its tensors need {needed:,} bytes but the file has "
            f"{header.file_size:,}. Download it again."
        )
