"""The decode warm-up after a load (`generation.warm_up_decode`, issue 11): on CUDA a fresh engine process's first
answer decoded slower than its second, because MLX loads each kernel at its first use in a process. The warm-up
runs on CUDA only; here it is forced on where the test says so (this machine has no GPU), with real MLX."""

from __future__ import annotations

from mlxchat.engine import ChatRequest, Engine, LoadModel, Message, SamplingParams

GREEDY = SamplingParams(temperature=0, max_tokens=8)
QUESTION = (Message("user", "Tell me about lighthouses."),)


def answer_after_load(event_log, model) -> str:
    engine = Engine(event_log).start()
    try:
        load = LoadModel(str(model))
        engine.submit(load)
        assert event_log.finished(load.request_id).reason == "stop"
        ask = ChatRequest(QUESTION, conversation_id="chat", sampling=GREEDY)
        engine.submit(ask)
        finished = event_log.finished(ask.request_id)
        assert finished.reason == "length" and finished.stats.prompt_tokens > 0
        return finished.text
    finally:
        engine.close(timeout_s=30)


def test_the_warm_up_runs_at_load_on_cuda_and_changes_no_answer(event_log, tiny_model, monkeypatch):
    """It runs once per load, on a cache of its own: the first answer's prompt is prefilled from nothing (no
    warm-up token left in the conversation's cache) and is the answer of an engine that did not warm up."""
    from mlxchat.engine.local import generation

    calls = []
    original = generation.warm_up_decode
    monkeypatch.setattr(generation, "warm_up_decode", lambda model: calls.append(original(model)) or calls[-1])
    cold = answer_after_load(event_log, tiny_model)
    assert calls == [False]  # the CPU: skipped
    monkeypatch.setattr(generation, "running_on_cuda", lambda: True)  # as on CUDA (not on this machine)
    warm = answer_after_load(event_log, tiny_model)
    assert calls == [False, True]
    assert warm == cold and warm


def test_a_warm_up_that_fails_leaves_the_model_loaded(event_log, tiny_model, monkeypatch):
    from mlxchat.engine.local import generation

    def broken(model):
        raise RuntimeError("out of memory while warming up")

    monkeypatch.setattr(generation, "warm_up_decode", broken)
    assert answer_after_load(event_log, tiny_model)


def test_no_warm_up_on_metal(tiny_model, monkeypatch):
    """Not measured on a Mac, so not run there (as the hint's `warm_up`). Metal is faked: MLX's default device says
    GPU and Metal is available, which `cuda_attention.running_on_cuda` reads."""
    import mlx.core as mx
    from mlx_lm import load

    from mlxchat.engine.local import generation

    model, _ = load(str(tiny_model))
    monkeypatch.setattr(mx, "default_device", lambda: mx.Device(mx.gpu))
    monkeypatch.setattr(mx.metal, "is_available", lambda: True)
    assert not generation.warm_up_decode(model)


def test_the_warm_up_leaves_the_random_state_as_it_was(tiny_model, monkeypatch):
    """Its sampled steps draw random numbers; a session seeded with MLXCHAT_SEED must draw what it would have."""
    import mlx.core as mx
    from mlx_lm import load

    from mlxchat.engine.local import generation

    model, _ = load(str(tiny_model))
    monkeypatch.setattr(generation, "running_on_cuda", lambda: True)  # as on CUDA (not on this machine)
    mx.random.seed(7)
    expected = mx.random.uniform(shape=(4,))
    mx.random.seed(7)
    assert generation.warm_up_decode(model)
    assert mx.array_equal(mx.random.uniform(shape=(4,)), expected).item()
