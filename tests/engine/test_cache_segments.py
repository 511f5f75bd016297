"""A conversation's saved cache grows by segments: each answer writes only its new positions (issue 15)."""

from __future__ import annotations

import logging

import pytest

from mlxchat.engine import ChatRequest, Engine, LoadModel, Message, SamplingParams, Started
from mlxchat.engine.saved_caches import MAX_SEGMENTS, SavedCacheFolder


@pytest.fixture
def loaded(tiny_model):
    from mlx_lm import load

    return load(str(tiny_model))[0]


@pytest.fixture
def quantizable(tmp_path_factory):
    """A model whose KV heads (64) are large enough for MLX's quantization groups (the tiny model's 16 are not)."""
    from mlx_lm import load

    from mlxchat.models.random_weights import RandomLlamaSpec, build_random_llama

    spec = RandomLlamaSpec(hidden_size=128, num_attention_heads=2, num_key_value_heads=1)
    return load(str(build_random_llama(tmp_path_factory.mktemp("models") / "heads-64", spec)))[0]


def grow(model, cache, tokens: list[int], kv_bits=None) -> None:
    """Feed `tokens` into the cache, as a turn's prefill does (quantized after it when `kv_bits` asks)."""
    import mlx.core as mx

    from mlxchat.engine.local.prompt_cache import quantize_cache

    model(mx.array(tokens)[None], cache=cache)
    quantize_cache(cache, kv_bits)
    mx.eval([entry.state for entry in cache])


def turns(model, saved, tokens_per_turn: list[list[int]], kv_bits=None, name="chat"):
    """A conversation's turns, its cache saved after each as the engine saves it; returns its tokens and cache."""
    from mlx_lm.models.cache import make_prompt_cache

    cache, tokens = make_prompt_cache(model), []
    for added in tokens_per_turn:
        grow(model, cache, added, kv_bits)
        tokens += added
        saved.save(name, "model", tokens, cache, kv_bits)
    return tokens, cache


def greedy(model, cache, follow: list[int], steps: int = 8) -> list[int]:
    import mlx.core as mx

    out, step = [], mx.array(follow)[None]
    for _ in range(steps):
        logits = model(step, cache=cache)
        step = mx.argmax(logits[:, -1:], axis=-1)
        out.append(step.item())
    return out


def ids(start: int, count: int) -> list[int]:
    return [1 + (start + i) % 250 for i in range(count)]


THREE_TURNS = [ids(0, 120), ids(120, 40), ids(160, 70)]


def names(folder: SavedCacheFolder) -> list[str]:
    return sorted(path.name.split(".", 1)[1] for path in folder.root.iterdir())


@pytest.mark.parametrize("kv_bits", [None, 8])
def test_a_resume_from_a_base_and_segments_answers_as_from_a_whole_file(loaded, quantizable, tmp_path, kv_bits):
    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    model = quantizable if kv_bits else loaded
    segmented = SavedCacheFolder(tmp_path / "segments")
    tokens, cache = turns(model, SavedPromptCaches(segmented), THREE_TURNS, kv_bits)
    assert names(segmented) == ["1.safetensors", "2.safetensors", "safetensors"]
    whole = SavedCacheFolder(tmp_path / "whole")
    SavedPromptCaches(whole).save("chat", "model", tokens, cache, kv_bits)  # a new reader: no record, so whole
    assert names(whole) == ["safetensors"]
    read_segments = SavedPromptCaches(segmented).load("chat", "model", kv_bits)
    read_whole = SavedPromptCaches(whole).load("chat", "model", kv_bits)
    assert read_segments[0] == read_whole[0] == tokens
    for a, b in zip(read_segments[1], read_whole[1]):
        assert a.offset == b.offset == 230
        assert {array.shape[2] for array in _arrays(a)} == {486}, "room, not a whole number of 256-token steps"
    assert greedy(model, read_segments[1], [7, 8, 9]) == greedy(model, read_whole[1], [7, 8, 9])


def _arrays(entry):
    from mlx.utils import tree_flatten

    return [array for _, array in tree_flatten((entry.keys, entry.values))]


def test_a_read_cache_keeps_growing_by_segments(loaded, tmp_path):
    """After a restart the next answer still writes only its new positions, and the reread answers the same."""
    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    folder = SavedCacheFolder(tmp_path / "caches")
    tokens, cache = turns(loaded, SavedPromptCaches(folder), THREE_TURNS[:2])
    saved = SavedPromptCaches(folder)  # a restart
    tokens, read, _ = saved.load("chat", "model", None)
    grow(loaded, read, THREE_TURNS[2])
    grow(loaded, cache, THREE_TURNS[2])
    saved.save("chat", "model", tokens + THREE_TURNS[2], read, None)
    assert names(folder) == ["1.safetensors", "2.safetensors", "safetensors"]
    again = SavedPromptCaches(folder).load("chat", "model", None)
    assert again[0] == tokens + THREE_TURNS[2]
    assert greedy(loaded, again[1], [5]) == greedy(loaded, cache, [5])


def test_an_edited_history_rewrites_the_file_whole_and_removes_the_segments(loaded, tmp_path):
    from mlx_lm.models.cache import trim_prompt_cache

    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    folder = SavedCacheFolder(tmp_path / "caches")
    saved = SavedPromptCaches(folder)
    tokens, cache = turns(loaded, saved, THREE_TURNS, name="chat")
    trim_prompt_cache(cache, 200)  # the history was edited 30 tokens in: most of the cache is read again
    edited = ids(40, 120)
    grow(loaded, cache, edited)
    saved.save("chat", "model", tokens[:30] + edited, cache, None)
    assert names(folder) == ["safetensors"]
    read = SavedPromptCaches(folder).load("chat", "model", None)
    assert read[0] == tokens[:30] + edited


def test_a_turn_that_reread_the_end_differently_writes_a_segment_from_there(loaded, tmp_path):
    """The last answer re-tokenized otherwise (or its thinking dropped by the template) changes the end of what
    is on disk: the segment starts where the tokens part, and a read cuts the earlier parts there."""
    from mlx_lm.models.cache import trim_prompt_cache

    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    folder = SavedCacheFolder(tmp_path / "caches")
    saved = SavedPromptCaches(folder)
    tokens, cache = turns(loaded, saved, THREE_TURNS, name="chat")
    trim_prompt_cache(cache, 50)
    reread = tokens[:180] + ids(70, 90)
    grow(loaded, cache, reread[180:])
    saved.save("chat", "model", reread, cache, None)
    assert names(folder) == ["1.safetensors", "2.safetensors", "3.safetensors", "safetensors"]
    read, joined, _ = SavedPromptCaches(folder).load("chat", "model", None)
    assert read == reread and joined[0].offset == 270
    assert SavedPromptCaches(folder).prompt_of("chat", "model") is None  # no prompt text was saved
    assert greedy(loaded, joined, [5, 6]) == greedy(loaded, cache, [5, 6])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "another prefix"])
def test_a_damaged_segment_is_ignored_and_the_valid_prefix_kept(loaded, tmp_path, caplog, damage):
    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    folder = SavedCacheFolder(tmp_path / "caches")
    tokens, _ = turns(loaded, SavedPromptCaches(folder), THREE_TURNS)
    second = folder.segment_for("chat", 2)
    if damage == "another prefix":  # a segment left from another history of the same length
        other = SavedCacheFolder(tmp_path / "other")
        turns(loaded, SavedPromptCaches(other), [ids(60, 120), THREE_TURNS[1], THREE_TURNS[2]])
        second.write_bytes(other.segment_for("chat", 2).read_bytes())
    else:
        data = second.read_bytes()
        second.write_bytes(data[: len(data) - 100] if damage == "truncate" else b"not a segment" * 10)
    with caplog.at_level(logging.WARNING, logger="mlxchat.engine.local.saved_prompt_caches"):
        read, cache, _ = SavedPromptCaches(folder).load("chat", "model", None)
    assert read == tokens[:160] and cache[0].offset == 160
    if damage != "another prefix":
        assert any("unreadable saved prompt cache segment" in r.getMessage() for r in caplog.records)
    assert names(folder) == ["1.safetensors", "safetensors"], "the bad segment is gone, the good ones kept"
    assert greedy(loaded, cache, [3, 4]) == greedy(loaded, _fresh_prefix(loaded, tokens[:160]), [3, 4])


def _fresh_prefix(model, tokens):
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    grow(model, cache, tokens[:120])
    grow(model, cache, tokens[120:])
    return cache


def test_segments_are_compacted_after_the_cap(loaded, tmp_path):
    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    folder = SavedCacheFolder(tmp_path / "caches")
    per_turn = [ids(10 * n, 10) for n in range(MAX_SEGMENTS + 2)]
    saved = SavedPromptCaches(folder)
    tokens, cache = turns(loaded, saved, per_turn[: MAX_SEGMENTS + 1])
    assert len(names(folder)) == MAX_SEGMENTS + 1
    grow(loaded, cache, per_turn[-1])
    saved.save("chat", "model", tokens + per_turn[-1], cache, None)
    assert names(folder) == ["safetensors"], "rewritten whole"
    assert SavedPromptCaches(folder).load("chat", "model", None)[0] == tokens + per_turn[-1]


def test_deletion_and_eviction_take_the_base_and_its_segments(loaded, tmp_path):
    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    folder = SavedCacheFolder(tmp_path / "caches")
    saved = SavedPromptCaches(folder)
    turns(loaded, saved, THREE_TURNS, name="gone")
    assert len(list(folder.root.iterdir())) == 3
    saved.delete("gone")
    assert list(folder.root.iterdir()) == []
    turns(loaded, saved, THREE_TURNS, name="old")
    size = sum(path.stat().st_size for path in folder.root.iterdir())
    small = SavedPromptCaches(SavedCacheFolder(folder.root, cap_bytes=size + size // 2))
    turns(loaded, small, THREE_TURNS, name="new")
    assert sorted(folder.root.iterdir()) == sorted(folder.files_of("new")) and len(folder.files_of("new")) == 3


def test_a_segment_is_not_read_for_another_quantization(quantizable, tmp_path):
    """The base file's header decides: a cache saved at kv_bits 8 is not read for a turn at full precision."""
    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    folder = SavedCacheFolder(tmp_path / "caches")
    turns(quantizable, SavedPromptCaches(folder), THREE_TURNS, kv_bits=8)
    assert SavedPromptCaches(folder).load("chat", "model", None) is None
    assert SavedPromptCaches(folder).load("chat", "other model", 8) is None
    assert SavedPromptCaches(folder).load("chat", "model", 8)[0] == sum(THREE_TURNS, [])


def test_a_conversation_resumed_through_the_engine_answers_as_it_did_in_memory(event_log, tiny_model, tmp_path):
    """Three turns (a base file, then segments), a restart, a fourth turn: the answer and the cached tokens are
    those of the engine that never restarted."""
    greedy_sampling = SamplingParams(temperature=0, max_tokens=6)
    questions = ["Tell me about cats.", "And dogs?", "And birds?", "And fish?"]

    def conversation(folder, restart_before_last: bool):
        def started_engine():
            engine = Engine(event_log, saved_caches=folder).start()
            load = LoadModel(str(tiny_model))
            engine.submit(load)
            assert event_log.finished(load.request_id).reason == "stop"
            return engine

        engine, messages = started_engine(), ()
        try:
            for number, question in enumerate(questions):
                if restart_before_last and number == len(questions) - 1:
                    engine.close(timeout_s=30)
                    engine = started_engine()
                messages += (Message("user", question),)
                request = ChatRequest(messages, conversation_id="chat", sampling=greedy_sampling)
                engine.submit(request)
                finished = event_log.finished(request.request_id)
                messages += (Message("assistant", finished.text),)
            return finished.text, event_log.wait_for(Started, request.request_id).cached_tokens
        finally:
            engine.close(timeout_s=30)

    in_memory = conversation(SavedCacheFolder(tmp_path / "a"), restart_before_last=False)
    folder = SavedCacheFolder(tmp_path / "b")
    resumed = conversation(folder, restart_before_last=True)
    assert resumed == in_memory and resumed[1] > 0
    assert len(folder.files_of("chat")) > 1, "later answers were saved as segments"


def test_the_last_prompt_saved_with_a_segment_is_read_from_the_headers(loaded, tmp_path):
    """The follow-up after a restart tokenizes only its new text: the prompt saved with the newest segment counts."""
    from mlx_lm.models.cache import make_prompt_cache

    from mlxchat.engine.local.prompt_cache import SavedPromptCaches
    from mlxchat.engine.local.prompt_tokens import PromptTokens

    folder = SavedCacheFolder(tmp_path / "caches")
    saved, cache, tokens = SavedPromptCaches(folder), make_prompt_cache(loaded), []
    for number, added in enumerate(THREE_TURNS):
        grow(loaded, cache, added)
        tokens += added
        saved.save("chat", "model", tokens, cache, None, prompt=PromptTokens(f"turn {number}", tuple(tokens[:-5])))
    assert len(folder.files_of("chat")) == 3
    assert SavedPromptCaches(folder).prompt_of("chat", "model") == PromptTokens("turn 2", tuple(tokens[:-5]))
    assert SavedPromptCaches(folder).load("chat", "model", None)[2] == PromptTokens("turn 2", tuple(tokens[:-5]))


def test_a_cache_with_a_rotating_layer_is_rewritten_whole_and_its_plain_layers_get_room(loaded, tmp_path):
    """A rotating window's positions move, so a saved copy of its first ones goes stale: never segmented."""
    from mlx_lm.models.cache import KVCache, RotatingKVCache

    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    folder = SavedCacheFolder(tmp_path / "caches")
    saved, tokens = SavedPromptCaches(folder), []
    cache = [KVCache() for _ in range(len(loaded.layers) - 1)] + [RotatingKVCache(max_size=512)]
    for added in THREE_TURNS:
        grow(loaded, cache, added)
        tokens += added
        saved.save("chat", "model", tokens, cache, None)
        assert names(folder) == ["safetensors"]
    read, joined, _ = SavedPromptCaches(folder).load("chat", "model", None)
    assert read == tokens and joined[0].keys.shape[2] == 486 and isinstance(joined[-1], RotatingKVCache)
