"""Thinking through the real engine: tiny models of each thinking family answer an exact script (real compute,
scripted tokens), and the engine must hand thinking and answer out apart, count them apart, keep thinking on a
cancel, end it at a budget, switch it off, and leave models without a thinking format exactly as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxchat.engine import (
    ChatRequest,
    Engine,
    LoadModel,
    Message,
    ModelLoaded,
    SamplingParams,
    Stats,
    TextDelta,
    ThinkingDelta,
    ThinkingDone,
)
from mlxchat.engine.events import Finished
from mlxchat.models.random_thinking import build_thinking_model

SAMPLING = SamplingParams(temperature=0.0, max_tokens=400)


@pytest.fixture(scope="module")
def family_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("thinking-models")
    return {family: build_thinking_model(root / family, family) for family in ("qwen3", "opens-in-prompt", "harmony", "gemma")}


class Scripted:
    """An engine on one model folder whose answers come from `answers` (the user's last message → the answer)."""

    def __init__(self, event_log, folder, answers: dict[str, str]) -> None:
        self.log = event_log
        self.answers = answers
        self.engine = Engine(event_log, script=lambda request: answers.get(request.messages[-1].content)).start()
        load = LoadModel(str(folder))
        assert self.engine.submit(load) is None
        self.info = event_log.wait_for(ModelLoaded, load.request_id).info

    def ask(self, *messages: Message, **options) -> tuple[Finished, list]:
        request = ChatRequest(tuple(messages), sampling=options.pop("sampling", SAMPLING), **options)
        assert self.engine.submit(request) is None
        finished = self.log.finished(request.request_id)
        return finished, self.log.of(request.request_id)

    def close(self) -> None:
        self.engine.close(timeout_s=30)


@pytest.fixture
def scripted(event_log, family_folders):
    engines = []

    def make(family: str, answers: dict[str, str]) -> Scripted:
        engine = Scripted(event_log, family_folders[family], answers)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def thinking_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, ThinkingDelta))


def answer_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize(
    "family, script, thought, answer",
    [
        ("qwen3", "<think>\nI should greet.\n</think>\n\nHello there!", "I should greet.\n", "Hello there!"),
        ("opens-in-prompt", "I think so.\n</think>\n\nAnswer.", "I think so.\n", "Answer."),
        (
            "harmony",
            "<|channel|>analysis<|message|>Think here.<|end|><|start|>assistant<|channel|>final<|message|>Final.",
            "Think here.",
            "Final.",
        ),
        ("gemma", "<|channel>thought\nHmm.<channel|>Done.", "Hmm.", "Done."),
    ],
)
def test_each_family_streams_thinking_apart_from_the_answer(scripted, family, script, thought, answer):
    model = scripted(family, {"Hi": script})
    finished, events = model.ask(Message("user", "Hi"))
    assert finished.reason == "stop"
    assert (thinking_of(events), answer_of(events)) == (thought, answer)
    assert (finished.reasoning, finished.text) == (thought, answer)
    done = [e for e in events if isinstance(e, ThinkingDone)]
    assert len(done) == 1 and not done[0].by_budget
    first_answer = next(i for i, e in enumerate(events) if isinstance(e, TextDelta) and e.text)
    assert events.index(done[0]) < first_answer, "thinking ends before the answer starts"
    assert 0 < finished.usage.reasoning_tokens < finished.usage.generation_tokens
    assert done[0].tokens == finished.usage.reasoning_tokens
    assert [e for e in events if isinstance(e, Stats)][-1].reasoning_tokens == finished.usage.reasoning_tokens


def test_the_model_info_names_the_thinking_format_and_its_switch(scripted, event_log, tiny_model):
    assert (scripted("qwen3", {}).info.thinking, scripted("qwen3", {}).info.thinking_switch) == ("<think> tags", True)
    assert scripted("harmony", {}).info.thinking == "gpt-oss analysis channel"
    assert scripted("opens-in-prompt", {}).info.thinking_switch is False
    plain = Engine(event_log).start()
    try:
        load = LoadModel(str(tiny_model))
        plain.submit(load)
        assert event_log.wait_for(ModelLoaded, load.request_id).info.thinking is None
    finally:
        plain.close(timeout_s=30)


def test_a_budget_ends_thinking_that_never_closes_and_the_model_answers(scripted):
    never_closed = " ".join(["thinking"] * 40)
    model = scripted("opens-in-prompt", {"Go": never_closed})
    finished, events = model.ask(Message("user", "Go"), thinking_budget=5)
    done = [e for e in events if isinstance(e, ThinkingDone)]
    assert len(done) == 1 and done[0].by_budget
    assert finished.usage.reasoning_tokens == 5 + 1, "five tokens of thinking, then the forced </think>"
    assert finished.reasoning and finished.text, "thought first, then answered"
    assert "</think>" not in finished.text and "</think>" not in finished.reasoning


def test_without_a_budget_thinking_that_never_closes_is_all_thinking(scripted):
    model = scripted("opens-in-prompt", {"Go": "still thinking and thinking"})
    finished, events = model.ask(Message("user", "Go"))
    assert (finished.reasoning, finished.text) == ("still thinking and thinking", "")
    assert not [e for e in events if isinstance(e, ThinkingDone)]


def test_thinking_off_uses_the_template_switch(scripted):
    model = scripted("qwen3", {"Hi": "Hello!"})
    finished, events = model.ask(Message("user", "Hi"), thinking=False)
    assert (finished.reasoning, finished.text) == ("", "Hello!")
    assert not [e for e in events if isinstance(e, ThinkingDelta)]


def test_thinking_off_without_a_switch_ends_thinking_at_once(scripted):
    model = scripted("opens-in-prompt", {"Hi": "a long chain of thought</think>Hello!"})
    finished, events = model.ask(Message("user", "Hi"), thinking=False)
    done = [e for e in events if isinstance(e, ThinkingDone)]
    assert len(done) == 1 and done[0].by_budget
    assert finished.reasoning == "" and finished.usage.reasoning_tokens == 1  # only the forced </think>


def test_cancel_while_thinking_drains_and_keeps_what_was_thought(scripted, event_log):
    model = scripted("opens-in-prompt", {"Go": " ".join(["hmm"] * 300)})
    request = ChatRequest((Message("user", "Go"),), sampling=SAMPLING)
    assert model.engine.submit(request) is None
    event_log.wait_until(lambda e: isinstance(e, ThinkingDelta) and e.request_id == request.request_id and bool(e.text))
    model.engine.cancel()
    finished = event_log.finished(request.request_id)
    events = event_log.of(request.request_id)
    assert finished.reason == "cancelled" and finished.text == ""
    assert finished.reasoning.startswith("h") and finished.reasoning == thinking_of(events)
    assert sum(isinstance(e, Finished) for e in events) == 1


def test_an_unbalanced_end_marker_in_the_answer_is_answer_text(scripted):
    model = scripted("qwen3", {"Hi": "<think>a</think>Use </think> to close. <think> too."})
    finished, _ = model.ask(Message("user", "Hi"))
    assert (finished.reasoning, finished.text) == ("a", "Use </think> to close. <think> too.")


def test_a_model_without_a_thinking_format_keeps_tags_as_text(event_log, tiny_model):
    engine = Engine(event_log, script=lambda request: "<think>not special</think> here").start()
    try:
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        event_log.finished(load.request_id)
        request = ChatRequest((Message("user", "Hi"),), sampling=SAMPLING, thinking=True, thinking_budget=1)
        engine.submit(request)
        finished = event_log.finished(request.request_id)
    finally:
        engine.close(timeout_s=30)
    assert (finished.text, finished.reasoning) == ("<think>not special</think> here", "")
    assert not [e for e in event_log.of(request.request_id) if isinstance(e, (ThinkingDelta, ThinkingDone))]


def test_a_follow_up_sends_the_answer_without_its_thinking_and_reuses_the_cache(scripted):
    model = scripted("qwen3", {"One": "<think>x y z</think>First.", "Two": "<think>more</think>Second."})
    first, _ = model.ask(Message("user", "One"), conversation_id="c")
    history = (Message("user", "One"), Message("assistant", first.text), Message("user", "Two"))
    second, events = model.ask(*history, conversation_id="c")
    assert (second.reasoning, second.text) == ("more", "Second.")
    started = next(e for e in events if type(e).__name__ == "Started")
    assert started.cached_tokens > 0, "the prompt cache survives the dropped thinking"


def test_generation_config_gives_the_model_its_own_sampling(tmp_path, event_log):
    from mlxchat.models.random_weights import build_random_llama

    folder = build_random_llama(tmp_path / "tuned")
    (folder / "generation_config.json").write_text(json.dumps({"temperature": 0.2, "top_p": 0.9, "top_k": "x"}))
    engine = Engine(event_log).start()
    try:
        load = LoadModel(str(folder))
        engine.submit(load)
        info = event_log.wait_for(ModelLoaded, load.request_id).info
    finally:
        engine.close(timeout_s=30)
    assert dict(info.sampling_defaults) == {"temperature": 0.2, "top_p": 0.9}, "an unusable value is skipped"


@pytest.mark.parametrize(
    "family, prompt_ends",
    [
        ("qwen3", "<|im_start|>assistant\n<think>The user asks about"),
        ("opens-in-prompt", "<|im_start|>assistant\n<think>\nThe user asks about"),
    ],
)
def test_an_answer_stopped_while_thinking_resumes_its_thinking_then_answers(scripted, family, prompt_ends):
    """The continue action on an answer stopped mid-thinking: the prompt ends inside the opened thinking (one opening
    marker, whether the model or the template writes it), and the model thinks on, then answers."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    from mlxchat.engine.local.chat_template import render_prompt
    from mlxchat.engine.events import Started

    model = scripted(family, {"Capital?": " France.\n</think>\n\nParis."})
    question = Message("user", "Capital?")
    resumed = ChatRequest((question,), sampling=SAMPLING, resume_thinking="The user asks about", conversation_id="r")
    tokenizer = load_tokenizer(Path(model.info.path))
    assert tokenizer.decode(render_prompt(tokenizer, resumed)).endswith(prompt_ends)
    assert model.engine.submit(resumed) is None
    finished = model.log.finished(resumed.request_id)
    events = model.log.of(resumed.request_id)
    assert (finished.reasoning, finished.text) == ("The user asks about France.\n", "Paris."), "all of its thinking"
    assert thinking_of(events) == " France.\n", "the thinking goes on where it stopped, its leading space kept"
    earlier = len(tokenizer.encode("The user asks about", add_special_tokens=False))
    assert [e.tokens for e in events if isinstance(e, ThinkingDone)] == [earlier + finished.usage.reasoning_tokens]
    assert next(e for e in events if isinstance(e, Started)).prompt_tokens > len(
        render_prompt(tokenizer, ChatRequest((question,)))
    )


def test_resuming_thinking_counts_what_was_thought_against_the_budget(scripted):
    model = scripted("opens-in-prompt", {"Go": " ".join(["more"] * 40)})
    finished, events = model.ask(
        Message("user", "Go"), resume_thinking="one two three four five six", thinking_budget=8
    )
    done = [e for e in events if isinstance(e, ThinkingDone)]
    assert len(done) == 1 and done[0].by_budget
    assert finished.usage.reasoning_tokens < 8, "the six words already thought count against the budget of eight"


def test_a_model_without_a_thinking_format_answers_a_resumed_question_afresh(event_log, tiny_model):
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    from mlxchat.engine.events import Started
    from mlxchat.engine.local.chat_template import render_prompt

    tokenizer = load_tokenizer(tiny_model)
    question = (Message("user", "Hi"),)
    resumed = ChatRequest(question, sampling=SAMPLING, resume_thinking="half a thought")
    engine = Engine(event_log, script=lambda request: "Hello.").start()
    try:
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        event_log.finished(load.request_id)
        engine.submit(resumed)
        finished = event_log.finished(resumed.request_id)
    finally:
        engine.close(timeout_s=30)
    assert (finished.reason, finished.text, finished.reasoning) == ("stop", "Hello.", "")
    started = next(e for e in event_log.of(resumed.request_id) if isinstance(e, Started))
    assert started.prompt_tokens == len(render_prompt(tokenizer, ChatRequest(question))), "no old thought in it"


@pytest.mark.parametrize(
    "start_thinking, trim_start, chunks, pieces",
    [
        (False, False, ["  Hello <think> tags"], [(False, "  Hello <think> tags")]),
        (False, True, ["Hello <think> tags"], [(False, "Hello <think> tags")]),
        (False, True, ["Hello <thi", "nk> tags"], [(False, "Hello <think> tags")]),
        (False, True, ["\n<think>a</think> b <think> c"], [(True, "a"), (False, "b <think> c")]),
        (False, True, ["  <thi", "nk>a</th", "ink>b"], [(True, "a"), (False, "b")]),
        (True, True, ["a</think>b <think> c"], [(True, "a"), (False, "b <think> c")]),
    ],
)
def test_an_opening_marker_after_the_answer_began_is_answer_text(start_thinking, trim_start, chunks, pieces):
    """Thinking opens only before the answer says anything, even when the answer's first words and the marker
    arrive in one piece (a server's chunk, a detokenizer segment); the start of thinking, a template that opened it,
    and a marker split over pieces still work."""
    from mlxchat.engine.thinking import TAGGED_THINKING, ThinkingSplitter

    splitter = ThinkingSplitter(TAGGED_THINKING, start_thinking, trim_start=trim_start)
    got = [piece for chunk in chunks for piece in splitter.feed(chunk)] + splitter.finish()
    merged: list[tuple[bool, str]] = []
    for is_thinking, text in got:
        if merged and merged[-1][0] == is_thinking:
            merged[-1] = (is_thinking, merged[-1][1] + text)
        else:
            merged.append((is_thinking, text))
    assert merged == pieces


def test_thinking_off_answers_a_resumed_question_afresh_without_thinking(scripted):
    """Thinking switched off wins over a resume: the answer is not filed as thinking, and the old thought is not
    put back into the prompt."""
    model = scripted("qwen3", {"Hi": "Hello!"})
    finished, events = model.ask(Message("user", "Hi"), thinking=False, resume_thinking="half a thought")
    assert (finished.reason, finished.reasoning, finished.text) == ("stop", "", "Hello!")
    assert not [e for e in events if isinstance(e, (ThinkingDelta, ThinkingDone))]
    assert finished.usage.reasoning_tokens == 0
