"""Saving a conversation's prompt cache after an answer: the whole file against a segment of the new positions
(issue 15), and reading each back.

    python benchmarks/segment_write.py [--tokens 2300,9400] [--new 120] [--rounds 9] [--kv-bits 8] [--segments K]
        [--shape demo8|1b] [--json OUT]

The cache has the shape of the 8-layer demo-shaped model long_bench uses on the CPU (SmolLM2-135M's layers: 3 KV
heads of 64; float32 as the CPU runs; bfloat16 on a GPU), filled through mlx-lm's `KVCache` with random keys and
values (a write's cost does not depend on the values). Each round, alternating which goes first:

- whole: a `SavedPromptCaches` with no record of the conversation saves the N-token cache (what every answer did);
- segment: the cache minus its last `--new` tokens is saved (untimed), the tokens put back, and the save of the
  N-token cache timed: it writes only the `--new` positions (with `--segments K`, the base and K-1 segments of
  `--new` tokens each come first, untimed, so the read joins K segments).

Then the reads (`SavedPromptCaches.load`, as a resume after a restart does: read, join, pad, evaluate) of the
whole file and of the base plus its segments, alternating. Times are wall seconds on this thread; medians, with
the min and max, and the load average before and after.

Run on the H200 on 1 Dec (round 5, the first line below with --rounds 5; BENCHMARKS.md). The runs, from the repo root:

    timeout 60 python3 benchmarks/segment_write.py --shape 1b --rounds 7 --json $OUT/segments/one.json
    timeout 40 python3 benchmarks/segment_write.py --shape 1b --rounds 5 --segments 8 --json $OUT/segments/eight.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {"demo8": (8, 3, 64), "1b": (16, 8, 64)}
"""Layers, KV heads, head size: "demo8" the 8-layer demo-shaped CPU model, "1b" the GPU runs' 1B bench model."""


def filled_cache(tokens: int, kv_bits: int | None, shape: str = "demo8"):
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache

    from mlxchat.engine.local.prompt_cache import quantize_cache

    dtype = mx.float32 if mx.default_device() == mx.cpu else mx.bfloat16
    layers, kv_heads, head_size = SHAPES[shape]
    cache = [KVCache() for _ in range(layers)]
    for entry in cache:
        for start in range(0, tokens, 512):  # in prefill-sized chunks, so the buffer grows as a turn's does
            count = min(512, tokens - start)
            keys = mx.random.normal((1, kv_heads, count, head_size)).astype(dtype)
            entry.update_and_fetch(keys, keys * 0.5)
    quantize_cache(cache, kv_bits)
    mx.eval([entry.state for entry in cache])
    return cache


def spread(values: list[float]) -> dict:
    return {"median_ms": round(statistics.median(values) * 1e3, 2), "min_ms": round(min(values) * 1e3, 2),
            "max_ms": round(max(values) * 1e3, 2), "n": len(values)}


def measure(tokens: int, new: int, rounds: int, kv_bits: int | None, work: Path, segments: int = 1,
            shape: str = "demo8") -> dict:
    from mlxchat.engine.local.prompt_cache import SavedPromptCaches
    from mlxchat.engine.saved_caches import SavedCacheFolder

    cache = filled_cache(tokens, kv_bits, shape)
    ids = [1 + i % 4000 for i in range(tokens)]
    times: dict[str, list[float]] = {"whole": [], "segment": []}
    sizes = {}
    for round_ in range(rounds):
        for side in (("whole", "segment") if round_ % 2 == 0 else ("segment", "whole")):
            folder = SavedCacheFolder(work / f"{side}-{tokens}-{round_}", cap_bytes=2**40)
            saved = SavedPromptCaches(folder)
            if side == "segment":  # the base, then the segments before the timed one (untimed)
                for entry in cache:
                    entry.offset -= new * segments
                saved.save("chat", "model", ids[: tokens - new * segments], cache, kv_bits)
                for count in range(segments - 1, 0, -1):
                    for entry in cache:
                        entry.offset += new
                    saved.save("chat", "model", ids[: tokens - new * count], cache, kv_bits)
                for entry in cache:
                    entry.offset += new
            started = time.perf_counter()
            saved.save("chat", "model", ids, cache, kv_bits)
            times[side].append(time.perf_counter() - started)
            files = folder.files_of("chat")
            assert len(files) == (1 + segments if side == "segment" else 1), files
            written = folder.segment_for("chat", segments) if side == "segment" else folder.file_for("chat")
            sizes[side] = written.stat().st_size
    reads: dict[str, list[float]] = {"whole": [], "segment": []}
    for round_ in range(rounds):
        for side in (("whole", "segment") if round_ % 2 == 0 else ("segment", "whole")):
            folder = SavedCacheFolder(work / f"{side}-{tokens}-{round_}", cap_bytes=2**40)
            started = time.perf_counter()
            found = SavedPromptCaches(folder).load("chat", "model", kv_bits)
            reads[side].append(time.perf_counter() - started)
            assert found is not None and len(found[0]) == tokens
    return {
        "tokens": tokens, "new_tokens": new, "kv_bits": kv_bits, "segments": segments, "shape": shape,
        "write_whole": spread(times["whole"]), "write_segment": spread(times["segment"]),
        "file_whole_mb": round(sizes["whole"] / 2**20, 2), "file_segment_mb": round(sizes["segment"] / 2**20, 2),
        "read_whole": spread(reads["whole"]), "read_base_and_segment": spread(reads["segment"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", default="2300,9400")
    parser.add_argument("--new", type=int, default=120, help="tokens an answer adds (its question and answer)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--kv-bits", type=int, default=None)
    parser.add_argument("--segments", type=int, default=1, help="segments the segment side ends with (at most 8)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="demo8")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import mlx.core as mx

    results = {"device": str(mx.default_device()), "load_before": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory() as work:
        for tokens in (int(t) for t in args.tokens.split(",")):
            run = measure(tokens, args.new, args.rounds, args.kv_bits, Path(work), args.segments, args.shape)
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    results["load_after"] = os.getloadavg()
    print("load average before", results["load_before"], "after", results["load_after"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
