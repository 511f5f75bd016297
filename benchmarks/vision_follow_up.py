"""What a text follow-up in an image chat spends on its picture before any MLX work, with and without the vision
route's image memory (`mlxchat.engine.local.vision_memo`), alternated in one process.

    python benchmarks/vision_follow_up.py [--shape smolvlm-tiles] [--rounds 7] [--json OUT]

Each round times, both ways in turn, what `_fit_to_context` does to the follow-up's prompt: read the picture from
its file, then run the model's processor over the prompt and picture (resize, tiles, normalize, tokenize). Without
the memory both run in full every turn; with it the second and later turns reuse the first's picture and pixels.
The model is `long_bench`'s random one of the shape asked (its processor files are SmolVLM's), on a 1024x768 JPEG.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from mlxchat.bench.long_bench import photo, vision_bench_model
from mlxchat.bench.stats import median

PROMPT = (
    "<|im_start|>User:<image>What is in this picture?<end_of_utterance>\nAssistant: A photo of many coloured "
    "dots.<end_of_utterance>\nUser: And its colours?<end_of_utterance>\nAssistant:"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="smolvlm-tiles", choices=("smolvlm-tiles", "tiny"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from mlx_vlm.utils import load

    from mlxchat.engine.local.vision import VisionParts, _prepare_inputs, load_vision_model
    from mlxchat.engine.vision_inputs import load_image

    work = Path(tempfile.mkdtemp(prefix="mlxchat-vision-follow-up-"))
    model_path, size = vision_bench_model(args.shape, work)
    picture = photo(work / "photo.jpg", size, seed=0)
    remembering = load_vision_model(model_path)
    model, processor = load(model_path)
    plain = VisionParts(model, processor, None, None, None)

    def without() -> float:
        started = time.perf_counter()
        _prepare_inputs(plain, PROMPT, [load_image(picture)])
        return time.perf_counter() - started

    def with_memory() -> float:
        started = time.perf_counter()
        _prepare_inputs(remembering, PROMPT, remembering.memo.load_images([picture]))
        return time.perf_counter() - started

    with_memory()  # the first image turn: read and processed once
    times: dict[str, list[float]] = {"without": [], "with": []}
    for round_ in range(args.rounds):
        for label, measure in (("without", without), ("with", with_memory))[:: 1 if round_ % 2 else -1]:
            times[label].append(measure())
    result = {
        "shape": args.shape,
        "image_pixels": list(size),
        "prompt_tokens": int(_prepare_inputs(plain, PROMPT, [load_image(picture)])["input_ids"].shape[1]),
        "without_memory_s": median(times["without"]),
        "with_memory_s": median(times["with"]),
        "all_s": times,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
