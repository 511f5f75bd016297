"""The vision route, with real MLX on the CPU and tiny random VLMs: SmolVLM and Qwen2-VL throughout, Idefics3 once.

Nothing is faked: the engine loads each folder through mlx-vlm, images go through the real processor and
vision tower, text-only turns through mlx-lm. The instrumentation is a wrapper around the vision
tower's `__call__` that records which thread ran it.
"""

from __future__ import annotations

import importlib
import itertools
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

from events import EventLog
from mlx_probe import probe_mlx
from mlxchat.engine import (
    Busy,
    ChatRequest,
    Engine,
    Finished,
    LoadModel,
    Message,
    PrefillProgress,
    SamplingParams,
    Started,
    Stats,
    TextDelta,
)
from mlxchat.models.random_vision import ARCHITECTURES, build_tiny_vlm

GREEDY = SamplingParams(temperature=0.0, max_tokens=24)
ENDLESS = SamplingParams(temperature=0.0, max_tokens=1_000_000)
TWO_KINDS = ["smolvlm", "qwen2_vl"]


# ---- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def vlm_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vlms")
    return {architecture: build_tiny_vlm(root / architecture, architecture) for architecture in ARCHITECTURES}


@pytest.fixture(scope="session")
def pictures(tmp_path_factory) -> dict[str, Path]:
    """Small test pictures, and files that only pretend to be pictures."""
    from PIL import Image, ImageDraw

    root = tmp_path_factory.mktemp("pictures")
    red = root / "red.png"
    Image.new("RGB", (120, 90), (220, 30, 30)).save(red)
    checker = Image.new("RGB", (96, 96), "white")
    draw = ImageDraw.Draw(checker)
    for x, y in itertools.product(range(0, 96, 24), repeat=2):
        if (x + y) // 24 % 2:
            draw.rectangle([x, y, x + 23, y + 23], fill=(0, 60, 200))
    checker_path = root / "checker.jpg"
    checker.save(checker_path, quality=95)
    Image.new("RGB", (64, 64), (20, 160, 40)).save(root / "green.png")
    (root / "notes.png").write_text("these are notes, not a picture\n")
    (root / "broken.png").write_bytes(red.read_bytes()[:70])
    (root / "album").mkdir()
    (root / "bomb.png").write_bytes(_png_header_only(40_000, 40_000))
    return {
        "red": red,
        "checker": checker_path,
        "green": root / "green.png",
        "not_an_image": root / "notes.png",
        "corrupt": root / "broken.png",
        "folder": root / "album",
        "bomb": root / "bomb.png",
        "missing": root / "nowhere.png",
    }


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` pixels: cheap to write, enormous to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(params=TWO_KINDS)
def architecture(request) -> str:
    return request.param


@pytest.fixture
def tower_threads(monkeypatch, architecture) -> list[int]:
    """Thread ids of every vision tower call (instrumentation around the real `__call__`)."""
    return _record_tower_threads(monkeypatch, architecture)


def _record_tower_threads(monkeypatch, architecture: str) -> list[int]:
    tower = importlib.import_module(f"mlx_vlm.models.{architecture}").VisionModel
    original = tower.__call__
    threads: list[int] = []

    def recording(self, *args, **kwargs):
        threads.append(threading.get_ident())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tower, "__call__", recording)
    return threads


@pytest.fixture
def vlm_engine(engine, event_log, vlm_folders, architecture) -> Engine:
    return _load(engine, event_log, vlm_folders[architecture])


def _load(engine: Engine, event_log: EventLog, folder: Path) -> Engine:
    request = LoadModel(str(folder))
    assert engine.submit(request) is None
    finished = event_log.finished(request.request_id)
    assert finished.reason == "stop", finished.error
    assert engine.model.kind == "vision"
    return engine


def look(*images: Path, text: str = "What is in this picture?", sampling: SamplingParams = GREEDY) -> ChatRequest:
    return ChatRequest((Message("user", text, tuple(images)),), sampling=sampling)


def answer(engine: Engine, event_log: EventLog, request: ChatRequest) -> Finished:
    assert engine.submit(request) is None
    return event_log.finished(request.request_id)


# ---- the route through the engine ------------------------------------------------------------------------------


def test_an_image_turn_runs_the_vision_tower_on_the_owner_thread(vlm_engine, event_log, pictures, tower_threads):
    request = look(pictures["red"])
    finished = answer(vlm_engine, event_log, request)
    events = event_log.of(request.request_id)
    assert finished.reason == "length", finished.error
    assert isinstance(events[0], Started) and events[0].route == "vision"
    assert tower_threads and set(tower_threads) == {vlm_engine.owner_thread.ident}
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(d.text for d in deltas) == finished.text and finished.text
    assert finished.usage.generation_tokens == GREEDY.max_tokens
    assert isinstance(finished.stats, Stats) and finished.stats.ttft_s > 0
    assert finished.stats.context_used == finished.usage.prompt_tokens + GREEDY.max_tokens
    assert [type(e) for e in events].count(Finished) == 1 and events[-1] is finished


def test_only_the_owner_thread_touches_mlx_during_a_vision_turn(vlm_folders, pictures):
    log = EventLog()
    with probe_mlx() as probe:
        engine = Engine(log).start()
        _load(engine, log, vlm_folders["qwen2_vl"])
        assert answer(engine, log, look(pictures["checker"])).reason == "length"
        engine.close()
    assert probe.threads_seen == {engine.owner_thread.ident}, probe.thread_names
    assert probe.max_concurrent == 1


def test_different_images_give_different_answers(vlm_engine, event_log, pictures):
    red = answer(vlm_engine, event_log, look(pictures["red"]))
    checker = answer(vlm_engine, event_log, look(pictures["checker"]))
    red_again = answer(vlm_engine, event_log, look(pictures["red"]))
    assert red.text != checker.text, "the image must reach the language model"
    assert red.text == red_again.text, "greedy: the same image gives the same answer"


@pytest.mark.parametrize("architecture", ["idefics3"])
def test_the_idefics3_architecture_answers_too(vlm_engine, event_log, pictures, tower_threads):
    finished = answer(vlm_engine, event_log, look(pictures["green"]))
    assert finished.reason == "length" and finished.text
    assert set(tower_threads) == {vlm_engine.owner_thread.ident}


def test_a_text_only_turn_on_a_vision_model_takes_the_mlx_lm_route(vlm_engine, event_log, tower_threads):
    request = ChatRequest((Message("user", "Hello there"),), sampling=GREEDY)
    finished = answer(vlm_engine, event_log, request)
    started = event_log.wait_for(Started, request.request_id)
    assert started.route == "text" and finished.reason == "length" and finished.text
    assert tower_threads == [], "no image, no vision tower"


def test_a_text_only_prompt_keeps_its_words_with_a_list_only_template(vlm_engine, event_log):
    """SmolVLM's template reads list content only; a plain string would render as an empty turn."""
    short = answer(vlm_engine, event_log, ChatRequest((Message("user", "Hi"),), sampling=GREEDY))
    longer = ChatRequest((Message("user", "Hi, what is the capital of France and of Italy?"),), sampling=GREEDY)
    assert answer(vlm_engine, event_log, longer).usage.prompt_tokens > short.usage.prompt_tokens + 5


def test_a_second_request_while_an_image_turn_runs_is_refused_at_once(vlm_engine, event_log, pictures):
    """Seed 000's regression: an image request must not queue behind (or run beside) the active one."""
    first = look(pictures["red"], sampling=ENDLESS)
    assert vlm_engine.submit(first) is None
    event_log.first_text(first.request_id)
    refused = (look(pictures["checker"]), ChatRequest((Message("user", "And text?"),)))
    for second in refused:
        started = time.perf_counter()
        busy = vlm_engine.submit(second)
        assert time.perf_counter() - started < 0.05
        assert isinstance(busy, Busy) and busy.active_request_id == first.request_id
        assert busy.active_kind == "chat" and busy.phase == "generating"
        assert first.request_id not in busy.message and "answering another message (generating" in busy.message
    assert vlm_engine.cancel(first.request_id)
    cancelled = event_log.finished(first.request_id)
    assert cancelled.reason == "cancelled" and cancelled.text, "what was said before the cancel is kept"
    assert all(event_log.of(r.request_id) == [] for r in refused), "a refused request gets no events"
    assert answer(vlm_engine, event_log, look(pictures["checker"])).reason == "length"


def test_images_in_two_turns_each_stay_with_their_own_turn(vlm_engine, event_log, pictures):
    def conversation(first_image: Path, second_image: Path) -> ChatRequest:
        return ChatRequest(
            (
                Message("user", "What is in this picture?", (first_image,)),
                Message("assistant", "A picture with some colours."),
                Message("user", "And in this one?", (second_image,)),
            ),
            sampling=GREEDY,
        )

    single = answer(vlm_engine, event_log, look(pictures["red"]))
    both = answer(vlm_engine, event_log, conversation(pictures["red"], pictures["checker"]))
    swapped = answer(vlm_engine, event_log, conversation(pictures["checker"], pictures["red"]))
    first_changed = answer(vlm_engine, event_log, conversation(pictures["green"], pictures["checker"]))
    assert both.reason == swapped.reason == first_changed.reason == "length"
    assert both.usage.prompt_tokens > single.usage.prompt_tokens
    assert both.text != swapped.text, "which turn holds which image matters"
    assert both.text != first_changed.text, "the first turn's image is read too, not only the last"


def test_a_vision_prefill_cancel_lands_between_chunks(vlm_folders, pictures):
    """The vision tower runs inside the first chunk; a cancel raised after it stops the rest of the prompt."""
    log = EventLog()
    engine: Engine | None = None
    cancelled: list[str] = []

    def cancel_after_first_chunk(event) -> None:
        log(event)
        if isinstance(event, PrefillProgress) and event.done > 0 and not cancelled:
            cancelled.append(event.request_id)  # only the first request: the next one starts from its cache
            engine.cancel(event.request_id)  # on the owner thread, between two chunks

    engine = Engine(cancel_after_first_chunk).start()
    try:
        _load(engine, log, vlm_folders["smolvlm"])
        request = look(pictures["red"], text="Describe every detail of the picture, please. " * 20)
        finished = answer(engine, log, request)
        steps = [e for e in log.of(request.request_id) if isinstance(e, PrefillProgress)]
        assert finished.reason == "cancelled" and finished.usage.generation_tokens == 0
        assert 0 < steps[-1].done < steps[-1].total, "the rest of the prompt was never read"
        assert answer(engine, log, look(pictures["red"])).reason == "length"
    finally:
        engine.close()


# ---- bad images ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, words",
    [
        ("missing", "not found"),
        ("not_an_image", "not an image"),
        ("corrupt", "damaged"),
        ("folder", "folder"),
        ("bomb", "too large"),
    ],
)
@pytest.mark.parametrize("architecture", ["smolvlm"])
def test_a_bad_image_is_an_error_naming_the_file_and_the_engine_stays_usable(
    vlm_engine, event_log, pictures, kind, words, tower_threads
):
    bad = pictures[kind]
    finished = answer(vlm_engine, event_log, look(pictures["red"], bad))
    assert finished.reason == "error"
    assert bad.name in finished.error and words in finished.error, finished.error
    assert tower_threads == [], "images are checked before any model work"
    assert answer(vlm_engine, event_log, look(pictures["red"])).reason == "length"


def test_an_image_on_a_text_only_model_is_a_clear_error(engine, event_log, tiny_model, pictures):
    load = LoadModel(str(tiny_model))
    engine.submit(load)
    assert event_log.finished(load.request_id).reason == "stop"
    finished = answer(engine, event_log, look(pictures["red"]))
    assert finished.reason == "error"
    assert "text-only" in finished.error and "cannot read images" in finished.error


def test_a_huge_image_is_shrunk_on_reading(tmp_path):
    from PIL import Image

    from mlxchat.engine.vision_inputs import MAX_IMAGE_EDGE, load_image

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (6000, 4000), (90, 120, 200)).save(photo, quality=80)
    image = load_image(photo)
    assert max(image.size) <= MAX_IMAGE_EDGE and image.mode == "RGB"
    assert abs(image.width / image.height - 1.5) < 0.01, "the aspect ratio is kept"


def test_transparent_areas_read_as_white_not_black(tmp_path):
    from PIL import Image

    from mlxchat.engine.vision_inputs import load_image

    clear = tmp_path / "clear.png"
    Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(clear)
    assert load_image(clear).getpixel((5, 5)) == (255, 255, 255)


# ---- the loaded parts ------------------------------------------------------------------------------------------


def test_the_text_route_shares_the_vision_models_weights(vlm_folders, architecture):
    from mlx.utils import tree_flatten
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    from mlxchat.engine.local.loader import fit_to_device
    from mlxchat.engine.local.vision import load_vision_model

    parts = load_vision_model(vlm_folders[architecture])
    fit_to_device(parts.model)
    adapter = dict(tree_flatten(parts.text_model.parameters()))
    language = dict(tree_flatten(parts.model.language_model.parameters()))
    assert adapter.keys() == {f"language_model.{name}" for name in language}
    assert all(adapter[f"language_model.{name}"] is array for name, array in language.items()), "no copies"
    assert len(parts.text_model.layers) == 2
    assert isinstance(parts.tokenizer, TokenizerWrapper) and parts.tokenizer.detokenizer is not None
    end_of_turn = {"smolvlm": "<end_of_utterance>", "qwen2_vl": "<|im_end|>"}[architecture]
    assert parts.tokenizer.convert_tokens_to_ids(end_of_turn) in parts.tokenizer.eos_token_ids


def test_the_adapter_answers_like_mlx_vlm_itself_even_after_an_image_turn(vlm_folders, architecture, pictures):
    """Greedy tokens of a text prompt through mlx-lm + adapter equal mlx-vlm's own, before and after an image
    turn (Qwen2-VL keeps rotary positions from the last image prompt; the adapter must clear them)."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step as mlx_lm_step
    from mlx_vlm.generate import generate_step as mlx_vlm_step
    from mlx_vlm.utils import prepare_inputs

    from mlxchat.engine.local.vision import load_vision_model
    from mlxchat.engine.vision_inputs import load_image

    parts = load_vision_model(vlm_folders[architecture])
    prompt = parts.tokenizer.encode("Hello there, the capital of France is Paris. And Italy?", add_special_tokens=False)

    def through_adapter() -> list[int]:
        steps = mlx_lm_step(mx.array(prompt), parts.text_model, max_tokens=12, prefill_step_size=8)
        return [int(token) for token, _ in steps]

    def through_mlx_vlm(input_ids, pixel_values=None, mask=None, **extra) -> list[int]:
        steps = mlx_vlm_step(input_ids, parts.model, pixel_values, mask, max_tokens=12, temperature=0.0, **extra)
        return [int(token) for token, _ in steps]

    before = through_adapter()
    assert before == through_mlx_vlm(mx.array([prompt]))

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = parts.processor.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = dict(prepare_inputs(parts.processor, images=[load_image(pictures["red"])], prompts=text))
    through_mlx_vlm(inputs.pop("input_ids"), inputs.pop("pixel_values"), inputs.pop("attention_mask", None), **inputs)
    assert through_adapter() == before
