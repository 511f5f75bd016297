"""The benchmark's realistic answer and the means to force it through a model (mlxchat/bench/realistic.py)."""

from __future__ import annotations

import time

from mlxchat.bench.realistic import CODE_LINES, REALISTIC_ANSWER, Pace, code_fence_lines, fit_tokenizer, forced_ids


def test_the_answer_holds_paragraphs_a_list_a_table_and_a_500_line_code_block():
    before, fence_and_after = REALISTIC_ANSWER.split("```python\n", 1)
    code, after = fence_and_after.split("\n```\n", 1)
    assert len(code.split("\n")) == CODE_LINES == 500
    assert "\n1. " in before and "\n- **" in before, "a numbered and a bulleted list"
    assert "|---|---|---|---|" in before, "a table"
    assert before.count("\n\n") >= 5 and after.strip(), "paragraphs before and after the code"


def test_open_fence_lines_are_counted_only_inside_the_fence():
    assert code_fence_lines("Intro\n") is None
    assert code_fence_lines("Intro\n```python\n") == 0
    assert code_fence_lines("Intro\n```python\na = 1\nb = 2\nc") == 2
    assert code_fence_lines("```\na\n```\nafter\n") is None


def test_a_fitted_tokenizer_makes_word_tokens_and_round_trips(tmp_path):
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    from mlxchat.models.random_weights import build_random_llama

    folder = build_random_llama(tmp_path / "m")
    fit_tokenizer(folder, 4096)
    tokenizer = load_tokenizer(folder)
    ids, eos = forced_ids(tokenizer)
    assert tokenizer.decode(ids) == REALISTIC_ANSWER
    assert len(REALISTIC_ANSWER) / len(ids) > 3, "about a word a token, like a real model's tokenizer"
    assert eos in tokenizer.eos_token_ids


def test_pace_spaces_steps_by_the_rate():
    pace = Pace(200.0)
    started = time.perf_counter()
    for _ in range(11):
        pace.wait()
    assert time.perf_counter() - started >= 10 / 200 * 0.99


def test_the_gpu_bench_models_are_built_at_a_real_checkpoints_precision(tmp_path):
    """The 1B/8B bench models' weights (and so their KV caches) are bfloat16, as real checkpoints ship; the CPU's
    tiny one stays float32. Built here at the tiny size with the 1B spec's precision."""
    from dataclasses import replace

    import mlx.core as mx

    from mlxchat.bench.realistic import cpu_spec, eight_b_spec, one_b_spec
    from mlxchat.models.random_weights import build_random_llama

    assert one_b_spec().dtype == eight_b_spec().dtype == "bfloat16" and cpu_spec().dtype == "float32"
    folder = build_random_llama(tmp_path / "m", replace(cpu_spec(), dtype=one_b_spec().dtype, quantize_bits=4))
    weights = mx.load(str(folder / "model.safetensors"))
    floats = {str(array.dtype) for name, array in weights.items() if not name.endswith(".weight") or "norm" in name}
    assert floats == {"mlx.core.bfloat16"}, floats


def paced_child_answer(model, text: str | None, rate: float = 40):
    """A 20-token answer (`text` forced, None: free) from an engine process made inside `paced(rate)`."""
    from events import EventLog
    from mlxchat.bench.realistic import ForcedAnswerEngine, current_pace, paced
    from mlxchat.engine import ChatRequest, LoadModel, Message, SamplingParams
    from mlxchat.engine.process import ProcessEngine

    log = EventLog()
    with paced(rate):
        engine = ProcessEngine(log, ForcedAnswerEngine(text, current_pace())).start()
    try:
        load = LoadModel(str(model))
        engine.submit(load)
        assert log.finished(load.request_id).reason == "stop"
        ask = ChatRequest((Message("user", "hi"),), sampling=SamplingParams(temperature=0.0, max_tokens=20))
        engine.submit(ask)
        return log.finished(ask.request_id)
    finally:
        engine.close(timeout_s=30)


def test_an_engine_process_made_in_a_pace_keeps_it(tiny_model):
    """The keypress probe's 100 and 300 tok/s (`ui_bench --rates`) pace the engine in its own process through its
    factory. Round 8's factory entered the pace without keeping it, so the child's pace ended at once and both
    rates ran at the model's own speed. Here the child must decode no faster than the pace (a sleep bounds it
    from above; the tiny model on this CPU runs at several hundred tok/s unpaced)."""
    stats = paced_child_answer(tiny_model, REALISTIC_ANSWER).stats
    assert stats.generation_tokens == 20
    assert stats.decode_tps < 40 * 1.2, f"{stats.decode_tps:.0f} tok/s under a 40 tok/s pace"


def test_a_free_answer_engine_process_made_in_a_pace_keeps_it(tiny_model):
    """`ForcedAnswerEngine(None, rate)`: the model answers freely (`ui_bench --free`), still held to the rate
    (a review found the free answer unpaced: nothing was forced, so nothing waited)."""
    finished = paced_child_answer(tiny_model, None)
    assert finished.reason == "length" and finished.stats.generation_tokens == 20  # free, but it ran
    assert finished.stats.decode_tps < 40 * 1.2, f"{finished.stats.decode_tps:.0f} tok/s under a 40 tok/s pace"
