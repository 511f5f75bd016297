"""How long the model picker takes to open with 50 models in the Hugging Face cache.

Builds 50 small but realistic MLX model folders (config.json, tokenizer_config.json with a chat template, two
safetensors shards with real headers) in a temporary HF cache, then opens `ModelPickerScreen` in a headless
Textual app and times push → every row listed (the listing reads configs and headers; no model is loaded).
Also times `list_models()` alone. Medians over `--runs`.

    .venv/bin/python benchmarks/picker_bench.py --models 50 --runs 7
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path


def write_model(snapshot: Path, index: int) -> None:
    snapshot.mkdir(parents=True)
    config = {
        "model_type": "llama" if index % 3 else "qwen3",
        "hidden_size": 2048,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "max_position_embeddings": 40960,
        "quantization": {"group_size": 64, "bits": 4},
    }
    (snapshot / "config.json").write_text(json.dumps(config))
    template = "{% if enable_thinking %}<think>{% endif %}" if index % 2 else "{{ messages }}"
    (snapshot / "tokenizer_config.json").write_text(json.dumps({"chat_template": template, "added_tokens_decoder": {
        str(i): {"content": f"<tok{i}>", "special": True} for i in range(200)
    }}))
    for shard in (1, 2):
        header = json.dumps({f"w{i}": {"dtype": "U32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(300)})
        (snapshot / f"model-0000{shard}-of-00002.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0" * 1200)


async def open_picker_once(expected_rows: int) -> tuple[float, float]:
    """(wall s, CPU s of this process) from push to every row listed; on a busy machine the CPU time is the
    steadier number (the wall time waits for other processes too)."""
    from textual.app import App
    from textual.widgets import OptionList

    from mlxchat.ui.screens.model_picker import ModelPickerScreen

    app = App()
    async with app.run_test(size=(120, 40)) as pilot:
        start, cpu = time.perf_counter(), time.process_time()
        await app.push_screen(ModelPickerScreen(context_tokens=4096))
        options = app.screen.query_one(OptionList)
        while options.option_count < expected_rows:
            await pilot.pause(0)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        os.environ["HF_HUB_CACHE"] = str(Path(root) / "hub")
        os.environ["MLXCHAT_DATA_DIR"] = str(Path(root) / "data")
        os.environ["MLXCHAT_CACHE_DIR"] = str(Path(root) / "cache")
        for index in range(args.models):
            write_model(Path(root) / "hub" / f"models--bench--model-{index:02d}" / "snapshots" / ("a" * 40), index)
        from mlxchat.models.discovery import list_models

        listed = list_models()
        expected = len(listed)
        listing = []
        for _ in range(args.runs):
            start = time.perf_counter()
            list_models()
            listing.append(time.perf_counter() - start)
        opening = [asyncio.run(open_picker_once(expected)) for _ in range(args.runs)]
    print(f"{expected} models listed ({args.models} in the HF cache); load average {os.getloadavg()[0]:.1f}")
    print(f"list_models()      median {statistics.median(listing) * 1000:6.1f} ms  max {max(listing) * 1000:6.1f} ms")
    walls, cpus = [run[0] for run in opening], [run[1] for run in opening]
    print(f"picker push → rows median {statistics.median(walls) * 1000:6.1f} ms  max {max(walls) * 1000:6.1f} ms (wall)")
    print(f"                   median {statistics.median(cpus) * 1000:6.1f} ms  max {max(cpus) * 1000:6.1f} ms (CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
