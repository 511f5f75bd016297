"""Where a resumed follow-up's time goes after a restart (issue 15), phase by phase, in one fresh process.

    python benchmarks/resume_probe.py --model /tmp/m/1b --json OUT [--history-tokens 2000] [--quick]

The H200 run of `long_bench --sections resume` left ~22 ms of a hinted resumed turn (27.4 ms) unexplained: the
prefill of ~55 new tokens at the cached offset and the first decode step. This probe does what the engine does,
with the engine's own functions (`SavedPromptCaches`, `prefill`, `text_steps`), and synchronizes between phases:

- the chat template and tokenizing of the follow-up (`fit_prompt`), median of 5;
- a warm-up turn (the whole follow-up prefilled in 512-token chunks, a few decode steps), as long_bench does;
- trials, each from the saved file (a restart's state): load (read + evaluate), prefill of N new tokens, the first
  token from `generate_step` (its first step plus the pipelined second), two more steps. N is repeated (is there a
  per-shape cost a second run of the same shape skips?) and changed (a new shape); "unpadded" trials read the file
  with mlx-lm's plain `load_prompt_cache` (buffers of exactly the saved tokens: the first write reallocates every
  layer, and CUDA's SDPA takes its cuDNN decode path only for buffers of whole 256-token steps); "padded" ones read
  it as the engine does (`SavedPromptCaches.load`, which now gives whole steps with room: `with_room`); an "in memory" trial is a
  follow-up on the cache a trial left (no restart);
- "W" trials: the engine's read and the hint's warm-up (`generation.warm_up`: a throwaway prefill and decode
  step, trimmed off), then a follow-up of a shape not seen before;
- micro-probes of MLX ops at a shape seen for the first time and again: attention and a matmul.

Writes JSON after every phase, so a run cut short still reports what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--history-tokens", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="fewer trials (a CPU check of the script)")
    args = parser.parse_args(argv)

    started_all = time.perf_counter()
    import_started = time.perf_counter()
    import mlx.core as mx
    from mlx_lm.generate import generation_stream
    from mlx_lm.models.cache import load_prompt_cache, make_prompt_cache

    from mlxchat.bench.long_bench import ANSWER, history_of
    from mlxchat.engine.control import RequestControl
    from mlxchat.engine.local import loader
    from mlxchat.engine.local.context_fit import fit_prompt
    from mlxchat.engine.local.generation import PrefillChunker, prefill, text_steps, warm_up
    from mlxchat.engine.local.prompt_cache import SavedPromptCaches
    from mlxchat.engine.requests import ChatRequest, Message, SamplingParams
    from mlxchat.engine.saved_caches import SavedCacheFolder

    out: dict = {
        "python": platform.python_version(),
        "mlx": mx.__version__,
        "device": str(mx.default_device()),
        "env": {k: v for k, v in os.environ.items() if k.startswith("MLX")},
        "import_s": time.perf_counter() - import_started,
    }

    def write() -> None:
        out["total_s"] = time.perf_counter() - started_all
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))

    def sync() -> None:
        mx.synchronize(generation_stream)
        mx.synchronize()

    def timed(work):
        sync()
        began = time.perf_counter()
        result = work()
        sync()
        return result, time.perf_counter() - began

    ref = loader.resolve(args.model, lambda *_: None)
    loaded, out["model_load_s"] = timed(lambda: loader.load(ref, lambda *_: None))
    model, tokenizer = loaded.text_model, loaded.tokenizer
    out["model"] = loaded.info.name
    write()

    # The follow-up as long_bench sends it: the history, an answer, a short question.
    history = history_of(args.history_tokens, loaded.info.path)
    sampling = SamplingParams(temperature=0.0, max_tokens=8)
    first_request = ChatRequest(tuple(history), conversation_id="probe", sampling=sampling)
    follow = history + [Message("assistant", ANSWER), Message("user", "And the ships?")]
    follow_request = ChatRequest(tuple(follow), conversation_id="probe", sampling=sampling)
    fits = []
    for _ in range(5):
        began = time.perf_counter()
        fitted = fit_prompt(tokenizer, follow_request, loaded.info.context_size, loaded.info.name)
        fits.append(time.perf_counter() - began)
    prompt = fitted.tokens
    base = fit_prompt(tokenizer, first_request, loaded.info.context_size, loaded.info.name).tokens
    cached = len(base) - 1  # what a saved first turn holds of the follow-up (the answer's tokens differ here)
    from mlxchat.engine.local.prompt_cache import common_prefix_length

    cached = min(cached, common_prefix_length(base, prompt))
    out["fit_prompt_s"] = {"median": statistics.median(fits), "all": fits}
    # The same with the engine's remembering tokenizer, which knows the first prompt's text and tokens (as the
    # saved cache now carries them): only the follow-up's new text is tokenized.
    from mlxchat.engine.local.prompt_tokens import PromptTokens

    first_memo = PromptTokens()
    fit_prompt(tokenizer, first_request, loaded.info.context_size, "m", first_memo)
    remembered = []
    for _ in range(5):
        memo = PromptTokens(first_memo.text, first_memo.tokens)
        began = time.perf_counter()
        again = fit_prompt(tokenizer, follow_request, loaded.info.context_size, "m", memo)
        remembered.append(time.perf_counter() - began)
    out["fit_prompt_remembered_s"] = {"median": statistics.median(remembered), "all": remembered,
                                      "same_tokens": again.tokens == fitted.tokens}
    out["prompt_tokens"] = len(prompt)
    out["cached_tokens"] = cached
    write()

    control = RequestControl("probe", "chat", "prefill")
    chunker = PrefillChunker(size=512 if mx.default_device().type == mx.gpu else 64)

    def run_prefill(cache, tokens):
        prefill(model, cache, tokens, chunker=chunker, control=control, emit=lambda _e: None, done_before=0, total=0)

    def decode_steps(cache, last_token, steps=3):
        """Seconds to the first token (generate_step's first step and the pipelined second) and each next one."""
        times = []
        generator = text_steps(model, tokenizer, [last_token], cache, follow_request)
        sync()
        began = time.perf_counter()
        try:
            for _ in range(steps):
                next(generator)
                now = time.perf_counter()
                times.append(now - began)
                began = now
        finally:
            generator.close()
        sync()
        return times

    # Warm-up, as long_bench's untimed first turn: kernels for the 512-token chunks and decoding.
    warm = make_prompt_cache(model)
    _, out["warm_up_prefill_s"] = timed(lambda: run_prefill(warm, prompt[:-1]))
    out["warm_up_decode_s"] = decode_steps(warm, prompt[-1], 4)
    del warm
    write()

    # The saved cache, written as the engine writes it after an answer.
    folder = SavedCacheFolder(Path(tempfile.mkdtemp(prefix="resume-probe-")), cap_bytes=2**40)
    saved = SavedPromptCaches(folder)
    first = make_prompt_cache(model)
    run_prefill(first, prompt[:cached])
    _, out["save_s"] = timed(lambda: saved.save("probe", "key", prompt[:cached], first, None))
    out["file_bytes"] = folder.file_for("probe").stat().st_size
    del first
    write()

    extra = [t for t in prompt[cached:]]  # the follow-up's new tokens
    filler = tokenizer.encode(ANSWER * 4, add_special_tokens=False)

    def new_tokens(n: int) -> list[int]:
        return (extra + filler)[:n]

    def exact_load():
        cache = load_prompt_cache(str(folder.file_for("probe")))
        mx.eval([entry.state for entry in cache])
        return cache

    def buffer_of(cache) -> list[int]:
        return [int(cache[0].keys.shape[2]), int(cache[0].offset)]

    trials = out.setdefault("trials", [])

    def trial(label: str, n: int, padded: bool = False, reuse=None, keep_buffers: bool = False) -> list:
        warm = label.startswith("W")  # the hint's warm-up (`generation.warm_up`) after the engine's read
        record = {"label": label, "new_tokens": n, "padded": padded}
        if keep_buffers:  # prefill ends with mx.clear_cache(): does giving buffers back cost the next step?
            clear, mx.clear_cache = mx.clear_cache, lambda: None
            try:
                return trial(label, n, padded, reuse)
            finally:
                mx.clear_cache = clear
        if reuse is None and padded:  # the engine's read (`SavedPromptCaches.load`: buffers of whole steps)
            found, record["load_s"] = timed(lambda: saved.load("probe", "key", None))
            cache = found[1]
            if warm:
                record["warmed"], record["warm_up_s"] = timed(lambda: warm_up(model, cache))
        elif reuse is None:  # mlx-lm's plain read: buffers of exactly the saved tokens (the engine before)
            cache, record["load_s"] = timed(lambda: exact_load())
        else:
            cache = reuse
        record["buffer_before"] = buffer_of(cache)
        tokens = new_tokens(n)
        _, record["prefill_s"] = timed(lambda: run_prefill(cache, tokens[:-1]))
        record["buffer_after_prefill"] = buffer_of(cache)
        record["decode_s"] = decode_steps(cache, tokens[-1])
        record["first_token_total_s"] = record["prefill_s"] + record["decode_s"][0]
        trials.append(record)
        print(json.dumps(record), flush=True)
        write()
        return cache

    plan = [("A1 first of shape", 55, False), ("A2 same shape again", 55, False), ("B1 new shape", 38, False),
            ("B2 same again", 38, False), ("K1 same as A, no clear_cache", 55, False),
            ("P1 padded, new shape", 71, True), ("P2 padded, same again", 71, True),
            ("W1 warmed in the hint, new shape", 63, True), ("W2 warmed, new shape", 29, True),
            ("A3 unpadded 71", 71, False), ("S1 one token new", 1, False), ("S2 one token new, padded", 1, True)]
    if args.quick:
        plan = [step for step in plan if step[0][:2] in ("A1", "A2", "B1", "P1", "W1")]
    for label, n, padded in plan:
        last = trial(label, n, padded, keep_buffers=label.startswith("K"))
    trial("C1 in memory follow-up (no restart)", 47, reuse=last)
    trial("C2 in memory follow-up again", 47, reuse=last)

    # Micro-probes: an op at a shape seen for the first time, then again (MLX's CUDA build may build per shape).
    micro = out.setdefault("micro", [])
    args_ = model.args if hasattr(model, "args") else None
    heads = getattr(args_, "num_attention_heads", 32)
    kv_heads = getattr(args_, "num_key_value_heads", heads)
    hidden = getattr(args_, "hidden_size", 2048)
    head_dim = getattr(args_, "head_dim", None) or hidden // heads
    dtype = model.layers[0].self_attn.q_proj.weight.dtype
    if dtype not in (mx.float16, mx.bfloat16, mx.float32):
        dtype = mx.float32 if mx.default_device().type == mx.cpu else mx.bfloat16
    weight = mx.random.normal((hidden * 4, hidden)).astype(dtype)
    mx.eval(weight)
    for q_len, k_len in [(55, cached + 55), (55, cached + 55), (56, cached + 56), (1, cached + 56), (1, cached + 57),
                         (1, 2560), (1, 2560)]:
        with mx.stream(generation_stream):
            q = mx.random.normal((1, heads, q_len, head_dim)).astype(dtype)
            k = mx.random.normal((1, kv_heads, k_len, head_dim)).astype(dtype)
            v = mx.random.normal((1, kv_heads, k_len, head_dim)).astype(dtype)
            mx.eval(q, k, v)
            mask = "causal" if q_len > 1 else None
            _, sdpa_s = timed(lambda: mx.eval(mx.fast.scaled_dot_product_attention(q, k, v, scale=0.125, mask=mask)))
            x = mx.random.normal((1, q_len, hidden)).astype(dtype)
            mx.eval(x)
            _, mm_s = timed(lambda: mx.eval(x @ weight.T))
        micro.append({"q_len": q_len, "k_len": k_len, "sdpa_s": sdpa_s, "matmul_s": mm_s})
    write()
    print(json.dumps({k: out[k] for k in ("fit_prompt_s", "fit_prompt_remembered_s", "prompt_tokens", "cached_tokens", "micro")}), flush=True)
    print(f"total {time.perf_counter() - started_all:.1f}s", flush=True)
    sys.stdout.flush()
    os._exit(0)  # NOTES-MLX: exiting after generation may abort; the JSON is written


if __name__ == "__main__":
    raise SystemExit(main())
