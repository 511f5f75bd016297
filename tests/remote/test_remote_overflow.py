"""The overflow policy on a remote model: the context size is read from what the server says (or config.toml),
prompts are cut by the same rule as a local model's with estimated token counts, "stop" refuses with the typed
outcome, and a server that still finds the prompt too long gets one tighter retry.

The server is the loopback fake (`remote_fakes`), speaking real HTTP: a real vLLM, llama-server or LM Studio
cannot run here. `context_limited` gives it a real context: it counts the prompt's tokens by its own rule (a
tokenizer the client cannot see) and refuses what does not fit, in the words of the server it plays.
"""

from __future__ import annotations

import pytest
from remote_fakes import Scenario, stream
from remote_turns import select

from mlxchat.engine import ChatRequest, ContextWindow, Finished, Message, ModelLoaded, SamplingParams, Started
from mlxchat.engine.remote.context_size import server_overflow
from mlxchat.engine.remote.token_estimate import DEFAULT_CHARS_PER_TOKEN, TokenEstimate

MODEL = "fake/model-a"
MAX_TOKENS = 64


def context_limited(context: int, chars_per_token: float = 4.0, style: str = "vllm", reply: str = "ok") -> Scenario:
    """A server whose tokenizer makes `chars_per_token` characters a token (plus 4 per message). A prompt that
    does not fit is refused as vLLM (prompt + max_tokens over the context), llama-server (its typed error with
    `n_ctx`) or a server that gives no numbers ("bare") words it; a prompt that fits is answered with usage."""

    def play(handler) -> None:
        body = handler.fake.seen[-1].body
        prompt = int(sum(len(m["content"]) / chars_per_token + 4 for m in body["messages"]))
        wanted = body["max_tokens"]
        if style == "vllm" and prompt + wanted > context:
            message = (
                f"This model's maximum context length is {context} tokens. However, you requested {prompt + wanted} "
                f"tokens ({prompt} in the messages, {wanted} in the completion). Please reduce the length of the "
                "messages or completion."
            )
            return handler.send_json(400, {"object": "error", "message": message, "type": "BadRequestError", "code": 400})
        if style == "llama.cpp" and prompt > context:
            error = {"code": 400, "message": "the request exceeds the available context size, try increasing it"}
            error |= {"type": "exceed_context_size_error", "n_prompt_tokens": prompt, "n_ctx": context}
            return handler.send_json(400, {"error": error})
        if style == "bare" and prompt + wanted > context:
            return handler.send_json(400, {"error": {"message": "Prompt too long for the context window."}})
        stream(reply, usage=(prompt, 1))(handler)

    return play


def long_chat(exchanges: int = 20, chars: int = 400) -> tuple[Message, ...]:
    """A system prompt, `exchanges` question/answer pairs of about `chars` characters each, and a last question."""
    messages = [Message("system", "Be brief.")]
    for turn in range(exchanges):
        filler = ("word " * chars)[: chars - 12]
        messages += [Message("user", f"q{turn:02d} {filler}"), Message("assistant", f"a{turn:02d} {filler}")]
    return (*messages, Message("user", "And the last question?"))


def chat(engine, event_log, messages, overflow: str = "truncate-middle") -> tuple[Finished, list[ContextWindow]]:
    request = ChatRequest(messages, sampling=SamplingParams(temperature=0, max_tokens=MAX_TOKENS), overflow=overflow)
    assert engine.submit(request) is None
    finished = event_log.finished(request.request_id, 30)
    events = event_log.of(request.request_id)
    windows = [e for e in events if isinstance(e, ContextWindow)]
    if windows:  # as from a local model: the window comes right after `Started`
        assert isinstance(events[events.index(windows[0]) - 1], Started)
    return finished, windows


def loaded_context(event_log) -> int:
    return [e for e in event_log.drain() if isinstance(e, ModelLoaded)][-1].info.context_size


def sent_firsts(request) -> list[str]:
    """The first word of each message the server received (q03, a03, …)."""
    return [m["content"].split()[0] for m in request.body["messages"]]


# ---- the context size -------------------------------------------------------------------------------------------


def test_vllm_max_model_len_is_the_context(fake_server, remote_engines, event_log):
    fake_server.model_extras = {MODEL: {"max_model_len": 2048, "owned_by": "vllm"}}
    engine = remote_engines(fake_server.url)
    assert select(engine, event_log, MODEL).reason == "stop"
    assert loaded_context(event_log) == 2048
    assert [r.path for r in fake_server.seen] == ["/v1/models"], "the list said it: nothing else is asked"


def test_llama_cpp_props_n_ctx_wins_over_the_training_size(fake_server, remote_engines, event_log):
    fake_server.model_extras = {MODEL: {"owned_by": "llamacpp", "meta": {"n_ctx_train": 131072, "n_vocab": 32000}}}
    fake_server.routes["/props"] = (200, {"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1})
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    assert loaded_context(event_log) == 4096
    select(engine, event_log, MODEL)  # a second load of the same model asks nothing new
    assert [r.path for r in fake_server.seen].count("/props") == 1


def test_llama_cpp_training_size_when_props_is_missing(fake_server, remote_engines, event_log):
    fake_server.model_extras = {MODEL: {"meta": {"n_ctx_train": 8192}}}
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    assert loaded_context(event_log) == 8192


def test_lm_studio_and_ollama_side_endpoints(fake_server, remote_engines, event_log):
    fake_server.routes["/api/v0/models"] = (
        200, {"data": [{"id": "other", "max_context_length": 999999}, {"id": MODEL, "max_context_length": 32768, "loaded_context_length": 8192}]}
    )
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    assert loaded_context(event_log) == 8192
    del fake_server.routes["/api/v0/models"]
    fake_server.routes["/api/show"] = (200, {"parameters": "stop \"<|im_end|>\"\nnum_ctx 16384", "model_info": {"qwen2.context_length": 32768}})
    select(engine, event_log, "/srv/models/model-b")
    assert loaded_context(event_log) == 16384
    show = [r for r in fake_server.seen if r.path == "/api/show"]
    assert show and show[-1].body == {"model": "/srv/models/model-b"}


@pytest.mark.parametrize(
    "payload",
    [
        {"data": [{"id": MODEL, "max_model_len": "lots", "context_length": -5, "max_context_length": True}]},
        {"data": [{"id": MODEL, "max_model_len": 1e300, "meta": "n_ctx_train", "top_provider": [4096]}]},
        {"data": [{"id": MODEL, "max_model_len": 12}, "not a model", None, {"id": 7, "max_model_len": 4096}]},
        {"data": [{"id": MODEL, "max_model_len": {"value": 4096}, "meta": {"n_ctx_train": None}}]},
    ],
    ids=["words and negatives", "huge and misshapen", "too small, stray items", "nested"],
)
def test_a_hostile_model_list_gives_no_size_and_the_chat_still_works(fake_server, remote_engines, event_log, payload):
    fake_server.models_payload = payload
    fake_server.routes["/props"] = (200, b"<html>not json</html>")
    fake_server.routes["/api/v0/models"] = (200, {"data": "nope"})
    fake_server.routes["/api/show"] = (200, {"parameters": "num_ctx 99999999999", "model_info": {"x.context_length": "8k"}})
    engine = remote_engines(fake_server.url)
    assert select(engine, event_log, MODEL).reason == "stop"
    assert loaded_context(event_log) == 0
    finished, windows = chat(engine, event_log, long_chat(2))
    assert finished.reason == "stop" and finished.text == "Hello world" and windows == []  # sent as is, as before


def test_config_context_size_wins_over_the_server(fake_server, remote_engines, event_log):
    fake_server.model_extras = {MODEL: {"max_model_len": 131072}}
    engine = remote_engines(fake_server.url, context_sizes={MODEL: 3000, "*": 5000})
    select(engine, event_log, MODEL)
    assert loaded_context(event_log) == 3000
    select(engine, event_log, "/srv/models/model-b")
    assert loaded_context(event_log) == 5000


# ---- the policies --------------------------------------------------------------------------------------------


@pytest.fixture
def vllm_2k(fake_server, remote_engines, event_log):
    """A vLLM-like server with a 2,048-token context, model selected."""
    fake_server.model_extras = {MODEL: {"max_model_len": 2048}}
    fake_server.chat = context_limited(2048)
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    return engine


def test_truncate_middle_keeps_the_first_exchange_and_the_recent_turns(vllm_2k, fake_server, event_log):
    messages = long_chat()
    finished, windows = chat(vllm_2k, event_log, messages)
    assert finished.reason == "stop" and finished.text == "ok"
    assert finished.stats.context_size == 2048  # the status pane's meter keeps the size after the answer
    (window,) = windows
    assert window.policy == "truncate-middle" and window.context_size == 2048 and window.hidden
    assert {0, 1, 2}.isdisjoint(window.hidden) and len(messages) - 1 not in window.hidden
    (sent,) = fake_server.chats
    words = sent_firsts(sent)
    assert words[:3] == ["Be", "q00", "a00"] and words[-1] == "And"
    assert len(words) == len(messages) - len(window.hidden)
    assert sent.body["max_tokens"] <= MAX_TOKENS


def test_rolling_window_lets_the_first_exchange_go(vllm_2k, fake_server, event_log):
    finished, (window,) = chat(vllm_2k, event_log, long_chat(), overflow="rolling-window")
    assert finished.reason == "stop"
    assert 1 in window.hidden and 0 not in window.hidden
    words = sent_firsts(fake_server.chats[0])
    assert words[0] == "Be" and "q00" not in words and words[1].startswith("q")  # recent turns start with a question


def test_stop_refuses_typed_without_sending(vllm_2k, fake_server, event_log):
    finished, windows = chat(vllm_2k, event_log, long_chat(), overflow="stop")
    assert finished.reason == "error" and finished.overflow_refused
    assert 'overflow policy is "stop"' in finished.error and "2048" in finished.error
    assert fake_server.chats == [] and windows == []


def test_a_conversation_that_fits_is_sent_whole(vllm_2k, fake_server, event_log):
    messages = long_chat(3)
    finished, (window,) = chat(vllm_2k, event_log, messages, overflow="stop")
    assert finished.reason == "stop" and window.hidden == ()
    assert len(fake_server.chats[0].body["messages"]) == len(messages)


def test_calibration_from_the_servers_count_lets_stop_send_what_fits(fake_server, remote_engines, event_log):
    """The first estimate errs long (3 characters a token against this server's 4): a fresh engine refuses a
    conversation of 472 server tokens (+32 for the answer) in 512. After one answer with usage, the estimate is
    calibrated and the same conversation is sent, and fits."""
    fake_server.model_extras = {MODEL: {"max_model_len": 512}}
    fake_server.chat = context_limited(512)
    answer = ("lorem ipsum " * 75)[:900]
    short = (Message("user", "q1"), Message("assistant", answer), Message("user", "q2"))
    longer = (*short, Message("assistant", answer), Message("user", "q3"))
    sampling = SamplingParams(temperature=0, max_tokens=32)

    def send(engine, messages) -> Finished:
        request = ChatRequest(messages, sampling=sampling, overflow="stop")
        assert engine.submit(request) is None
        return event_log.finished(request.request_id, 30)

    fresh = remote_engines(fake_server.url)
    select(fresh, event_log, MODEL)
    assert send(fresh, longer).overflow_refused and fake_server.chats == []
    calibrated = remote_engines(fake_server.url)
    select(calibrated, event_log, MODEL)
    assert send(calibrated, short).reason == "stop"
    finished = send(calibrated, longer)
    assert finished.reason == "stop" and finished.text == "ok" and len(fake_server.chats) == 2


# ---- the server's own refusal ----------------------------------------------------------------------------------


def test_stop_without_a_known_size_maps_the_servers_error_to_the_typed_refusal(fake_server, remote_engines, event_log):
    fake_server.chat = context_limited(2048)
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    finished, _ = chat(engine, event_log, long_chat(), overflow="stop")
    assert finished.reason == "error" and finished.overflow_refused
    assert "2048" in finished.error and "truncate-middle" in finished.error
    assert len(fake_server.chats) == 1, "stop reads everything or nothing: no retry"


def test_stop_gives_the_plain_error_for_a_message_too_long_even_alone(fake_server, remote_engines, event_log):
    """No policy and no summary could make it fit, so the offer would loop: the plain "too long" instead."""
    fake_server.chat = context_limited(2048)
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    messages = (*long_chat(2), Message("assistant", "a"), Message("user", "word " * 2000))
    finished, _ = chat(engine, event_log, messages, overflow="stop")
    assert finished.reason == "error" and not finished.overflow_refused
    assert "Shorten the message" in finished.error and "2048" in finished.error


@pytest.mark.parametrize("style", ["vllm", "llama.cpp", "bare"])
def test_an_unknown_size_is_learned_from_the_refusal_and_retried_once(fake_server, remote_engines, event_log, style):
    fake_server.chat = context_limited(2048, style=style)
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    finished, windows = chat(engine, event_log, long_chat())
    assert finished.reason == "stop" and finished.text == "ok", finished.error
    first, retry = fake_server.chats
    assert len(retry.body["messages"]) < len(first.body["messages"])
    assert windows and windows[-1].hidden and sent_firsts(retry)[:3] == ["Be", "q00", "a00"]
    if style != "bare":
        assert windows[-1].context_size == 2048
    # The next turn fits at once: the size (or the guess) is kept for the session.
    finished, _ = chat(engine, event_log, long_chat(21))
    assert finished.reason == "stop" and len(fake_server.chats) == 3


def test_an_estimate_too_low_is_retried_tighter(fake_server, remote_engines, event_log):
    """The server's tokenizer is denser than the estimate assumes (1.5 characters a token): the fit the estimate
    chose is refused, and the retry, counting longer, fits."""
    fake_server.model_extras = {MODEL: {"max_model_len": 2048}}
    fake_server.chat = context_limited(2048, chars_per_token=1.5)
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    finished, windows = chat(engine, event_log, long_chat())
    assert finished.reason == "stop", finished.error
    first, retry = fake_server.chats
    assert len(retry.body["messages"]) < len(first.body["messages"])
    assert len(windows) == 2 and len(windows[1].hidden) > len(windows[0].hidden)


def test_a_retry_that_still_does_not_fit_is_a_plain_error(fake_server, remote_engines, event_log):
    fake_server.model_extras = {MODEL: {"max_model_len": 2048}}
    fake_server.chat = context_limited(300, style="bare")  # the list says 2048; the server reads far less
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    finished, _ = chat(engine, event_log, long_chat())
    assert finished.reason == "error" and not finished.overflow_refused
    assert "still finds the conversation too long" in finished.error and "remote_context_size" in finished.error
    assert len(fake_server.chats) == 2


def test_a_context_error_after_text_is_not_retried(fake_server, remote_engines, event_log):
    """Only a refusal before any answer is an overflow; an error mid-answer keeps the text, as before."""
    from remote_fakes import chunk, raw_events

    fake_server.chat = raw_events(chunk("Hel"), 'data: {"error": {"message": "context length exceeded"}}\n\n')
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    finished, _ = chat(engine, event_log, long_chat(1))
    assert finished.reason == "error" and finished.text == "Hel" and len(fake_server.chats) == 1


def test_stop_sends_again_capped_when_the_servers_count_fits(fake_server, remote_engines, event_log):
    """vLLM refuses prompt + max_tokens over its context. The estimate (3 characters a token) is short of this
    server's count (1.5), so max_tokens was not capped enough; the server says the prompt is 1,470 tokens, which
    fits its 2,048: "stop" must not refuse it, but ask again for what the context leaves."""
    fake_server.model_extras = {MODEL: {"max_model_len": 2048}}
    fake_server.chat = context_limited(2048, chars_per_token=1.5)
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    request = ChatRequest((Message("user", "x" * 2200),), sampling=SamplingParams(max_tokens=1024), overflow="stop")
    assert engine.submit(request) is None
    finished = event_log.finished(request.request_id, 30)
    assert finished.reason == "stop" and finished.text == "ok", finished.error
    first, again = fake_server.chats
    assert first.body["max_tokens"] == 1024 and again.body["max_tokens"] == 2048 - 1470
    assert again.body["messages"] == first.body["messages"]


def test_the_first_estimate_does_not_cap_the_answer(fake_server, remote_engines, event_log):
    """The first estimate errs long (4,000 characters: 1,358 estimated, 1,004 by the server): a cap from it would
    cut the answer at 690 tokens where 1,044 are free. Uncalibrated, max_tokens goes as asked; when that is more
    than the context leaves, the server's refusal gives its count, and the request is sent again capped by it."""
    fake_server.model_extras = {MODEL: {"max_model_len": 2048}}
    fake_server.chat = context_limited(2048)
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)

    def send(max_tokens: int, text: str) -> Finished:
        request = ChatRequest((Message("user", text),), sampling=SamplingParams(max_tokens=max_tokens))
        assert engine.submit(request) is None
        return event_log.finished(request.request_id, 30)

    assert send(1024, "y" * 4000).reason == "stop"
    assert [c.body["max_tokens"] for c in fake_server.chats] == [1024]
    fake_server.seen.clear()
    fresh = remote_engines(fake_server.url)  # uncalibrated again
    engine = fresh
    select(engine, event_log, MODEL)
    finished = send(2000, "y" * 4000)
    assert finished.reason == "stop" and finished.text == "ok", finished.error
    assert [c.body["max_tokens"] for c in fake_server.chats] == [2000, 2048 - 1004]


def test_a_guessed_size_is_lowered_when_it_is_refused_again(fake_server, remote_engines, event_log):
    """A server that says no numbers, with a 600-token context: the first refusal guesses half the refused
    prompt; a guess refused again must be lowered (it was only raised along with the estimate, so every later
    turn failed twice). From the second turn the guess fits, and each turn is answered."""
    fake_server.chat = context_limited(600, style="bare")
    engine = remote_engines(fake_server.url)
    select(engine, event_log, MODEL)
    outcomes = [chat(engine, event_log, long_chat(20 + turn))[0].reason for turn in range(3)]
    sent = len(fake_server.chats)
    assert outcomes[1:] == ["stop", "stop"] and sent <= 4, (outcomes, sent)  # it was 3 errors, 6 requests
    finished, _ = chat(engine, event_log, long_chat(23))
    assert finished.reason == "stop" and len(fake_server.chats) == sent + 1


@pytest.mark.parametrize("where", ["/props", "/v1/models", "chat error"])
def test_json_nested_too_deep_is_garbage_not_a_crash(fake_server, remote_engines, event_log, where):
    """`json` recurses: 50,000 brackets (well under the 64 KB read) raise RecursionError, which must read as any
    other garbage: the model is selected with its size unknown, and a chat error is a plain error."""
    from mlxchat.engine import ModelLoadFailed

    from remote_fakes import error_response

    deep = b"[" * 50000
    if where == "/props":
        fake_server.routes["/props"] = (200, deep)
    elif where == "/v1/models":
        fake_server.models_payload = deep
    else:
        fake_server.chat = error_response(400, deep)
    engine = remote_engines(fake_server.url)
    load = select(engine, event_log, MODEL)
    assert load.reason == "stop", load.error
    assert not [e for e in event_log.of(load.request_id) if isinstance(e, ModelLoadFailed)]
    assert loaded_context(event_log) == 0
    finished, _ = chat(engine, event_log, long_chat(1))
    if where == "chat error":
        assert finished.reason == "error" and "HTTP 400" in finished.error and "Recursion" not in finished.error
    else:
        assert finished.reason == "stop"


def test_a_trickling_probe_is_cut_off(fake_server, remote_engines, event_log):
    """A side endpoint that sends its answer a byte at a time gets each read within the timeout: only a total
    deadline ends it. The model is selected (size unknown) while the trickle would last a minute more."""
    from remote_fakes import trickle

    fake_server.routes["/props"] = trickle()
    engine = remote_engines(fake_server.url)
    assert select(engine, event_log, MODEL, timeout_s=20).reason == "stop"
    assert loaded_context(event_log) == 0


def test_cancel_hangs_up_on_a_probe(fake_server, remote_engines, event_log, monkeypatch):
    """With the probe's deadline a minute away, a cancel still ends the selection at once (it hangs up, as on a
    stream); the next selection asks again."""
    import time

    from mlxchat.engine import LoadModel
    from mlxchat.engine.remote import engine as remote_engine
    from remote_fakes import trickle

    monkeypatch.setattr(remote_engine, "PROBE_TIMEOUT_S", 60.0)
    fake_server.routes["/props"] = trickle()
    engine = remote_engines(fake_server.url)
    load = LoadModel(MODEL)
    assert engine.submit(load) is None
    deadline = time.monotonic() + 10
    while not any(r.path == "/props" for r in fake_server.seen):
        assert time.monotonic() < deadline, "the probe was never made"
        time.sleep(0.02)
    time.sleep(0.2)  # the body is being read
    assert engine.cancel(load.request_id)
    assert event_log.finished(load.request_id, 10).reason == "cancelled"
    fake_server.routes["/props"] = (200, {"default_generation_settings": {"n_ctx": 4096}})
    select(engine, event_log, MODEL)
    assert loaded_context(event_log) == 4096


# ---- plain values ----------------------------------------------------------------------------------------------


def test_server_overflow_reads_the_numbers_and_ignores_other_errors():
    vllm = server_overflow("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
                           "(4000 in the messages, 1000 in the completion).")
    assert (vllm.context_size, vllm.prompt_tokens) == (4096, 4000)
    lm_studio = server_overflow("Trying to keep the first 5210 tokens when context the overflows. However, the model "
                                "is loaded with context length of only 4096 tokens, which is not enough.")
    assert (lm_studio.context_size, lm_studio.prompt_tokens) == (4096, 5210)
    assert server_overflow("x", "context_length_exceeded") is not None
    for other in ("model 'x' not found", "Server busy", "Metal command buffer failed", None):
        assert server_overflow(other) is None


def test_the_estimate_calibrates_from_the_servers_count():
    estimate = TokenEstimate()
    request = ChatRequest(long_chat(5))
    before = estimate.prompt_tokens(request)
    estimate.calibrate(request, before // 2)  # the server counted half: its tokens hold more characters
    assert estimate.calibrated and estimate.chars_per_token > DEFAULT_CHARS_PER_TOKEN
    assert before // 2 <= estimate.prompt_tokens(request) < before
    estimate.calibrate(request, 3)  # nonsense (below the fixed guesses) is ignored
    assert estimate.chars_per_token > DEFAULT_CHARS_PER_TOKEN
    assert TokenEstimate().text_tokens("日本語のテキスト") >= 8  # a token or more a character, not a quarter


def test_tightening_scales_the_text_alone_and_stays_in_bounds(tmp_path):
    """An image message estimated 1,168 (1,024 of it the image guess) that the server counts 300: the image guess
    was long, not the text's ratio. The ratio stays within its bounds, and the text's estimate does not shrink
    past what the server's count leaves it."""
    from mlxchat.engine.remote.token_estimate import _RATIO_BOUNDS

    image = tmp_path / "cat.png"
    request = ChatRequest((Message("user", "describe this picture " * 16, images=(image,)),))
    estimate = TokenEstimate()
    estimate.tighten(request, 300)
    assert _RATIO_BOUNDS[0] <= estimate.chars_per_token <= _RATIO_BOUNDS[1]
    text = ChatRequest(long_chat(3))
    estimate = TokenEstimate()
    estimate.tighten(text, 10)  # a count below the fixed guesses says nothing of the text: ignored
    assert estimate.chars_per_token == DEFAULT_CHARS_PER_TOKEN
    estimate.tighten(text, 200)  # far fewer tokens than the text's characters allow: the bound holds
    assert estimate.chars_per_token == _RATIO_BOUNDS[1]
    estimate = TokenEstimate()
    estimate.tighten(text, 2 * estimate.prompt_tokens(text))
    assert estimate.prompt_tokens(text) >= 2 * TokenEstimate().prompt_tokens(text) - 1  # the count, with the margin


# ---- the chat screen -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["truncate-middle", "stop"])
async def test_the_chat_screen_marks_hidden_turns_and_offers_the_ways_out(fake_server, tmp_path, policy):
    """The same `ContextWindow` and `Finished.overflow_refused` reach the screen as from a local model, so the
    same marks appear (truncate-middle) and the same offer ("stop")."""
    import time

    from mlxchat.ui.screens.overflow_offer import OverflowOfferScreen

    from mlxchat.engine.remote import remote_engine_factory
    from mlxchat.settings import ChatSettings
    from mlxchat.store import History
    from mlxchat.ui.app import make_app
    from mlxchat.ui.widgets.message import MessageView

    answer = "lorem ipsum " * 100  # 300 of the server's tokens: two answers overflow its 512
    fake_server.model_extras = {MODEL: {"max_model_len": 512}}
    fake_server.chat = context_limited(512, reply=answer)
    app = make_app(
        engine_factory=remote_engine_factory(fake_server.url, None, MODEL),
        model=MODEL,
        history=History(tmp_path),
        chat_settings=ChatSettings(temperature=0.0, model=MODEL, max_tokens=32, overflow=policy),
    )

    async def until(condition, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            await pilot.pause(0.02)

    async with app.run_test(size=(100, 30)) as pilot:
        await until(lambda: app.chat.model is not None and not app.chat.busy)
        assert app.chat.model.context_size == 512
        for question in ("q1", "q2"):
            await pilot.press(*question, "enter")
            await until(lambda: len(fake_server.chats) == int(question[1]) and not app.chat.busy)
        await pilot.press("q", "3", "enter")
        if policy == "stop":
            await until(lambda: isinstance(app.screen, OverflowOfferScreen))
            assert '"stop"' in app.screen.question and len(fake_server.chats) == 2
            return
        await until(lambda: len(fake_server.chats) == 3 and not app.chat.busy)
        hidden = [view.turn.text for view in app.chat.conversation.query(MessageView) if not view.in_view]
        assert hidden == ["q2", answer]
        assert app.chat.status.turns_out_of_view == 2
        assert [m["content"] for m in fake_server.chats[-1].body["messages"]] == ["q1", answer, "q3"]


def test_config_toml_remote_context_size(tmp_path):
    """A number for every model, or a table by model id with "*" for the rest; a bad entry is named and left out."""
    from mlxchat.settings import load_config

    path = tmp_path / "config.toml"
    path.write_text("remote_context_size = 32768\n")
    assert dict(load_config(path).remote_context_sizes) == {"*": 32768}
    path.write_text('[remote_context_size]\n"mlx-community/Qwen3-8B-4bit" = 40960\n"*" = 8192\nbad = "lots"\nsmall = 12\n')
    config = load_config(path)
    assert dict(config.remote_context_sizes) == {"mlx-community/Qwen3-8B-4bit": 40960, "*": 8192}
    assert len(config.problems) == 2 and all("remote_context_size" in problem for problem in config.problems)
    path.write_text("[remote_context_size]\nhuge = 100000001\nfloat = 4096.0\nok = 100000000\n")
    config = load_config(path)
    assert dict(config.remote_context_sizes) == {"ok": 100_000_000}
    assert len(config.problems) == 2 and all("from 256 to 100,000,000" in problem for problem in config.problems)
