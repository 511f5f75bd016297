"""How long a saved prompt cache made for another model (or kv_bits) takes to refuse: the old way (read the file
and evaluate every array, then compare its metadata) against `SavedPromptCaches.load`, which reads the header
first. The file holds a Llama-3.2-1B-shaped KV cache (16 layers, 8 KV heads of 64, float16) at 2,000 tokens.
Alternating sides, median of 20; prints the ratio. `python benchmarks/saved_cache_header.py`."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import mlx.core as mx
from mlx_lm.models.cache import KVCache, load_prompt_cache

from mlxchat.engine.local.prompt_cache import SavedPromptCaches
from mlxchat.engine.saved_caches import SavedCacheFolder

TOKENS, LAYERS, KV_HEADS, HEAD_SIZE, ROUNDS = 2000, 16, 8, 64, 20


def main() -> None:
    root = Path(tempfile.mkdtemp())
    cache = []
    for _ in range(LAYERS):
        layer = KVCache()
        shape = (1, KV_HEADS, TOKENS, HEAD_SIZE)
        layer.update_and_fetch(mx.random.normal(shape).astype(mx.float16), mx.random.normal(shape).astype(mx.float16))
        cache.append(layer)
    mx.eval([layer.state for layer in cache])
    saved = SavedPromptCaches(SavedCacheFolder(root / "caches"))
    saved.save("conversation", "model-A", list(range(1, TOKENS + 1)), cache, None)
    path = saved.folder.file_for("conversation")

    def whole_file() -> None:
        arrays, _metadata = load_prompt_cache(str(path), return_metadata=True)
        mx.eval([layer.state for layer in arrays])

    def header_first() -> None:
        assert saved.load("conversation", "model-B", None) is None

    times: dict[str, list[float]] = {"whole": [], "header": []}
    for round_ in range(ROUNDS):
        sides = [("whole", whole_file), ("header", header_first)]
        for name, run in sides if round_ % 2 == 0 else reversed(sides):
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    whole, header = (statistics.median(times[name]) * 1e3 for name in ("whole", "header"))
    print(f"file {path.stat().st_size / 2**20:.1f} MB: read and evaluate {whole:.2f} ms, header only {header:.3f} ms, "
          f"{whole / header:.0f}x (median of {ROUNDS}, alternating)")


if __name__ == "__main__":
    main()
