"""Image conversations reuse their prompt cache: a text follow-up about an image neither encodes the image nor
reads the history again, nor decodes or processes the picture again; another image in the same place is read."""

from __future__ import annotations

import importlib
import os

import pytest
from PIL import Image

from mlxchat.engine import ChatRequest, LoadModel, Message, SamplingParams, Started
from mlxchat.models.random_vision import build_tiny_vlm

GREEDY = SamplingParams(temperature=0.0, max_tokens=5)


@pytest.fixture(scope="module", params=["smolvlm", "qwen2_vl"])
def vlm(request, tmp_path_factory):
    folder = build_tiny_vlm(tmp_path_factory.mktemp("vlm") / request.param, request.param)
    return request.param, folder


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    red, blue = root / "red.png", root / "blue.png"
    Image.new("RGB", (64, 64), (220, 30, 30)).save(red)
    Image.new("RGB", (64, 64), (20, 30, 220)).save(blue)
    return red, blue


@pytest.fixture
def tower_calls(monkeypatch, vlm) -> list[int]:
    """One entry per run of the vision tower (the real one, instrumented)."""
    tower = importlib.import_module(f"mlx_vlm.models.{vlm[0]}").VisionModel
    original = tower.__call__
    calls: list[int] = []

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tower, "__call__", counting)
    return calls


@pytest.fixture
def vlm_engine(engine, event_log, vlm):
    load = LoadModel(str(vlm[1]))
    engine.submit(load)
    assert event_log.finished(load.request_id).reason == "stop"
    return engine


def turn(engine, event_log, messages, conversation_id="image-chat"):
    request = ChatRequest(tuple(messages), conversation_id=conversation_id, sampling=GREEDY)
    assert engine.submit(request) is None
    finished = event_log.finished(request.request_id)
    assert finished.reason == "length", finished.error
    return event_log.wait_for(Started, request.request_id), finished


def test_a_text_follow_up_about_an_image_reads_only_the_new_words(vlm_engine, event_log, pictures, tower_calls):
    opening = [Message("user", "What is in this picture?", (pictures[0],))]
    first, answer = turn(vlm_engine, event_log, opening)
    assert first.cached_tokens == 0 and len(tower_calls) == 1
    follow_up = opening + [Message("assistant", answer.text), Message("user", "And its colours?")]
    second, _ = turn(vlm_engine, event_log, follow_up)
    assert second.route == "vision"
    assert second.cached_tokens >= first.prompt_tokens
    assert len(tower_calls) == 1, "the image was encoded again"


def test_the_same_placement_with_another_image_is_read_again(vlm_engine, event_log, pictures, tower_calls):
    red_started, red = turn(vlm_engine, event_log, [Message("user", "What is this?", (pictures[0],))])
    blue_started, blue = turn(vlm_engine, event_log, [Message("user", "What is this?", (pictures[1],))])
    assert blue_started.cached_tokens == 0 and len(tower_calls) == 2
    again_started, again = turn(vlm_engine, event_log, [Message("user", "What is this?", (pictures[0],))])
    assert again_started.cached_tokens == 0
    assert again.text == red.text


def test_a_follow_up_matches_the_answer_read_from_scratch(vlm_engine, event_log, pictures):
    """Reusing the cache must not change what the model says: the same follow-up in a new conversation (read
    whole) gives the same greedy answer."""
    opening = [Message("user", "What is in this picture?", (pictures[1],))]
    _, answer = turn(vlm_engine, event_log, opening, "reuse")
    follow_up = opening + [Message("assistant", answer.text), Message("user", "And its colours?")]
    reused_started, reused = turn(vlm_engine, event_log, follow_up, "reuse")
    cold_started, cold = turn(vlm_engine, event_log, follow_up, "cold")
    assert reused_started.cached_tokens > 0 and cold_started.cached_tokens == 0
    assert reused.text == cold.text


@pytest.fixture(scope="module")
def short_vlm(tmp_path_factory):
    """A tiny SmolVLM that reads at most 160 tokens."""
    import json

    folder = build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "short", "smolvlm")
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 160
    config.pop("max_position_embeddings", None)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_an_image_chat_longer_than_the_context_keeps_being_answered(engine, event_log, short_vlm, pictures):
    from mlxchat.engine import ContextWindow

    load = LoadModel(str(short_vlm))
    engine.submit(load)
    assert event_log.finished(load.request_id).reason == "stop"
    messages = [Message("user", "What is in this picture?", (pictures[0],)), Message("assistant", "A red square.")]
    for turn_number in range(12):
        messages += [Message("user", f"Tell me more about the colours, code, cats and images {turn_number}.")]
        request = ChatRequest(tuple(messages), sampling=GREEDY)
        assert engine.submit(request) is None
        finished = event_log.finished(request.request_id)
        assert finished.reason == "length", finished.error
        messages.append(Message("assistant", finished.text))
    window = event_log.wait_for(ContextWindow, request.request_id)
    assert window.hidden and 0 not in window.hidden, "the image turn is the first exchange: it stays in view"
    assert window.prompt_tokens <= 160


@pytest.fixture(scope="module")
def wide_vlm(tmp_path_factory):
    """A tiny SmolVLM whose heads (64 wide) MLX can quantize in groups; the default tiny one's are 16 wide."""
    from mlxchat.models.random_vision import TinyVisionSpec

    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "wide", "smolvlm", spec=TinyVisionSpec(text_hidden_size=256))


def test_an_image_chat_keeps_its_kv_cache_at_the_bits_asked_for(engine, event_log, wide_vlm, pictures):
    """kv_bits applies to image turns as to text ones: the cache the turn leaves is quantized, and a follow-up at
    the same bits reuses it; one at full precision starts over."""
    load = LoadModel(str(wide_vlm))
    engine.submit(load)
    assert event_log.finished(load.request_id).reason == "stop"
    opening = [Message("user", "What is in this picture?", (pictures[0],))]

    def ask(messages, kv_bits):
        request = ChatRequest(tuple(messages), conversation_id="quantized", sampling=GREEDY, kv_bits=kv_bits)
        assert engine.submit(request) is None
        finished = event_log.finished(request.request_id)
        assert finished.reason == "length", finished.error
        return event_log.wait_for(Started, request.request_id), finished

    first, answer = ask(opening, 8)
    held = engine._cache.cache  # read once the turn is over: plain attributes, no MLX call
    assert {type(layer).__name__ for layer in held} == {"QuantizedKVCache"}
    assert {layer.bits for layer in held} == {8}
    follow_up = opening + [Message("assistant", answer.text), Message("user", "And its colours?")]
    second, _ = ask(follow_up, 8)
    assert second.cached_tokens >= first.prompt_tokens
    full, _ = ask(follow_up + [Message("assistant", "Red."), Message("user", "Sure?")], None)
    assert full.cached_tokens == 0, "a cache quantized one way never serves a turn that asks another"


@pytest.fixture
def image_work(monkeypatch, vlm_engine, event_log, vlm):
    """Counts of the image work a turn does: pictures decoded from files, and runs of the model's real image
    processor (its class's `__call__`, counted, then the model loaded again so the engine uses the counted one)."""
    from mlxchat.engine.local import vision_memo

    counts = {"decoded": 0, "processed": 0}
    decode = vision_memo.load_image

    def counting_decode(path):
        counts["decoded"] += 1
        return decode(path)

    # The model's own image processor class: the engine's instance is of a subclass that remembers its calls.
    processor_class = type(vlm_engine._loaded.vision.processor.image_processor).__mro__[1]
    process = processor_class.__call__

    def counting_process(self, *args, **kwargs):
        counts["processed"] += 1
        return process(self, *args, **kwargs)

    monkeypatch.setattr(vision_memo, "load_image", counting_decode)
    monkeypatch.setattr(processor_class, "__call__", counting_process)
    load = LoadModel(str(vlm[1]))
    vlm_engine.submit(load)
    assert event_log.finished(load.request_id).reason == "stop"
    return counts


def test_a_follow_up_neither_decodes_nor_processes_the_picture_again(vlm_engine, event_log, pictures, image_work):
    opening = [Message("user", "What is in this picture?", (pictures[0],))]
    _, answer = turn(vlm_engine, event_log, opening, "memo")
    assert image_work == {"decoded": 1, "processed": 1}
    follow_up = opening + [Message("assistant", answer.text), Message("user", "And its colours?")]
    second, _ = turn(vlm_engine, event_log, follow_up, "memo")
    assert second.cached_tokens > 0
    assert image_work == {"decoded": 1, "processed": 1}


def test_a_picture_changed_in_the_same_file_is_read_again(vlm_engine, event_log, tmp_path, image_work):
    picture = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (220, 30, 30)).save(picture)
    ask = [Message("user", "What is this?", (picture,))]
    turn(vlm_engine, event_log, ask, "changed")
    Image.new("RGB", (64, 64), (20, 30, 220)).save(picture)
    os.utime(picture, ns=(1, 1))  # another content even where the clock would give the same change time
    started, _ = turn(vlm_engine, event_log, ask, "changed")
    assert image_work == {"decoded": 2, "processed": 2}
    assert started.cached_tokens == 0


def test_a_picture_the_window_left_out_is_not_decoded_again_next_turn(monkeypatch, pictures):
    """A turn over the context asks for every picture, then for those its window keeps; the next turn asks for
    all again and finds the one left out still decoded."""
    from mlxchat.engine.local import vision_memo

    decoded = []
    decode = vision_memo.load_image
    monkeypatch.setattr(vision_memo, "load_image", lambda path: decoded.append(path) or decode(path))
    memo = vision_memo.ImageMemo(processor=None)
    for _turn in range(3):
        memo.load_images(list(pictures))
        memo.load_images([pictures[1]])
    assert decoded == list(pictures)


def test_a_picture_rewritten_in_place_with_its_old_modification_time_is_read_again(tmp_path):
    """`cp -p`, `rsync -t` and `tar x` write another picture of the same size into the same file and put the old
    modification time back; the memo must not serve the old picture (nor its digest). The kernel stamps change
    times from a clock that ticks every few milliseconds, so the rewrite is repeated until its change time differs
    from the first write's, as it does for any rewrite a person makes after a turn."""
    from mlxchat.engine.local import vision_memo

    picture = tmp_path / "photo.bmp"
    Image.new("RGB", (64, 64), (220, 30, 30)).save(picture)
    first = os.stat(picture)
    memo = vision_memo.ImageMemo(processor=None)
    [red] = memo.load_images([picture])
    red_digest = memo.fingerprint([picture])
    for _attempt in range(10_000):
        Image.new("RGB", (64, 64), (20, 30, 220)).save(picture)
        os.utime(picture, ns=(first.st_atime_ns, first.st_mtime_ns))
        now = os.stat(picture)
        if now.st_ctime_ns != first.st_ctime_ns:
            break
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (first.st_size, first.st_mtime_ns, first.st_ino)
    [blue] = memo.load_images([picture])
    assert red.getpixel((0, 0)) == (220, 30, 30)
    assert blue.getpixel((0, 0)) == (20, 30, 220)
    assert memo.fingerprint([picture]) != red_digest
