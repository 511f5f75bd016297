"""long_bench's resume section measures the follow-up a real chat sends: the answer before it, and the end-of-turn
token after it, found in the saved cache as a real model's are (mlxchat/bench/long_bench.py). Real MLX, a
random-weight model."""

from __future__ import annotations

import json
import shutil

from mlxchat.bench.long_bench import RESUMED_ANSWER, LongBenchConfig, count_tokens, measure_resume


def new_tokens(model, work) -> int:
    """How many of the resumed follow-up's tokens its saved cache did not hold (the same in every resumed run)."""
    config = LongBenchConfig(model=str(model), history_tokens=300, resume_rounds=1, decode_tokens=4)
    result = measure_resume(config, work, progress=lambda line: None)
    assert result["first_answer_forced"], "the first answer is the scripted text, ended as a real model ends it"
    (new,) = {result["prompt_tokens"] - cached for cached in result["resumed_cached_tokens"] + result["prepared_cached_tokens"]}
    return new


def test_the_resumed_follow_up_runs_only_its_question_and_not_the_answer_again(tmp_path):
    """Then the same model listing a second, smaller end id that its template does not write (as Llama 3 and Qwen2.5
    do): the answer must end with the template's end of turn, or the follow-up finds one token fewer cached."""
    from transformers import AutoTokenizer

    from mlxchat.models.random_weights import build_random_llama

    model = build_random_llama(tmp_path / "m")
    answer_tokens = count_tokens(str(model), RESUMED_ANSWER)
    one_end = new_tokens(model, tmp_path / "one")
    assert 0 < one_end < answer_tokens, f"{one_end} new tokens; the answer alone is {answer_tokens}"

    two_ends = shutil.copytree(model, tmp_path / "m2")
    eos = AutoTokenizer.from_pretrained(str(model)).eos_token_id
    assert eos != 0
    (two_ends / "generation_config.json").write_text(json.dumps({"eos_token_id": [0, eos]}))
    assert new_tokens(two_ends, tmp_path / "two") == one_end
