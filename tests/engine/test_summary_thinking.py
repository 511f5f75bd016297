"""A reasoning model's summary (the "stop" policy's way out) through the real engine: thinking must not eat the
summary's room. Tiny thinking models answer an exact script (real compute, scripted tokens) that thinks longer
than the summary's whole limit whenever it is allowed to think."""

from __future__ import annotations

import pytest

from mlxchat.engine import Engine, LoadModel, Message, ModelLoaded, SamplingParams
from mlxchat.engine.summary import SUMMARY_MAX_TOKENS, SUMMARY_THINKING_BUDGET, summary_problem, summary_request
from mlxchat.models.random_thinking import build_thinking_model

NOTES = "Lisbon, four days, trams."
LONG_THOUGHT = " ".join(["hmm"] * (SUMMARY_MAX_TOKENS + 100))
CONVERSATION = (Message("user", "Plan four days in Lisbon."), Message("assistant", "Day 1: Alfama. Day 2: Belem."))


def script(request) -> str:
    """Thinks past the summary's limit unless thinking is off, then writes the notes; with the template's switch
    off the model starts straight at its answer."""
    if request.thinking is False:
        return NOTES
    return f"{LONG_THOUGHT}</think>\n\n{NOTES}"


@pytest.mark.parametrize("family", ["qwen3", "opens-in-prompt"])
def test_a_reasoning_models_summary_has_its_text_whether_or_not_thinking_can_be_switched_off(
    tmp_path, event_log, family
):
    folder = build_thinking_model(tmp_path / family, family)
    engine = Engine(event_log, script=script).start()
    try:
        load = LoadModel(str(folder))
        assert engine.submit(load) is None
        info = event_log.wait_for(ModelLoaded, load.request_id).info
        request = summary_request(
            CONVERSATION, conversation_id="trip", sampling=SamplingParams(temperature=0.0), title="Lisbon",
            thinking_switch=info.thinking_switch,
        )
        assert engine.submit(request) is None
        finished = event_log.finished(request.request_id)
    finally:
        engine.close(timeout_s=30)
    assert summary_problem(finished) is None, summary_problem(finished)
    if info.thinking_switch:
        assert (finished.text, finished.usage.reasoning_tokens) == (NOTES, 0)
    else:  # capped: the script's tokens go on after the forced end marker, as the answer's text
        assert finished.usage.reasoning_tokens == SUMMARY_THINKING_BUDGET + 1  # the forced end marker included
        assert finished.usage.generation_tokens == SUMMARY_MAX_TOKENS + SUMMARY_THINKING_BUDGET
        assert finished.text.strip(), "the summary has its room after the capped thinking"
