"""long_bench's resume section measures the follow-up a real chat sends: the answer before it found in the saved
cache, as a real model's answer is (mlxchat/bench/long_bench.py). Real MLX, a random-weight model."""

from __future__ import annotations

from mlxchat.bench.long_bench import RESUMED_ANSWER, LongBenchConfig, count_tokens, measure_resume


def test_the_resumed_follow_up_runs_only_its_question_and_not_the_answer_again(tmp_path):
    from mlxchat.models.random_weights import build_random_llama

    model = build_random_llama(tmp_path / "m")
    config = LongBenchConfig(model=str(model), history_tokens=300, resume_rounds=1, decode_tokens=4)
    result = measure_resume(config, tmp_path / "work", progress=lambda line: None)

    assert result["first_answer_forced"], "the first answer is the scripted text, as a real model's would be"
    answer_tokens = count_tokens(str(model), RESUMED_ANSWER)
    for side in ("resumed", "prepared"):
        (cached,) = result[f"{side}_cached_tokens"]
        new = result["prompt_tokens"] - cached
        assert 0 < new < answer_tokens, f"{side}: {new} new tokens; the answer alone is {answer_tokens}"
