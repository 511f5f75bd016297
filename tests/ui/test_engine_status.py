"""The status reducer (`mlxchat.ui.engine_status`), with plain engine events and no Textual: what the status pane
shows after each thing the engine says or the user does."""

from __future__ import annotations

from mlxchat.engine import (
    Draining,
    Finished,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    ModelUnloaded,
    PrefillProgress,
    Silence,
    Started,
    TextDelta,
    ThinkingDelta,
    ThinkingDone,
)
from mlxchat.ui.engine_status import (
    AnswerKeys,
    Awaited,
    EngineStatus,
    after_event,
    answer_requested,
    cancel_requested,
    load_requested,
)

from staged import TINY_INFO, stats_for

KEYS = AnswerKeys(continue_key="f5", retry_key="f4")
CHAT = Awaited("chat-1", "chat")
LOAD = Awaited("load-1", "load")


def run(status: EngineStatus, *events, awaited: Awaited | None = CHAT, now: float = 10.0) -> EngineStatus:
    for event in events:
        status = after_event(status, event, awaited, now=now, keys=KEYS)
    return status


def ready() -> EngineStatus:
    return run(load_requested(EngineStatus(), "demo model"), ModelLoaded("load-1", TINY_INFO, 0.5), awaited=LOAD)


def test_a_load_shows_its_steps_then_the_model_and_its_resources():
    status = load_requested(EngineStatus(), "demo model")
    assert (status.phase, status.detail) == ("loading", "Loading demo model")
    status = run(status, ModelLoading("load-1", "demo", "Reading weights", 0.4), awaited=LOAD)
    assert (status.phase, status.detail, status.progress) == ("loading", "Reading weights", 0.4)
    status = run(status, ModelLoaded("load-1", TINY_INFO, 0.5), Finished("load-1", "stop"), awaited=LOAD)
    assert status.phase == "ready" and status.detail == "SmolLM2-135M-Instruct loaded in 0.5s"
    assert status.model == TINY_INFO and status.model_name == TINY_INFO.name
    assert (status.memory_bytes, status.context_used, status.context_size) == (114_000_000, 0, 8192)


def test_a_base_model_says_so_when_it_has_loaded():
    from dataclasses import replace

    base = replace(TINY_INFO, base_model=True)
    status = run(load_requested(EngineStatus(), "base"), ModelLoaded("load-1", base, 0.5), awaited=LOAD)
    assert status.detail == "SmolLM2-135M-Instruct (base model) loaded in 0.5s"


def test_a_failed_switch_keeps_the_model_that_is_still_loaded():
    status = run(ready(), ModelLoadFailed("load-2", "other", "no such model", still_loaded=TINY_INFO.name))
    assert (status.phase, status.detail, status.model) == ("ready", "no such model", TINY_INFO)
    failed = run(ready(), ModelLoadFailed("load-2", "other", "no such model", still_loaded=None))
    assert (failed.phase, failed.model, failed.model_name) == ("error", None, None)


def test_a_stopped_load_says_so_and_an_unload_leaves_no_model():
    status = run(load_requested(EngineStatus(), "x"), Finished("load-1", "cancelled"), awaited=LOAD)
    assert (status.phase, status.detail) == ("no-model", "load stopped")
    unloaded = run(ready(), ModelUnloaded("unload-1"))
    assert (unloaded.phase, unloaded.model, unloaded.memory_bytes) == ("no-model", None, None)


def test_an_answer_goes_through_prefill_and_counts_its_tokens():
    status = answer_requested(ready())
    assert (status.phase, status.tokens) == ("prefill", 0)
    status = run(status, Started("chat-1", 42, 10, "text"))
    assert (status.prefill_done, status.prefill_total) == (10, 42)
    status = run(status, PrefillProgress("chat-1", 42, 42), TextDelta("chat-1", "Par", 1), TextDelta("chat-1", "is", 2))
    assert (status.phase, status.tokens) == ("generating", 3)


def test_stats_update_the_numbers_the_same_way_streamed_or_final():
    streamed = run(answer_requested(ready()), TextDelta("chat-1", "a", 1), stats_for("chat-1", 24))
    final = run(answer_requested(ready()), TextDelta("chat-1", "a", 1), Finished("chat-1", "stop", stats=stats_for("chat-1", 24)))
    for status in (streamed, final):
        assert (status.tokens, status.tokens_per_s, status.memory_bytes, status.context_used) == (24, 48.2, 162_000_000, 66)
    assert (final.phase, final.detail) == ("ready", "")


def test_draining_shows_from_the_cancel_key_until_finished_whatever_arrives_meanwhile():
    status = cancel_requested(run(answer_requested(ready()), TextDelta("chat-1", "a", 1)), "cancel", now=5.0)
    assert (status.phase, status.since, status.detail) == ("draining", 5.0, "stopping after the current step…")
    status = run(status, TextDelta("chat-1", "b", 1), stats_for("chat-1", 2), Draining("chat-1", "cancel"), now=6.0)
    assert (status.phase, status.since) == ("draining", 5.0)
    status = run(status, Finished("chat-1", "cancelled", stats=stats_for("chat-1", 2)))
    assert (status.phase, status.detail) == ("stopped", "after 2 tokens · f5 continues · f4 retries")


def test_quitting_says_the_app_waits_for_the_engine():
    status = cancel_requested(answer_requested(ready()), "shutdown", now=1.0)
    assert status.detail == "quitting when the engine has stopped…"


def test_a_stopped_answer_without_text_can_only_be_retried_and_a_continue_counts_from_before():
    empty = run(answer_requested(ready()), Finished("chat-1", "cancelled"))
    assert empty.detail == "after 0 tokens · f4 retries"
    continued = run(answer_requested(ready()), TextDelta("chat-1", "more", 3), Finished("chat-1", "cancelled"),
                    awaited=Awaited("chat-1", "chat", tokens_before=24))
    assert continued.detail == "after 27 tokens · f5 continues · f4 retries"


def test_an_answer_cut_at_max_tokens_and_a_failed_one():
    cut = run(answer_requested(ready()), Finished("chat-1", "length"))
    assert (cut.phase, cut.detail) == ("ready", "reached max tokens")
    failed = run(answer_requested(ready()), Finished("chat-1", "error", error="out of memory"))
    assert (failed.phase, failed.detail) == ("error", "out of memory")


def test_events_for_a_request_not_awaited_never_change_the_phase():
    generating = run(answer_requested(ready()), TextDelta("chat-1", "a", 1))
    late = run(generating, TextDelta("old", "x", 5), Started("old", 1, 0, "text"), Finished("old", "error", error="x"),
               Draining("old", "cancel"))
    assert late == generating
    idle = run(ready(), TextDelta("chat-1", "a", 1), Finished("chat-1", "stop"), awaited=None)
    assert idle == ready()


def test_an_answer_in_a_conversation_the_reader_left_says_where_it_is_and_where_it_ended():
    from mlxchat.ui.engine_status import reading_elsewhere

    status = reading_elsewhere(run(answer_requested(ready()), TextDelta("chat-1", "a", 1)), "France trivia")
    status = run(status, TextDelta("chat-1", "b", 1), stats_for("chat-1", 2))
    assert (status.phase, status.answering_in) == ("generating", "France trivia")
    done = run(status, Finished("chat-1", "stop"))
    assert (done.phase, done.detail, done.answering_in) == ("ready", "in 'France trivia': answered, and saved", None)
    stopped = run(status, Finished("chat-1", "cancelled"))
    assert stopped.detail == "in 'France trivia': after 2 tokens", "no keys: they would act on the chat on screen"
    assert reading_elsewhere(status, None).answering_in is None, "back in the answering conversation"


def test_a_silent_server_is_waited_for_until_text_comes_again():
    """A `Silence` mid-answer replaces the rate with how long the server has been quiet; the next text or thinking
    ends it, and so does the answer's end. Before the answer, while draining or for another request, it is ignored."""
    status = run(answer_requested(ready()), TextDelta("chat-1", "a", 1), stats_for("chat-1", 24))
    status = run(status, Silence("chat-1", 1.02))
    assert (status.phase, status.silent_s, status.tokens_per_s) == ("generating", 1.02, 48.2)
    status = run(status, Silence("chat-1", 2.03), Silence("other", 9.0))
    assert status.silent_s == 2.03
    assert run(status, TextDelta("chat-1", "b", 1)).silent_s is None
    assert run(status, ThinkingDelta("chat-1", "hm", 1)).silent_s is None
    assert run(status, Finished("chat-1", "stop")).silent_s is None
    assert answer_requested(status).silent_s is None
    assert run(answer_requested(ready()), Silence("chat-1", 1.0)).silent_s is None  # prefill: no answer yet
    draining = cancel_requested(run(answer_requested(ready()), TextDelta("chat-1", "a", 1)), "cancel", now=5.0)
    assert run(draining, Silence("chat-1", 1.0)).silent_s is None


def test_the_end_of_thinking_is_the_answer_being_written_not_still_thinking():
    """Between `ThinkingDone` and the answer's first text (held while it may be whitespace) the phase says the
    answer is being written; the thinking tokens stay counted, and a drain keeps its word."""
    thinking = run(answer_requested(ready()), Started("chat-1", 9, 0, "text"), ThinkingDelta("chat-1", "hm", 7))
    assert thinking.phase == "thinking" and thinking.tokens == 7
    done = run(thinking, ThinkingDone("chat-1", 7, 0.4))
    assert done.phase == "generating" and done.tokens == 7
    assert run(done, TextDelta("chat-1", "Hi", 1)).tokens == 8
    draining = cancel_requested(thinking, "cancel", now=5.0)
    assert run(draining, ThinkingDone("chat-1", 7, 0.4)).phase == "draining"
    assert run(thinking, ThinkingDone("other", 7, 0.4)).phase == "thinking"
