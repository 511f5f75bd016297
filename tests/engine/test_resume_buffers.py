"""A prompt cache read back from disk continues as one that never left memory (issue 15: resume speed)."""

from __future__ import annotations

import pytest

from mlxchat.engine import ChatRequest, Engine, LoadModel, Message, SamplingParams, Started
from mlxchat.engine.saved_caches import SavedCacheFolder

GREEDY = SamplingParams(temperature=0, max_tokens=6)


@pytest.fixture
def loaded(tiny_model):
    from mlx_lm import load

    return load(str(tiny_model))


def saved_cache(model, folder: SavedCacheFolder, tokens: list[int]):
    """`tokens` prefilled into a fresh cache, saved as the engine saves it; the `SavedPromptCaches` reading it."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    cache = make_prompt_cache(model)
    model(mx.array(tokens)[None], cache=cache)
    mx.eval([entry.state for entry in cache])
    saved = SavedPromptCaches(folder)
    saved.save("chat", "model", tokens, cache, None)
    return saved


def test_a_cache_read_from_disk_has_room_in_a_buffer_of_no_whole_steps(loaded, tmp_path):
    """The follow-up's first write goes in place (no reallocation), and the buffer is not whole 256-token steps,
    so MLX's CUDA attention decodes with its vector kernel, not a cuDNN graph built per buffer size."""
    model, _ = loaded
    saved = saved_cache(model, SavedCacheFolder(tmp_path / "caches"), list(range(1, 301)))
    tokens, cache, _ = saved.load("chat", "model", None)
    assert len(tokens) == 300
    for entry in cache:
        assert entry.offset == 300
        assert entry.keys.shape[2] == entry.values.shape[2] == 556 and 556 % 256
    before = cache[0].keys
    import mlx.core as mx

    model(mx.array([[5, 6, 7]]), cache=cache)
    assert cache[0].keys.shape[2] == 556 and cache[0].offset == 303
    del before


def test_a_cache_of_whole_steps_gets_255_free_slots(loaded, tmp_path):
    model, _ = loaded
    saved = saved_cache(model, SavedCacheFolder(tmp_path / "caches"), list(range(1, 257)))
    _, cache, _ = saved.load("chat", "model", None)
    assert {entry.keys.shape[2] for entry in cache} == {511}


def test_a_padded_cache_computes_what_the_exact_one_does(loaded, tmp_path):
    import mlx.core as mx
    from mlx_lm.models.cache import load_prompt_cache

    model, _ = loaded
    folder = SavedCacheFolder(tmp_path / "caches")
    saved = saved_cache(model, folder, list(range(1, 201)))
    _, padded, _ = saved.load("chat", "model", None)
    exact = load_prompt_cache(str(folder.file_for("chat")))  # mlx-lm's own read: buffers of exactly 200 tokens
    assert exact[0].keys.shape[2] == 200 and padded[0].keys.shape[2] == 456
    follow = mx.array([[9, 10, 11, 12]])
    for _ in range(3):  # the follow-up's prefill, then decode steps
        a, b = model(follow, cache=padded), model(follow, cache=exact)
        assert mx.allclose(a, b, atol=1e-5).item()
        follow = mx.argmax(a[:, -1:], axis=-1)


def test_a_quantized_cache_read_from_disk_has_room_too(tmp_path):
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.models.cache import QuantizedKVCache, make_prompt_cache

    from mlxchat.engine.local.prompt_cache import SavedPromptCaches, quantize_cache
    from mlxchat.models.random_weights import RandomLlamaSpec, build_random_llama

    # Heads of 64, so the KV cache quantizes (the tiny model's heads of 16 are below MLX's smallest group).
    spec = RandomLlamaSpec(hidden_size=128, num_attention_heads=2, num_key_value_heads=1)
    model, _ = load(str(build_random_llama(tmp_path / "heads-64", spec)))
    cache = make_prompt_cache(model)
    model(mx.array(list(range(1, 101)))[None], cache=cache)
    quantize_cache(cache, 8)
    assert isinstance(cache[0], QuantizedKVCache)
    saved = SavedPromptCaches(SavedCacheFolder(tmp_path / "caches"))
    saved.save("chat", "model", list(range(1, 101)), cache, 8)
    _, loaded_cache, _ = saved.load("chat", "model", 8)
    assert {array.shape[2] for array in loaded_cache[0].keys} == {356}
    model(mx.array([[3, 4]]), cache=loaded_cache)
    assert loaded_cache[0].offset == 102


def test_a_resumed_follow_up_answers_as_the_conversation_did_in_memory(event_log, tiny_model, tmp_path):
    """Through the engine: the follow-up after a restart (the saved cache, padded) gives the answer the same
    engine gives when the cache never left memory."""
    history = (Message("user", "The capital of France is Paris. Tell me about cats."),)

    def answers(folder, restart: bool) -> tuple[str, int]:
        engine = Engine(event_log, saved_caches=folder).start()
        try:
            load = LoadModel(str(tiny_model))
            engine.submit(load)
            assert event_log.finished(load.request_id).reason == "stop"
            first = ChatRequest(history, conversation_id="chat", sampling=GREEDY)
            engine.submit(first)
            text = event_log.finished(first.request_id).text
            if restart:
                engine.close(timeout_s=30)
                engine = Engine(event_log, saved_caches=folder).start()
                load = LoadModel(str(tiny_model))
                engine.submit(load)
                assert event_log.finished(load.request_id).reason == "stop"
            follow = ChatRequest(
                history + (Message("assistant", text), Message("user", "And dogs?")),
                conversation_id="chat",
                sampling=GREEDY,
            )
            engine.submit(follow)
            finished = event_log.finished(follow.request_id)
            started = event_log.wait_for(Started, follow.request_id)
            return finished.text, started.cached_tokens
        finally:
            engine.close(timeout_s=30)

    in_memory, cached_in_memory = answers(SavedCacheFolder(tmp_path / "a"), restart=False)
    resumed, cached_resumed = answers(SavedCacheFolder(tmp_path / "b"), restart=True)
    assert cached_resumed == cached_in_memory > 0
    assert resumed == in_memory


def test_warming_a_read_cache_leaves_it_as_it_was(loaded, tmp_path, monkeypatch):
    """`warm_up` (run on a GPU during the hint) feeds a throwaway prefill and decode step, then trims them: the
    offsets and the held keys and values are unchanged, and the follow-up computes what it would have. The
    CPU skips it; here it is forced on (the GPU it is for is not on this machine)."""
    import mlx.core as mx

    from mlxchat.engine.local import generation

    model, _ = loaded
    folder = SavedCacheFolder(tmp_path / "caches")
    saved = saved_cache(model, folder, list(range(1, 201)))
    _, warmed, _ = saved.load("chat", "model", None)
    _, plain, _ = saved.load("chat", "model", None)
    assert not generation.warm_up(model, warmed)  # the CPU: skipped
    monkeypatch.setattr(generation, "running_on_cuda", lambda: True)  # as on CUDA (not on this machine)
    held = [(entry.keys[..., :200, :], entry.values[..., :200, :]) for entry in warmed]
    mx.eval(held)
    assert generation.warm_up(model, warmed)
    for entry, (keys, values) in zip(warmed, held):
        assert entry.offset == 200
        assert mx.array_equal(entry.keys[..., :200, :], keys).item()
        assert mx.array_equal(entry.values[..., :200, :], values).item()
    follow = mx.array([[9, 10, 11, 12]])
    for _ in range(3):
        a, b = model(follow, cache=warmed), model(follow, cache=plain)
        assert mx.allclose(a, b, atol=1e-5).item()
        follow = mx.argmax(a[:, -1:], axis=-1)


def test_a_read_cache_is_not_warmed_on_metal(loaded, tmp_path, monkeypatch):
    """The warm-up is for MLX's CUDA build: on a Mac a hint must not run a throwaway prefill that a message sent
    meanwhile would wait for. Metal is faked (this machine has none): MLX's default device says GPU and Metal is
    available, and `cuda_attention.running_on_cuda` is the one rule that reads them."""
    import mlx.core as mx

    from mlxchat.engine.local import generation

    model, _ = loaded
    saved = saved_cache(model, SavedCacheFolder(tmp_path / "caches"), list(range(1, 201)))
    _, cache, _ = saved.load("chat", "model", None)
    monkeypatch.setattr(mx, "default_device", lambda: mx.Device(mx.gpu))
    monkeypatch.setattr(mx.metal, "is_available", lambda: True)
    assert not generation.warm_up(model, cache)
    assert {entry.offset for entry in cache} == {200}


def test_a_hinted_follow_up_after_a_warm_up_answers_as_in_memory(event_log, tiny_model, tmp_path, monkeypatch):
    """Through the engine, with the warm-up forced on (it runs on a GPU only): the hint reads and warms the
    cache, and the follow-up gives the in-memory answer from the same cached tokens."""
    from mlxchat.engine import PrepareConversation
    from mlxchat.engine.events import ConversationPrepared
    from mlxchat.engine.local import generation

    monkeypatch.setattr(generation, "running_on_cuda", lambda: True)  # as on CUDA (not on this machine)
    calls = []
    original = generation.warm_up
    monkeypatch.setattr(generation, "warm_up", lambda *a: calls.append(original(*a)) or calls[-1])
    history = (Message("user", "The capital of France is Paris. Tell me about cats."),)
    folder = SavedCacheFolder(tmp_path / "caches")

    def engine_with_model():
        engine = Engine(event_log, saved_caches=folder).start()
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        assert event_log.finished(load.request_id).reason == "stop"
        return engine

    engine = engine_with_model()
    try:
        first = ChatRequest(history, conversation_id="chat", sampling=GREEDY)
        engine.submit(first)
        text = event_log.finished(first.request_id).text
        follow = ChatRequest(
            history + (Message("assistant", text), Message("user", "And dogs?")), conversation_id="chat",
            sampling=GREEDY,
        )
        engine.submit(follow)
        in_memory = event_log.finished(follow.request_id).text
    finally:
        engine.close(timeout_s=30)
    engine = engine_with_model()
    try:
        hint = PrepareConversation("chat")
        engine.prepare(hint)
        prepared = event_log.wait_for(ConversationPrepared, hint.request_id)
        assert prepared.cached_tokens > 0 and calls == [True]
        again = ChatRequest(follow.messages, conversation_id="chat", sampling=GREEDY)
        engine.submit(again)
        assert event_log.finished(again.request_id).text == in_memory
        assert event_log.wait_for(Started, again.request_id).cached_tokens > 0
    finally:
        engine.close(timeout_s=30)


def test_only_a_long_prefill_gives_the_buffer_cache_back(loaded, monkeypatch):
    """A follow-up's few new tokens keep MLX's buffer cache for the answer's first step (the allocations it saves
    were ~5 ms of a resumed turn on the H200); a long prompt's prefill still gives its large temporaries back."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    from mlxchat.engine.control import RequestControl
    from mlxchat.engine.local import generation

    model, _ = loaded
    cleared = []
    monkeypatch.setattr(mx, "clear_cache", lambda: cleared.append(True))
    chunker = generation.PrefillChunker(size=256)

    def run(count: int) -> bool:
        cleared.clear()
        generation.prefill(model, make_prompt_cache(model), list(range(1, count + 1)), chunker=chunker,
                           control=RequestControl("r", "chat", "prefill"), emit=lambda _e: None, done_before=0,
                           total=count)
        return bool(cleared)

    assert not run(54)
    assert run(generation.CLEAR_AFTER_TOKENS)
