"""Provides how one GGUF tensor becomes MLX arrays: an exact repack where the layouts agree, else a new quantization.

MLX's affine quantization stores, per group of 32 weights, unsigned codes q and a float scale and bias, with
w = scale * q + bias. Several ggml block types are exactly that shape, so their codes move over untouched:

| ggml type | codes    | scale per 32  | bias per 32 |
|-----------|----------|---------------|-------------|
| Q4_0      | 4-bit    | d             | -8 d        |
| Q4_1      | 4-bit    | d             | m           |
| Q5_0      | 5-bit    | d             | -16 d       |
| Q5_1      | 5-bit    | d             | m           |
| Q8_0      | 8-bit    | d             | -128 d      |
| Q4_K/Q5_K | 4/5-bit  | d * sc        | -dmin * m   |
| Q8_K      | 8-bit    | d             | -128 d      |

Every product above fits a float32 mantissa, so `mx.dequantize` of the repacked tensor equals the `gguf`
package's own dequantization bit for bit (float32 scales; a GPU's float16 scales round d * sc). Q8_K is the
exception that keeps its codes but not every bit: its d is a float32, so d * (q + 128) - 128 d may round in
the last place (Q8_K is llama.cpp's intermediate type and hardly ever stored in a file). Codes can
also be widened (4-bit codes stored as 8-bit) without loss. Types whose scales change every 16 weights
(Q6_K, Q3_K, Q2_K) and the IQ codebook types have no such mapping: they are dequantized with llama.cpp's
`gguf` package and quantized again by MLX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

GROUP_SIZE = 32
"""MLX group size for every quantized output: it equals every ggml sub-block we repack, and costs re-quantized
tensors 0.5 bit per weight of scale and bias, for noticeably lower error than mlx-lm's default 64."""


@dataclass(frozen=True)
class AffineCodes:
    """A matrix as MLX affine codes: `codes` (rows, cols) uint8 below 2**bits, `scales`/`biases` per 32 columns."""

    codes: np.ndarray
    scales: np.ndarray
    biases: np.ndarray
    bits: int


def _f16(blocks: np.ndarray, start: int) -> np.ndarray:
    return blocks[:, start : start + 2].copy().view(np.float16).astype(np.float32)[:, 0]


def _low_high_nibbles(qs: np.ndarray) -> np.ndarray:
    """ggml's 32-weight nibble layout: 16 bytes hold weights 0-15 in low nibbles, 16-31 in high nibbles."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _q4_0(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = _f16(blocks, 0)
    return _low_high_nibbles(blocks[:, 2:18]), d, -8 * d


def _q4_1(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _low_high_nibbles(blocks[:, 4:20]), _f16(blocks, 0), _f16(blocks, 2)


def _fifth_bits(qh: np.ndarray) -> np.ndarray:
    """The 32 high bits of a Q5_0/Q5_1 block, weight j in bit j of a little-endian uint32."""
    return np.unpackbits(qh, axis=-1, bitorder="little")


def _q5_0(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = _f16(blocks, 0)
    codes = _low_high_nibbles(blocks[:, 6:22]) | (_fifth_bits(blocks[:, 2:6]) << 4)
    return codes, d, -16 * d


def _q5_1(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes = _low_high_nibbles(blocks[:, 8:24]) | (_fifth_bits(blocks[:, 4:8]) << 4)
    return codes, _f16(blocks, 0), _f16(blocks, 2)


def _q8_0(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = _f16(blocks, 0)
    return (blocks[:, 2:34].view(np.int8).astype(np.int16) + 128).astype(np.uint8), d, -128 * d


def _k_scales(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale, bias) for the 8 sub-blocks of Q4_K/Q5_K: d * sc and -dmin * m, the 6-bit sc/m unpacked by gguf."""
    from gguf.quants import Q4_K

    d, dmin = _f16(blocks, 0)[:, None], _f16(blocks, 2)[:, None]
    sc, m = Q4_K.get_scale_min(blocks[:, 4:16].copy())
    return d * sc.astype(np.float32), -(dmin * m.astype(np.float32))


def _k_low_nibbles(qs: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K: each 32-byte chunk holds sub-block 2c in low nibbles and 2c+1 in high nibbles."""
    chunks = qs.reshape(len(qs), 4, 1, 32) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
    return (chunks & 0x0F).reshape(len(qs), 8, 32)


def _q4_k(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale, bias = _k_scales(blocks)
    return _k_low_nibbles(blocks[:, 16:144]), scale, bias


def _q5_k(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale, bias = _k_scales(blocks)
    qh = blocks[:, 16:48].reshape(len(blocks), 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)
    return _k_low_nibbles(blocks[:, 48:176]) | ((qh & 1) << 4), scale, bias


def _q8_k(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = blocks[:, 0:4].copy().view(np.float32)  # (n, 1): one scale for all 256 weights
    codes = (blocks[:, 4:260].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
    return codes, np.repeat(d, 8, axis=1), np.repeat(-128 * d, 8, axis=1)


# ggml type -> (native bits, block decoder giving codes, scales and biases of its 32-weight groups).
_EXACT: dict[str, tuple[int, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]]] = {
    "Q4_0": (4, _q4_0),
    "Q4_1": (4, _q4_1),
    "Q5_0": (5, _q5_0),
    "Q5_1": (5, _q5_1),
    "Q8_0": (8, _q8_0),
    "Q4_K": (4, _q4_k),
    "Q5_K": (5, _q5_k),
    "Q8_K": (8, _q8_k),
}
EXACT_TYPES = tuple(_EXACT)
FLOAT_TYPES = ("F32", "F16", "BF16", "F64")


def native_bits(type_name: str) -> int | None:
    """The MLX bit width that holds this ggml type exactly, or None when only a new quantization can."""
    return _EXACT[type_name][0] if type_name in _EXACT else None


def exact_codes(type_name: str, raw: np.ndarray, shape: tuple[int, ...]) -> AffineCodes:
    """Unpack a matrix of an `EXACT_TYPES` type into MLX affine codes, without touching a single value."""
    bits, decode = _EXACT[type_name]
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    block_elems, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    rows, cols = shape
    codes, scales, biases = decode(raw.reshape(-1, block_bytes))
    return AffineCodes(
        codes=codes.reshape(rows, cols),
        scales=scales.reshape(rows, cols // GROUP_SIZE).astype(np.float32),
        biases=biases.reshape(rows, cols // GROUP_SIZE).astype(np.float32),
        bits=bits,
    )


def dequantize(type_name: str, raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Any supported tensor as float32, through llama.cpp's `gguf` package (Q8_K, which it lacks, through ours)."""
    if type_name == "Q8_K":
        codes = exact_codes(type_name, raw, (int(np.prod(shape[:-1])), shape[-1]))
        return _affine_to_float(codes).reshape(shape)
    if type_name == "F64":
        return raw.view(np.float64).astype(np.float32).reshape(shape)
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

    return gguf_dequantize(raw, GGMLQuantizationType[type_name]).astype(np.float32, copy=False).reshape(shape)


def can_dequantize(type_name: str) -> bool:
    """True when this module or the installed `gguf` package has a decoder for the type."""
    if type_name in ("Q8_K", "F64"):
        return True
    try:
        from gguf.constants import GGMLQuantizationType
        from gguf.quants import _type_traits  # the package's registry of decoders, keyed by type
    except ImportError:
        return False
    qtype = GGMLQuantizationType.__members__.get(type_name)
    if qtype is None:
        return False
    if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        return True
    traits = _type_traits.get(qtype)
    return traits is not None and "dequantize_blocks" in vars(traits)


def _affine_to_float(codes: AffineCodes) -> np.ndarray:
    groups = codes.codes.reshape(*codes.scales.shape, GROUP_SIZE).astype(np.float32)
    return (groups * codes.scales[..., None] + codes.biases[..., None]).reshape(codes.codes.shape)


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """MLX's packing: codes as one little-endian bit stream per row, read as uint32 words.

    8 and 4 bits are whole bytes and nibbles, packed directly; other widths go through a bit plane per bit
    (eight times the codes' size in memory, which the converter bounds by working in row chunks)."""
    rows, cols = codes.shape
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if bits == 8:
        return codes.view(np.uint32)
    if bits == 4:
        return np.ascontiguousarray(codes[:, 0::2] | (codes[:, 1::2] << 4)).view(np.uint32)
    planes = (codes[..., None] >> np.arange(bits, dtype=np.uint8)) & 1
    return np.packbits(planes.reshape(rows, cols * bits), axis=1, bitorder="little").view(np.uint32)


def to_mlx_quantized(mx: Any, codes: AffineCodes, bits: int, float_dtype: Any) -> tuple[Any, Any, Any]:
    """(weight, scales, biases) MLX arrays from exact codes, stored at `bits` >= their own width."""
    if bits < codes.bits:
        raise ValueError(f"{codes.bits}-bit codes cannot be stored in {bits} bits without a new quantization")
    return (
        mx.array(pack_codes(codes.codes, bits)),
        mx.array(codes.scales).astype(float_dtype),
        mx.array(codes.biases).astype(float_dtype),
    )


def requantize(mx: Any, dense: np.ndarray, bits: int, float_dtype: Any) -> tuple[Any, Any, Any]:
    """(weight, scales, biases) from float32 values, quantized by MLX in float32 then stored in `float_dtype`."""
    weight, scales, biases = mx.quantize(mx.array(dense, dtype=mx.float32), group_size=GROUP_SIZE, bits=bits)
    return weight, scales.astype(float_dtype), biases.astype(float_dtype)
