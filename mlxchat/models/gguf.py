"""Provides `convert_gguf`: a GGUF file becomes a standard MLX model folder that `mlx_lm.load` opens.

The folder holds `config.json` for mlx-lm's model class (see `gguf_architectures`), the weights as
safetensors with mlx-lm's parameter names, and `tokenizer.json` / `tokenizer_config.json` rebuilt from the
GGUF's own vocabulary and chat template (see `tokenizer_from_gguf`).

How each matrix is stored (see `gguf_tensors` for the exact mappings):

* by default, a tensor MLX can hold exactly keeps its numbers: Q4_0, Q4_1, Q4_K as 4-bit; Q5_0, Q5_1, Q5_K as
  5-bit; Q8_0 and Q8_K as 8-bit, all MLX affine with group size 32. Q6_K is quantized again to 8 bits; every
  other type (F16/BF16/F32 matrices, Q2_K, Q3_K, the IQ types) to MLX's usual 4 bits;
* `bits=N` stores every matrix in N bits: exactly where the source's codes fit in N bits, else quantized again;
* `keep_float=True` stores every tensor dense (float32 on the CPU), the exact dequantization.

Norms, biases and vectors are always dense. The file is read one tensor at a time and the weights are
written in shards of `SHARD_BYTES`, so memory stays near the largest tensor plus one shard, not the model.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from mlxchat.models import gguf_tensors
from mlxchat.models.errors import GGUFImportError
from mlxchat.models.gguf_architectures import (
    SUPPORTED_ARCHITECTURES,
    Architecture,
    architecture_of,
    model_config,
)
from mlxchat.models.gguf_reader import GGUFHeader, TensorInfo, read_header
from mlxchat.models.tokenizer_from_gguf import FROM_FILE, turn_format, write_tokenizer_files

__all__ = [
    "ALLOWED_BITS",
    "CONVERTER_VERSION",
    "SUPPORTED_ARCHITECTURES",
    "GGUFImportError",
    "convert_gguf",
    "preferred_float_dtype",
    "supported_tensor_types",
]

CONVERTER_VERSION = 2
"""Stored in config.json; bump it when the output changes so cached conversions are redone."""

ALLOWED_BITS = (4, 5, 6, 8)
SHARD_BYTES = 512 * 2**20
"""Weights are flushed to a new safetensors shard past this size, which bounds the memory a conversion holds."""
_REQUANTIZED_DEFAULT_BITS = {"Q6_K": 8}
"""Default width for types without an exact mapping; anything not listed gets 4 bits. Q6_K holds the tensors
llama.cpp keeps precise (output head, some attn_v/ffn_down); on the demo model's weights, 6-bit cost 0.008
bits per character and 8-bit nothing measurable (benchmarks/gguf_quality.py), so it gets 8."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class _Plan:
    """How one tensor is stored: "exact" codes at `bits`, "requantize" to `bits`, or "dense" floats."""

    path: str
    bits: int = 0


def supported_tensor_types() -> list[str]:
    """The ggml type names this converter reads: exact repacks, floats, and everything `gguf` can decode."""
    from gguf.constants import GGMLQuantizationType

    return [t.name for t in GGMLQuantizationType if gguf_tensors.can_dequantize(t.name)]


def convert_gguf(
    gguf_path: str | Path,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    bits: int | None = None,
    keep_float: bool = False,
) -> Path:
    """Convert `gguf_path` into an MLX model folder at `out_dir` (created if needed) and return it.

    Scales, biases and dense tensors are float32 when MLX's default device is the CPU, because MLX's CPU
    quantized matmul is about 40x slower with float16 scales; on a GPU they are float16 (bfloat16 for a BF16
    GGUF). llama.cpp's permuted Q/K rows (llama, mistral) are put back in Hugging Face order, so the folder
    uses mlx-lm's standard rope. `config.json` is written last, so a folder without one is incomplete.

    Raises `GGUFImportError` naming the file and the key, tensor or type at fault for a non-GGUF, truncated,
    inconsistent or unsupported file. `progress`, if given, receives short human-readable steps, and one
    line per tensor with a bar, the count of tensors done and the speed in MB/s.
    """
    import mlx.core as mx

    if bits is not None and bits not in ALLOWED_BITS:
        raise GGUFImportError(f"--bits {bits} is not supported; choose one of {', '.join(map(str, ALLOWED_BITS))}.")
    if bits is not None and keep_float:
        raise GGUFImportError("--bits and --keep-float contradict each other: choose one.")
    report: Progress = progress or (lambda _message: None)
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    report(f"Reading {gguf_path.name}")
    header = read_header(gguf_path)
    try:
        arch = architecture_of(header)
        _check_tensor_types(header)
        config = model_config(header, arch)
        _check_shapes(header, arch, config)
    except GGUFImportError as error:
        raise GGUFImportError(f"{gguf_path}: {error}") from None

    # The tokenizer first: it is cheap, and an unsupported one should fail before the tensors are read.
    out_dir.mkdir(parents=True, exist_ok=True)
    report(f"Building tokenizer ({len(header.metadata.get('tokenizer.ggml.tokens') or [])} tokens)")
    try:
        stop_ids = write_tokenizer_files(header.metadata, out_dir)
    except GGUFImportError as error:
        raise GGUFImportError(f"{gguf_path}: {error}") from None

    types = Counter(info.type_name for info in header.tensors.values())
    float_dtype = preferred_float_dtype(types)
    module_bits = _write_weights(mx, header, arch, out_dir, getattr(mx, float_dtype), bits, keep_float, report)

    file_type = _dominant_matrix_type(header)
    config.update(_quantization_config(module_bits))
    if stop_ids:
        config["eos_token_id"] = stop_ids[0] if len(stop_ids) == 1 else stop_ids
    if isinstance(bos := header.metadata.get("tokenizer.ggml.bos_token_id"), int):
        config["bos_token_id"] = bos
    config["gguf"] = {
        "file": gguf_path.name,
        "architecture": arch.gguf_name,
        "file_type": file_type,
        "tensor_types": dict(sorted(types.items())),
        "float_dtype": float_dtype,
        "bits": bits,
        "keep_float": keep_float,
        "turn_format": (format_name := turn_format(header.metadata)[0]),
        "base_model": format_name != FROM_FILE,  # no chat template in the file: a base model
        "converter_version": CONVERTER_VERSION,
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")  # last: marks the folder whole
    report(f"Converted {gguf_path.name} ({file_type})")
    return out_dir


def _check_tensor_types(header: GGUFHeader) -> None:
    for info in header.tensors.values():
        if info.type_name not in gguf_tensors.EXACT_TYPES and not gguf_tensors.can_dequantize(info.type_name):
            raise GGUFImportError(
                f"tensor {info.name} has type {info.type_name}, which is not supported; supported tensor "
                f"types: {', '.join(supported_tensor_types())}."
            )


def _check_shapes(header: GGUFHeader, arch: Architecture, config: dict[str, Any]) -> None:
    """Every tensor must have the shape mlx-lm's model builds from the metadata, and every parameter a tensor.

    mlx-lm's model is built lazily (MLX allocates nothing until evaluated), so this costs milliseconds and
    turns a mismatch into a message naming the tensor, instead of a failure inside `mlx_lm.load` later.
    """
    import importlib

    from mlx.utils import tree_flatten

    module = importlib.import_module(f"mlx_lm.models.{arch.model_type}")
    model = module.Model(module.ModelArgs.from_dict(config))
    expected = {name: tuple(value.shape) for name, value in tree_flatten(model.parameters())}
    given: dict[str, str] = {}
    for info in header.tensors.values():
        if info.name in arch.ignored_tensors:
            continue
        name = arch.mlx_name(info.name)
        given[name] = info.name
        if name not in expected:
            raise GGUFImportError(f"tensor {info.name} has no place in a {arch.gguf_name} model with this metadata.")
        if info.shape != expected[name]:
            keys = ("embedding_length", "attention.head_count", "attention.head_count_kv", "attention.key_length",
                    "feed_forward_length")  # fmt: skip
            stated = ", ".join(
                f"{arch.gguf_name}.{key} = {header.metadata[f'{arch.gguf_name}.{key}']}"
                for key in keys
                if f"{arch.gguf_name}.{key}" in header.metadata
            )
            raise GGUFImportError(
                f"tensor {info.name} has shape {info.shape}, but the metadata ({stated}) implies "
                f"{expected[name]}: the file is inconsistent."
            )
    tied = config["tie_word_embeddings"]
    missing = [n for n in expected if n not in given and not (n.startswith("lm_head") and tied)]
    if missing:
        raise GGUFImportError(f"tensors are missing for {', '.join(missing[:3])} (mlx-lm names).")


def _plan(info: TensorInfo, mlx_name: str, bits: int | None, keep_float: bool) -> _Plan:
    matrix = len(info.shape) == 2 and mlx_name.endswith(".weight")
    quantizable = matrix and info.shape[1] % gguf_tensors.GROUP_SIZE == 0
    if keep_float or not quantizable:
        return _Plan("dense")
    native = gguf_tensors.native_bits(info.type_name)
    if bits is None:
        if native:
            return _Plan("exact", native)
        return _Plan("requantize", _REQUANTIZED_DEFAULT_BITS.get(info.type_name, 4))
    return _Plan("exact", bits) if native and native <= bits else _Plan("requantize", bits)


def _read_rows(header: GGUFHeader, info: TensorInfo, permute_heads: int | None) -> np.ndarray:
    """The tensor's bytes as (rows, bytes per row); ggml blocks never cross rows, so rows can be reordered raw."""
    raw = np.fromfile(header.path, dtype=np.uint8, count=info.nbytes, offset=header.data_offset + info.offset)
    if raw.size != info.nbytes:
        raise GGUFImportError(f"{header.path} is truncated inside tensor {info.name}. Download it again.")
    rows = raw.reshape(math.prod(info.shape[:-1]) if len(info.shape) > 1 else info.shape[0], -1)
    if permute_heads:
        rows = _unpermute_rows(rows, permute_heads)
    return rows


def _unpermute_rows(x: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's Q/K permutation: rows go from (head, half, pair) back to (head, pair, half)."""
    rows = x.shape[0]
    return np.ascontiguousarray(x.reshape(n_heads, rows // n_heads // 2, 2, *x.shape[1:]).swapaxes(1, 2)).reshape(x.shape)


def _row_chunks(info: TensorInfo) -> int:
    """Rows per chunk so that a chunk's float32 values stay near 16 MB, whatever the tensor's size: the chunk's
    temporaries (codes, bit planes, floats) are the conversion's working set on top of the shard it fills."""
    return max(1, (4 * 2**20) // max(1, info.shape[-1]))


def _convert_tensor(mx: Any, info: TensorInfo, rows: np.ndarray, plan: _Plan, float_dtype: Any) -> list[Any]:
    """The MLX arrays for one tensor: [weight] when dense, [weight, scales, biases] when quantized."""
    parts: list[list[Any]] = []
    step = _row_chunks(info) if plan.path != "dense" else rows.shape[0]
    for start in range(0, rows.shape[0], step):
        chunk = rows[start : start + step]
        shape = (chunk.shape[0], *info.shape[1:]) if len(info.shape) > 1 else info.shape
        if plan.path == "exact":
            codes = gguf_tensors.exact_codes(info.type_name, chunk, shape)
            arrays = gguf_tensors.to_mlx_quantized(mx, codes, plan.bits, float_dtype)
        else:
            dense = gguf_tensors.dequantize(info.type_name, chunk, shape)
            if plan.path == "requantize":
                arrays = gguf_tensors.requantize(mx, dense, plan.bits, float_dtype)
            else:
                arrays = (mx.array(dense).astype(float_dtype),)
        mx.eval(*arrays)
        parts.append(list(arrays))
    if len(parts) == 1:
        return parts[0]
    return [mx.concatenate([part[i] for part in parts], axis=0) for i in range(len(parts[0]))]


def _write_weights(
    mx: Any,
    header: GGUFHeader,
    arch: Architecture,
    out_dir: Path,
    float_dtype: Any,
    bits: int | None,
    keep_float: bool,
    report: Progress,
) -> dict[str, int | None]:
    """Convert and write every tensor in file order; return each matrix module's bit width (None: dense)."""
    heads = int(header.metadata[f"{arch.gguf_name}.attention.head_count"])
    kv_heads = int(header.metadata.get(f"{arch.gguf_name}.attention.head_count_kv", heads))
    tensors = [info for info in header.tensors.values() if info.name not in arch.ignored_tensors]
    total_bytes = sum(info.nbytes or 0 for info in tensors)
    shard: dict[str, Any] = {}
    shard_files: list[tuple[Path, list[str]]] = []
    module_bits: dict[str, int | None] = {}
    started, done_bytes = time.monotonic(), 0

    def flush() -> None:
        path = out_dir / f"model-{len(shard_files) + 1:05d}.safetensors"
        mx.save_safetensors(str(path), shard, metadata={"format": "mlx"})
        shard_files.append((path, list(shard)))
        shard.clear()
        mx.clear_cache()  # hand the written shard's buffers back to the system, not to MLX's cache

    for done, info in enumerate(tensors, start=1):
        name = arch.mlx_name(info.name)
        module = info.name.rsplit(".", 1)[0]
        permute = None
        if arch.permuted_qk and module.endswith(".attn_q"):
            permute = heads
        elif arch.permuted_qk and module.endswith(".attn_k"):
            permute = kv_heads
        plan = _plan(info, name, bits, keep_float)
        arrays = _convert_tensor(mx, info, _read_rows(header, info, permute), plan, float_dtype)
        if arch.norm_offset and info.name.endswith("norm.weight"):
            arrays[0] = (arrays[0].astype(mx.float32) - arch.norm_offset).astype(float_dtype)
        base = name.removesuffix(".weight")
        if len(arrays) == 3:
            shard.update({name: arrays[0], f"{base}.scales": arrays[1], f"{base}.biases": arrays[2]})
        else:
            shard[name] = arrays[0]
        if len(info.shape) == 2 and name.endswith(".weight"):
            module_bits[base] = plan.bits or None
        done_bytes += info.nbytes or 0
        report(_progress_line(done, len(tensors), done_bytes, total_bytes, time.monotonic() - started))
        if sum(a.nbytes for a in shard.values()) >= SHARD_BYTES:
            flush()
    if shard or not shard_files:
        flush()
    _name_shards(out_dir, shard_files)
    return module_bits


def _name_shards(out_dir: Path, shard_files: list[tuple[Path, list[str]]]) -> None:
    """One shard is `model.safetensors`; several get Hugging Face's names and an index, as mlx-lm expects."""
    if len(shard_files) == 1:
        shard_files[0][0].rename(out_dir / "model.safetensors")
        return
    weight_map = {}
    for number, (path, names) in enumerate(shard_files, start=1):
        final = out_dir / f"model-{number:05d}-of-{len(shard_files):05d}.safetensors"
        path.rename(final)
        weight_map.update({name: final.name for name in names})
    index = {"metadata": {}, "weight_map": dict(sorted(weight_map.items()))}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=1) + "\n")


def _progress_line(done: int, total: int, done_bytes: int, total_bytes: int, elapsed_s: float) -> str:
    width = 24
    filled = round(width * done_bytes / total_bytes) if total_bytes else width
    speed = done_bytes / 1e6 / elapsed_s if elapsed_s > 0 else 0.0
    return f"Converting [{'#' * filled}{'.' * (width - filled)}] {done}/{total} tensors, {speed:.0f} MB/s"


def preferred_float_dtype(tensor_types: Mapping[str, int]) -> str:
    """The float dtype a conversion stores for this device: see `convert_gguf` for why.

    `tensor_types` counts the GGUF's tensor types by name; a BF16 file keeps bfloat16 on a GPU.
    """
    import mlx.core as mx

    if mx.default_device() == mx.cpu:
        return "float32"
    return "bfloat16" if tensor_types.get("BF16") else "float16"


def _quantization_config(module_bits: dict[str, int | None]) -> dict[str, Any]:
    """The `quantization` block: the most common bit width as default, other modules listed by name."""
    counts = Counter(bits for bits in module_bits.values() if bits)
    if not counts:
        return {}
    default_bits = counts.most_common(1)[0][0]
    group = gguf_tensors.GROUP_SIZE
    quantization: dict[str, Any] = {"group_size": group, "bits": default_bits, "mode": "affine"}
    for module, bits in sorted(module_bits.items()):
        if bits is None:
            quantization[module] = False
        elif bits != default_bits:
            quantization[module] = {"group_size": group, "bits": bits, "mode": "affine"}
    return {"quantization": quantization, "quantization_config": quantization}


def _dominant_matrix_type(header: GGUFHeader) -> str:
    """The ggml type holding most matrix weights, e.g. "Q4_K": what the file calls its quantization."""
    sizes: Counter = Counter()
    for info in header.tensors.values():
        if len(info.shape) == 2:
            sizes[info.type_name] += math.prod(info.shape)
    return sizes.most_common(1)[0][0] if sizes else "F32"
