"""How long reading a GGUF header takes with our reader and with the `gguf` package's `GGUFReader`.

The subject is the part that dominates: a Gemma 3-sized vocabulary (262,144 tokens with scores and token
types) written with `GGUFWriter`, plus one tiny tensor. Run: `.venv/bin/python benchmarks/gguf_reader_speed.py`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_big_vocabulary(path: Path, vocab: int = 262_144) -> None:
    from gguf import GGUFWriter

    rng = np.random.default_rng(0)
    writer = GGUFWriter(str(path), "gemma3")
    writer.add_string("tokenizer.ggml.model", "llama")
    writer.add_array("tokenizer.ggml.tokens", [f"▁tok{i}{'x' * int(rng.integers(0, 8))}" for i in range(vocab)])
    writer.add_array("tokenizer.ggml.scores", rng.standard_normal(vocab).astype(np.float32).tolist())
    writer.add_array("tokenizer.ggml.token_type", [1] * vocab)
    writer.add_tensor("output_norm.weight", np.ones(256, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def best_of(runs: int, read) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    from gguf import GGUFReader

    from mlxchat.models.gguf_reader import read_header

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vocab.gguf"
        write_big_vocabulary(path)
        ours = best_of(3, lambda: read_header(path).metadata["tokenizer.ggml.tokens"])
        # The package parses lazily into numpy parts; the tokens as Python strings are what a converter needs.
        package = best_of(1, lambda: GGUFReader(str(path)).fields["tokenizer.ggml.tokens"].contents())
        size_mb = path.stat().st_size / 1e6
    print(f"262,144-token vocabulary ({size_mb:.1f} MB header):")
    print(f"  mlxchat read_header          {ours:6.2f} s")
    print(f"  gguf.GGUFReader + contents() {package:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
