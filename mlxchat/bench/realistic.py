"""Provides the realistic answer the benchmarks stream, and the means to stream it through a real model.

A random-weight model prints "!!!!", which never draws a list, a table or code. Here the answer is fixed text:
paragraphs, a list, a table, and a fenced code block of 500 lines (the case where a chat screen's cost grows
with the block). `ForcedTokens` (mlxchat/engine/local/scripted.py) makes that text the model's only choice at
each step, so every token still costs the model's full forward pass; the TUI side gets it through
`Engine(script=...)` and the raw side passes the same processor to `mlx_lm.stream_generate`: identical work.

The bench models' tokenizer is retrained on this text (`fit_tokenizer`), so a token is about a word, as with a
real model's tokenizer; the tiny corpus the random-weight builder trains on would split the text into bytes and
make every measurement count characters instead of tokens.

`paced` holds the stream to a token rate when the model is faster (an H200 runs the 1B at ~400 tok/s): the
forcing processor sleeps, releasing the GIL, until the step's due time, as a slower GPU would keep the owner
thread waiting.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

CODE_LINES = 500

_INTRO = """\
Here is a complete walkthrough of the inventory service, with the reasoning behind each part, the options you
have, and the full module at the end so you can drop it into your project and run it.

The service keeps a small in-memory index of items, persists every change to a journal file, and answers
queries by name, by tag and by price range. The design favours **plain data structures** over clever ones: a
dictionary from identifier to item, a dictionary from tag to identifiers, and a sorted list of prices kept with
`bisect`. Each of these is easy to test on its own, and together they answer every query in logarithmic time or
better. Writes go to the journal *before* they touch the index, so a crash never loses an acknowledged change.

## What you need

1. Python 3.11 or later (the code uses `dataclasses` with `slots=True` and the `|` union syntax).
2. A writable folder for the journal; the service creates the file on its first write.
3. Nothing else: the module uses only the standard library, which keeps deployment to a single file.
4. Optionally `pytest`, to run the tests at the bottom of the module.

## The moving parts

- **`Item`** is a frozen dataclass, so an item can be shared between threads without copying.
- **`Journal`** appends one JSON line per change and replays them on start-up.
- **`Index`** keeps the three lookups consistent; every method either changes all three or none.
- **`Service`** is the public face: it validates input, writes the journal, then updates the index.

## How the lookups compare

| query | structure | cost | notes |
|---|---|---|---|
| by identifier | `dict[str, Item]` | O(1) | the primary store |
| by tag | `dict[str, set[str]]` | O(1) + O(k) | k items carry the tag |
| by price range | sorted `list[tuple[int, str]]` | O(log n + k) | `bisect` on both ends |
| all items | `dict.values()` | O(n) | in insertion order |
| journal replay | one pass over the file | O(changes) | on start-up only |

Prices are stored in cents as integers: floating-point money drifts, and integers sort and compare exactly.
Tags are lower-cased on the way in, so `Kitchen` and `kitchen` are the same tag.

## The module

"""

_OUTRO = """
## Running it

Save the module as `inventory.py` and run `python -m pytest inventory.py` to execute the tests, or import
`Service` from your own code. The journal path defaults to `inventory.jsonl` in the working folder; pass another
one to `Service(path)` when you deploy. If you expect more than a few hundred thousand items, move the index to
SQLite: the `Service` interface stays the same, and only `Index` changes.

A last word on concurrency: the service takes one lock around each write, which is plenty for a web handler or
a command-line tool. Reads need no lock because items are immutable and the index is replaced, not mutated, in
the few places where a reader could otherwise see half an update.
"""


def _code_block(lines: int) -> str:
    """`lines` lines of varied, plausible Python: many small functions and a class or two, as a model writes."""
    header = [
        '"""An inventory service: items, tags, prices, and a journal that survives a crash."""',
        "",
        "from __future__ import annotations",
        "",
        "import bisect",
        "import json",
        "import threading",
        "from dataclasses import dataclass, field",
        "from pathlib import Path",
        "",
    ]
    nouns = ["price", "tag", "name", "stock", "owner", "shelf", "batch", "order", "supplier", "discount", "weight",
             "colour", "region", "label", "review", "return", "invoice", "warehouse", "barcode", "season"]
    body: list[str] = []
    index = 0
    while len(header) + len(body) < lines:
        noun = nouns[index % len(nouns)]
        round_ = index // len(nouns)
        name = f"{noun}_{round_}" if round_ else noun
        body += [
            "",
            f"def find_by_{name}(items: dict[str, dict], wanted: str, limit: int = {10 + index}) -> list[dict]:",
            f'    """Items whose {noun} matches `wanted`, at most `limit` of them, oldest first."""',
            "    found = []",
            "    for key in sorted(items):",
            f"        value = str(items[key].get({noun!r}, '')).strip().lower()",
            "        if value == wanted.strip().lower():",
            "            found.append(items[key])",
            "            if len(found) >= limit:",
            "                break",
            "    return found",
            "",
            f"class {noun.title()}Counter{round_ or ''}:",
            f'    """Counts items by {noun}; {index + 1} of the module\'s counters."""',
            "",
            "    def __init__(self) -> None:",
            "        self.counts: dict[str, int] = {}",
            "",
            "    def add(self, item: dict) -> int:",
            f"        key = str(item.get({noun!r}, 'unknown'))",
            "        self.counts[key] = self.counts.get(key, 0) + 1",
            "        return self.counts[key]",
        ]
        index += 1
    return "\n".join((header + body)[:lines])


def realistic_answer(code_lines: int = CODE_LINES) -> str:
    """Paragraphs, a list, a table, a fenced Python block of `code_lines` lines, and closing paragraphs."""
    return f"{_INTRO}```python\n{_code_block(code_lines)}\n```\n{_OUTRO}"


REALISTIC_ANSWER = realistic_answer()


# ---- bench models whose tokenizer knows the text ------------------------------------------------------------


def fit_tokenizer(folder: Path, vocab_size: int, text: str = REALISTIC_ANSWER) -> None:
    """Retrain the folder's byte-level BPE on `text` (same special tokens, same ids), so a token is a word."""
    from mlxchat.models.random_weights import SPECIAL_TOKENS, train_tokenizer_json

    train_tokenizer_json(folder, vocab_size, [text, "Write a long, detailed story about a lighthouse keeper and a storm."])
    added = {t["content"]: t["id"] for t in json.loads((folder / "tokenizer.json").read_text())["added_tokens"]}
    assert added == {token: i for i, token in enumerate(SPECIAL_TOKENS)}, added


def build_bench_model(folder: Path, spec) -> Path:
    """A random-weight llama of `spec`'s shape whose tokenizer is fitted to the realistic answer."""
    from mlxchat.models.random_weights import build_random_llama

    build_random_llama(folder, spec)
    fit_tokenizer(folder, spec.vocab_size)
    return folder


def eight_b_spec():
    """Llama-3-8B's layer shapes (hidden 4096, 32 layers, MLP 14336, GQA 32/8), 4-bit; the vocabulary is 32k, as
    the realistic text needs no more. About 7 B parameters: the per-token work of the 8B models people run."""
    from mlxchat.models.random_weights import ONE_B, RandomLlamaSpec

    return RandomLlamaSpec(
        hidden_size=4096,
        num_hidden_layers=32,
        intermediate_size=14336,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=ONE_B.vocab_size,
        max_position_embeddings=ONE_B.max_position_embeddings,
        quantize_bits=4,
        dtype=GPU_DTYPE,
    )


GPU_DTYPE = "bfloat16"
"""The GPU bench models' precision, as the checkpoints people run ship: a float32 model would compute and keep its
KV cache at twice a real one's bytes (a 2,400-token 1B cache was a 156 MB file instead of ~80 MB)."""


def one_b_spec():
    """`ONE_B` (llama-3.2-1B's shapes, 4-bit) at the precision real checkpoints ship."""
    from dataclasses import replace

    from mlxchat.models.random_weights import ONE_B

    return replace(ONE_B, dtype=GPU_DTYPE)


def cpu_spec():
    """The tiny random llama's compute with a vocabulary big enough for word tokens (a step well under 1 ms)."""
    from mlxchat.models.random_weights import RandomLlamaSpec

    return RandomLlamaSpec(vocab_size=4096)


# ---- forcing and pacing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerScript:
    """The `Engine(script=...)` function: every chat request is answered with `text`. A class, so that it pickles
    into the engine's own process (`ProcessEngine`)."""

    text: str

    def __call__(self, request) -> str:
        return self.text


def answer_script(text: str = REALISTIC_ANSWER) -> AnswerScript:
    return AnswerScript(text)


@dataclass(frozen=True)
class ForcedAnswerEngine:
    """An engine factory for the benchmarks' engine process: the local `Engine`, forced to answer `text` (None:
    the model answers freely), held to `tokens_per_s` (None: the model's own speed). It pickles, and it is called
    in the child, so the pace it sets there lasts for that process: the benchmark's engine alone."""

    text: str | None = None
    tokens_per_s: float | None = None
    warm_up: bool = True
    """False: no decode warm-up after a load (`generation.WARM_UP_AT_LOAD`), to measure what it buys."""

    def __call__(self, sink):
        from mlxchat.engine import Engine
        from mlxchat.engine.local import generation

        generation.WARM_UP_AT_LOAD = self.warm_up
        if self.tokens_per_s:
            hold_pace(self.tokens_per_s)  # for the rest of this process: the benchmark's engine alone
        return Engine(sink, script=AnswerScript(self.text) if self.text is not None else None)


def forced_ids(tokenizer, text: str = REALISTIC_ANSWER) -> tuple[list[int], int]:
    """The token ids `ForcedTokens` forces for `text`, and the end-of-sequence id it forces after them: the same
    choice `scripted.forced_processor` makes for the engine."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    eos = sorted(tokenizer.eos_token_ids)[0] if tokenizer.eos_token_ids else tokenizer.eos_token_id
    return ids, eos


class Pace:
    """Due times for a stream of `tokens_per_s`: step i is due at start + i / rate. `wait()` sleeps until the
    next step's due time (never catching up with a burst after a slow step)."""

    def __init__(self, tokens_per_s: float) -> None:
        self.interval_s = 1.0 / tokens_per_s
        self.next_due = 0.0

    def wait(self) -> None:
        now = time.perf_counter()
        if self.next_due > now:
            time.sleep(self.next_due - now)
            now = self.next_due
        self.next_due = now + self.interval_s


def paced_processor(processor, tokens_per_s: float | None):
    """`processor` that first waits for its step's due time; `processor` itself when there is no rate. With a rate
    and no processor (a free answer: nothing forced), a processor that only waits and leaves the logits alone."""
    if not tokens_per_s:
        return processor
    pace = Pace(tokens_per_s)

    def paced(tokens, logits):
        pace.wait()
        return processor(tokens, logits) if processor is not None else logits

    return paced


def hold_pace(tokens_per_s: float | None):
    """Hold every forced answer of engines in this process to `tokens_per_s` (None: the model's own speed) until
    the function returned is called, which restores the pace before.

    Benchmark only: it wraps `generation.forced_processor`, the name `text_steps` looks up at each request."""
    from mlxchat.engine.local import generation

    original, outer = generation.forced_processor, _pace[0]

    def forced(script, request, tokenizer):
        return paced_processor(original(script, request, tokenizer), tokens_per_s)

    generation.forced_processor = forced
    _pace[0] = tokens_per_s

    def restore() -> None:
        generation.forced_processor = original
        _pace[0] = outer

    return restore


@contextmanager
def paced(tokens_per_s: float | None) -> Iterator[None]:
    """`hold_pace` for the block. An engine in its own process is paced by its factory (`ForcedAnswerEngine`),
    which `current_pace()` tells the rate: the child's pace must outlive any block (round 8 entered this context
    there without keeping it, so the child's pace ended at once and its "100 tok/s" ran at the model's speed)."""
    restore = hold_pace(tokens_per_s)
    try:
        yield
    finally:
        restore()


_pace: list[float | None] = [None]


def current_pace() -> float | None:
    """The rate of the innermost `paced` context (None outside one, or unpaced)."""
    return _pace[0]


def count_tokens(tokenizer, text: str = REALISTIC_ANSWER) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def code_fence_lines(text: str) -> int | None:
    """How many lines an open (unclosed) code fence at the end of `text` holds so far; None outside a fence."""
    inside, lines = False, 0
    for line in text.split("\n")[:-1]:
        if line.startswith("```") or line.startswith("~~~"):
            inside, lines = not inside, 0
        elif inside:
            lines += 1
    return lines if inside else None


def token_ids_summary(ids: Sequence[int], text: str) -> str:
    return f"{len(ids)} tokens, {len(text)} characters ({len(text) / max(1, len(ids)):.1f} per token)"


def main(argv: list[str] | None = None) -> int:
    """`python -m mlxchat.bench.realistic FOLDER --shape {tiny,1b,8b}`: build a bench model (GPU script)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mlxchat.bench.realistic", description=main.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--shape", choices=("tiny", "1b", "8b"), default="tiny")
    args = parser.parse_args(argv)
    spec = {"tiny": cpu_spec, "1b": one_b_spec, "8b": eight_b_spec}[args.shape]()
    started = time.perf_counter()
    build_bench_model(args.folder, spec)
    size = sum(f.stat().st_size for f in args.folder.iterdir()) / 2**20
    print(f"built {args.shape} bench model in {time.perf_counter() - started:.1f}s: {args.folder} ({size:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
