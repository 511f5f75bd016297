"""How a short prefill's cost grows with its token count on this MLX build (issue 15: the resumed follow-up).

    python benchmarks/prefill_shapes.py [--shape 1b|tiny] [--cached 2347] [--counts 1,2,4,...] [--json OUT]

On the H200 (round 5, `resume_probe.py`) the hinted follow-up's 55 new tokens took 10.8–12.8 ms to prefill over a
2,347-token cache, even with the shape seen before, while a decode step took 2–3 ms: the whole miss of the resume
target. The bench model is 4-bit (as the models people run), so every projection is a quantized matmul, whose
CUDA kernel for one row (`qmv`) differs from the one for several (`qmm`). This probe builds the model in memory
(random weights, the bench model's shapes), fills a cache with `--cached` tokens, then for each count N
prefills N tokens at that offset and trims them off again, median of `--repeats` after one untimed run per N
(its first-use work). One projection alone (`mx.quantized_matmul`, hidden → intermediate) is timed at each N
first, to tell the matmuls' share from the attention's; the JSON is written after every figure. If some N costs much less than a smaller one (a tile
boundary), a prefill could be padded to it and trimmed, as `generation.warm_up` trims its throwaway tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("1b", "tiny"), default="1b")
    parser.add_argument("--cached", type=int, default=2347)
    parser.add_argument("--counts", default="1,2,4,8,16,24,32,48,55,64,96,128,256")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.models import llama
    from mlx_lm.models.cache import make_prompt_cache, trim_prompt_cache

    from mlxchat.models.random_weights import ONE_B, RandomLlamaSpec

    spec = ONE_B if args.shape == "1b" else RandomLlamaSpec(hidden_size=256, intermediate_size=512, quantize_bits=4)
    dtype = mx.bfloat16 if mx.default_device().type == mx.gpu else mx.float32
    model = llama.Model(llama.ModelArgs.from_dict({
        "model_type": "llama", "hidden_size": spec.hidden_size, "num_hidden_layers": spec.num_hidden_layers,
        "intermediate_size": spec.intermediate_size, "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads, "rms_norm_eps": 1e-5, "vocab_size": spec.vocab_size,
        "rope_theta": 10000.0, "tie_word_embeddings": False,
    }))
    model.set_dtype(dtype)
    if spec.quantize_bits:
        nn.quantize(model, group_size=spec.group_size, bits=spec.quantize_bits)
    mx.eval(model.parameters())
    result: dict = {"device": str(mx.default_device()), "mlx": mx.__version__, "shape": args.shape,
                    "cached": args.cached, "forward_ms": {}, "qmm_ms": {}}

    def timed(run) -> float:
        run()  # first use of this shape: kernels, graphs, memory
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    counts = [int(n) for n in args.counts.split(",")]

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))

    layer = model.model.layers[0].mlp.up_proj
    for n in counts:
        x = mx.random.normal((1, n, spec.hidden_size)).astype(dtype)
        result["qmm_ms"][n] = round(timed(lambda: mx.eval(layer(x))), 3)
        print(f"up_proj  N={n:4d}  {result['qmm_ms'][n]:8.3f} ms", flush=True)
        save()
    cache = make_prompt_cache(model)
    for start in range(0, args.cached, 512):
        mx.eval(model(mx.arange(start, min(start + 512, args.cached))[None] % spec.vocab_size, cache=cache))
    mx.eval([c.state for c in cache])
    for n in counts:
        tokens = (mx.arange(n)[None] * 7) % spec.vocab_size

        def forward():
            mx.eval(model(tokens, cache=cache)[:, -1])
            trim_prompt_cache(cache, n)

        result["forward_ms"][n] = round(timed(forward), 3)
        print(f"forward  N={n:4d}  {result['forward_ms'][n]:8.3f} ms", flush=True)
        save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
