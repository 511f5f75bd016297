"""`ui_bench --one-launch`: every round's TUI answer in one app, each in a new conversation, measured alone.

Real engine (on an owner thread here: a child process start adds seconds and nothing this test checks), real app
(`App.run_test`), the realistic answer forced through a tiny random-weight model."""

from __future__ import annotations

import math

import pytest

from mlxchat.bench.ui_bench import run_ui_bench
from mlxchat.bench.ui_probes import UIBenchConfig


def test_one_launch_measures_each_rounds_answer_on_its_own(tiny_model):
    config = UIBenchConfig(
        decode_tokens=60, runs=2, key_rates=(), launch_trials=0, image_turn=False, engines=("thread",), one_launch=True
    )
    numbers = run_ui_bench(str(tiny_model), config, progress=lambda line: None)

    assert len(numbers["raw_decode_tps_runs"]) == 2 and len(numbers["tui_runs"]) == 2  # the warm-up round dropped
    for run in numbers["tui_runs"]:
        # Counted from the first frame of its own answer: had the earlier answers' characters counted too, the
        # second round's first frame would already hold "all" its tokens and its speed would be 0.
        assert run["tokens"] == 60 and run["shown_text_matches"] and run["missing_chars"] == 0
        assert math.isfinite(run["rendered_tps"]) and run["rendered_tps"] > 0, run
    assert numbers["tui_text_matches"] and numbers["tui_over_raw"] > 0
    # Each TUI run bracketed by the raw run before it and the one after it: round 1 by rounds 1 and 2's raw runs,
    # round 2 by round 2's and the closing run after the last answer.
    raws, rendered = numbers["raw_decode_tps_runs"], numbers["tui_rendered_tps_runs"]
    afters = [raws[1], numbers["raw_after_last_tps"]]
    assert numbers["tui_over_raw_bracketed_runs"] == [
        pytest.approx(t / ((before + after) / 2)) for t, before, after in zip(rendered, raws, afters)
    ]
