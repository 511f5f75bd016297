"""Where does per-token time go? Decode speed of the same model measured four ways in one process:
raw mlx-lm on the main thread, raw mlx-lm on a long-lived worker thread, mlxchat's decode loop on that worker
thread, and the full Engine. Run: python benchmarks/thread_overhead.py MODEL_FOLDER [TOKENS]"""

from __future__ import annotations

import queue
import sys
import threading
import time

import mlx.core as mx
from mlx_lm import load, stream_generate
from mlx_lm.generate import generate_step

MODEL = sys.argv[1]
TOKENS = int(sys.argv[2]) if len(sys.argv) > 2 else 256
RUNS = 3


def rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


def raw(model, tokenizer, prompt):
    times = []
    for _ in stream_generate(model, tokenizer, prompt, max_tokens=TOKENS):
        times.append(time.perf_counter())
    return rate(times)


def bare_steps(model, prompt):
    times = []
    for _ in generate_step(mx.array(prompt), model, max_tokens=TOKENS):
        times.append(time.perf_counter())
    return rate(times)


def on_worker(function):
    box = queue.SimpleQueue()
    threading.Thread(target=lambda: box.put(function()), daemon=True).start()
    return box.get()


class Worker:
    """A long-lived thread that runs the functions it is given (like the engine's owner thread)."""

    def __init__(self):
        self.inbox = queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            function, box = self.inbox.get()
            box.put(function())

    def call(self, function):
        box = queue.SimpleQueue()
        self.inbox.put((function, box))
        return box.get()


def main():
    model, tokenizer = load(MODEL)
    prompt = tokenizer.encode("Write a long story about the sea.")
    worker = Worker()
    worker_model, worker_tokenizer = worker.call(lambda: load(MODEL))
    raw(model, tokenizer, prompt)  # warm-up
    worker.call(lambda: raw(worker_model, worker_tokenizer, prompt))
    cases = {
        "raw stream_generate, main thread": lambda: raw(model, tokenizer, prompt),
        "raw stream_generate, worker thread": lambda: worker.call(lambda: raw(worker_model, worker_tokenizer, prompt)),
        "bare generate_step, main thread": lambda: bare_steps(model, prompt),
        "bare generate_step, worker thread": lambda: worker.call(lambda: bare_steps(worker_model, prompt)),
    }
    results = {name: 0.0 for name in cases}
    for _ in range(RUNS):  # interleaved, so load changes hit every case alike
        for name, function in cases.items():
            results[name] = max(results[name], function())

    from mlxchat.engine import ChatRequest, Engine, Finished, LoadModel, Message, SamplingParams

    events = queue.SimpleQueue()
    engine = Engine(events.put).start()

    def run(request):
        engine.submit(request)
        while True:
            event = events.get()
            if isinstance(event, Finished) and event.request_id == request.request_id:
                return event

    run(LoadModel(MODEL))
    best = 0.0
    for i in range(RUNS + 1):
        finished = run(
            ChatRequest((Message("user", "Write a long story about the sea."),), conversation_id=f"x{i}",
                        sampling=SamplingParams(temperature=0.0, max_tokens=TOKENS))
        )
        best = max(best, finished.stats.decode_tps) if i else best
    results["mlxchat Engine"] = best
    base = results["raw stream_generate, main thread"]
    print(f"device {mx.default_device()}, {TOKENS} tokens, best of {RUNS}")
    for name, value in results.items():
        print(f"{name:<40} {value:8.1f} tok/s  {value / base:.3f}")
    sys.stdout.flush()
    import os

    os._exit(0)


main()
