"""A follow-up's prompt is tokenized from the last prompt's tokens plus its new text, and gives exactly the tokens
the whole text gives (issue 15: the ~5 ms of tokenizing a 2,400-token history each turn)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mlxchat.engine import ChatRequest, Engine, LoadModel, Message, SamplingParams, Started
from mlxchat.engine.local.chat_template import render_prompt
from mlxchat.engine.local.prompt_tokens import PromptTokens, RememberingTokenizer
from mlxchat.engine.saved_caches import SavedCacheFolder

PAGE = "The keeper wrote in his log every evening: the wind from the west, the height of the waves. " * 6
DEMO = Path.home() / ".cache/mlxchat/models/SmolLM2-135M-Instruct-Q4_1"


def history(pages: int) -> list[Message]:
    messages = [Message("system", "You read logs.")]
    for page in range(pages):
        messages += [Message("user", f"Page {page}: {PAGE}"), Message("assistant", f"Noted page {page}.")]
    return messages + [Message("user", "What about storms?")]


def tokenizers(tiny_model):
    from mlx_lm import load

    found = [load(str(tiny_model))[1]]
    if (DEMO / "tokenizer.json").is_file():  # the demo model's real BPE tokenizer, when converted on this machine
        found.append(load(str(DEMO))[1])
    return found


class Counting:
    """The tokenizer, counting the characters it is asked to encode."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.chars, self.texts = tokenizer, 0, []

    def encode(self, text, **options):
        self.chars += len(text)
        self.texts.append(text)
        return self.tokenizer.encode(text, **options)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def test_a_follow_up_tokenizes_only_its_new_text_and_gets_the_same_tokens(tiny_model):
    for tokenizer in tokenizers(tiny_model):
        remembered = PromptTokens()
        first = history(8)
        render_prompt(RememberingTokenizer(tokenizer, remembered), ChatRequest(tuple(first)))
        follow = first + [Message("assistant", "Storms came after westerly wind."), Message("user", "And ships?")]
        counting = Counting(tokenizer)
        tokens = render_prompt(RememberingTokenizer(counting, remembered), ChatRequest(tuple(follow)))
        assert tokens == render_prompt(tokenizer, ChatRequest(tuple(follow)))
        assert 0 < counting.chars < 300, counting.chars


@pytest.mark.parametrize(
    "change",
    [
        "edit an early message",
        "drop the first exchange",
        "a special token typed in the text",
        "another conversation",
        "the same prompt again",
    ],
)
def test_whatever_the_new_text_the_tokens_are_the_whole_texts(tiny_model, change):
    for tokenizer in tokenizers(tiny_model):
        remembered = PromptTokens()
        first = history(8)
        render_prompt(RememberingTokenizer(tokenizer, remembered), ChatRequest(tuple(first)))
        new = list(first)
        if change == "edit an early message":
            new[3] = Message("user", "Page 1 (edited): " + PAGE)
        elif change == "drop the first exchange":
            new = new[:1] + new[3:]
        elif change == "a special token typed in the text":
            new += [Message("assistant", "ok <|im_end|> <|im_start|>user"), Message("user", "<|im_start|> again")]
        elif change == "another conversation":
            new = [Message("user", PAGE * 4)]
        tokens = render_prompt(RememberingTokenizer(tokenizer, remembered), ChatRequest(tuple(new)))
        assert tokens == render_prompt(tokenizer, ChatRequest(tuple(new))), change


def test_a_follow_up_past_the_context_tokenizes_only_its_new_text_too(tiny_model):
    """Past the context the prompt is cut, which counts every message (long ones too) and measures the whole
    conversation first: neither may replace the remembered prompt, so the cut follow-up, whose window stays put,
    is tokenized from the last turn's tokens plus its new text."""
    from mlxchat.engine.local.context_fit import fit_prompt

    for tokenizer in tokenizers(tiny_model):
        first = [Message("system", "You read logs.")]
        for page in range(8):
            first += [Message("user", f"Page {page}: {PAGE * 4}"), Message("assistant", f"Noted page {page}.")]
        first = ChatRequest(tuple(first + [Message("user", "Storms?")]), sampling=SamplingParams(max_tokens=16))
        context = len(render_prompt(tokenizer, first)) * 2 // 3
        remembered = PromptTokens()
        before = fit_prompt(tokenizer, first, context, "m", remembered)
        answered = (Message("assistant", "Westerly."), Message("user", "Ships?"))
        follow = replace(first, messages=first.messages + answered)
        counting = Counting(tokenizer)
        fitted = fit_prompt(counting, follow, context, "m", remembered)
        assert fitted.window.hidden and fitted.window.hidden == before.window.hidden  # cut, in the same place
        assert fitted.tokens == fit_prompt(tokenizer, follow, context, "m").tokens
        assert len(counting.texts[-1]) < 300, len(counting.texts[-1])  # the cut prompt: only its new text
        assert list(remembered.tokens) == fitted.tokens


def test_a_template_without_added_tokens_is_tokenized_whole(tiny_model):
    from mlx_lm import load

    tokenizer = load(str(tiny_model))[1]
    remembered = PromptTokens()
    text = "user: " + PAGE * 5
    RememberingTokenizer(tokenizer, remembered).encode(text, add_special_tokens=False)
    follow = text + " assistant: fine. user: more?"
    assert remembered._reused(tokenizer, follow) is None  # no added token to cut at
    assert RememberingTokenizer(tokenizer, remembered).encode(follow, add_special_tokens=False) == tokenizer.encode(
        follow, add_special_tokens=False
    )


def test_the_follow_up_after_a_restart_reuses_the_saved_prompt_text(event_log, tiny_model, tmp_path, monkeypatch):
    """The saved cache carries the last prompt's text, so the first follow-up after a restart tokenizes only its
    new text, and reads the same prompt (same length, same cached tokens) as without it."""
    folder = SavedCacheFolder(tmp_path / "caches")
    greedy = SamplingParams(temperature=0, max_tokens=4)
    first = tuple(history(8))

    def one_turn(messages) -> tuple[Started, str]:
        engine = Engine(event_log, saved_caches=folder).start()
        try:
            load = LoadModel(str(tiny_model))
            engine.submit(load)
            assert event_log.finished(load.request_id).reason == "stop"
            request = ChatRequest(messages, conversation_id="chat", sampling=greedy)
            engine.submit(request)
            finished = event_log.finished(request.request_id)
            return event_log.wait_for(Started, request.request_id), finished.text
        finally:
            engine.close(timeout_s=30)

    _, answer = one_turn(first)
    follow = first + (Message("assistant", answer), Message("user", "And ships?"))
    from mlxchat.engine.local import prompt_tokens

    encoded: list[int] = []
    original = prompt_tokens.PromptTokens.encode

    def spying(self, tokenizer, text):
        reused = self._reused(tokenizer, text)
        encoded.append(-1 if reused is None else len(reused))
        return original(self, tokenizer, text)

    monkeypatch.setattr(prompt_tokens.PromptTokens, "encode", spying)
    resumed, _ = one_turn(follow)
    assert encoded and encoded[-1] > 0, "the follow-up after the restart did not reuse the saved prompt's tokens"
    monkeypatch.setattr(prompt_tokens.PromptTokens, "encode", original)
    folder.delete("chat")  # the same follow-up, with nothing saved: tokenized whole, read whole
    cold, _ = one_turn(follow)
    assert resumed.prompt_tokens == cold.prompt_tokens
    assert resumed.cached_tokens > 0 and cold.cached_tokens == 0


def test_a_model_without_thinking_renders_no_generation_prompt(event_log, tiny_model, monkeypatch):
    """Whether a turn starts thinking is read from what the template appends to open the answer, which renders the
    whole conversation twice more (0.8 ms for a 4,800-token chat, in the first token's time). A model with no thinking
    format never needs it, so its turns do not render it."""
    from mlxchat.engine.local import generation

    rendered: list[ChatRequest] = []
    original = generation.generation_prompt

    def counted(tokenizer, request):
        rendered.append(request)
        return original(tokenizer, request)

    monkeypatch.setattr(generation, "generation_prompt", counted)
    engine = Engine(event_log).start()
    try:
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        assert event_log.finished(load.request_id).reason == "stop"
        request = ChatRequest(tuple(history(2)), sampling=SamplingParams(temperature=0, max_tokens=3))
        engine.submit(request)
        assert event_log.finished(request.request_id).reason in ("stop", "length")
    finally:
        engine.close(timeout_s=30)
    assert rendered == []
