"""Prompt caches saved on disk: a conversation resumes after a restart without reading its history again."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

from mlxchat.engine import ChatRequest, Engine, LoadModel, Message, SamplingParams, Started
from mlxchat.engine.saved_caches import SavedCacheFolder

GREEDY = SamplingParams(temperature=0, max_tokens=6)
HISTORY = (
    Message("system", "Be brief."),
    Message("user", "The capital of France is Paris. The capital of Italy is Rome."),
    Message("assistant", "Once upon a time there was a small model."),
    Message("user", "Tell me about the weather, code, cats and images."),
)


@pytest.fixture
def folder(tmp_path) -> SavedCacheFolder:
    return SavedCacheFolder(tmp_path / "prompt-caches")


def turn(event_log, model, folder, messages, conversation_id="chat-1", kv_bits=None):
    """One answer from a freshly started engine (a process restart, as far as caches go): (Started, Finished)."""
    engine = Engine(event_log, saved_caches=folder).start()
    try:
        load = LoadModel(str(model))
        engine.submit(load)
        assert event_log.finished(load.request_id).reason == "stop"
        request = ChatRequest(messages, conversation_id=conversation_id, sampling=GREEDY, kv_bits=kv_bits)
        assert engine.submit(request) is None
        finished = event_log.finished(request.request_id)
        started = event_log.wait_for(Started, request.request_id)
    finally:
        engine.close(timeout_s=30)
    assert finished.reason == "length", finished.error
    return started, finished


def follow_up(messages, finished):
    return messages + (Message("assistant", finished.text), Message("user", "And cats?"))


def test_a_conversation_resumes_from_its_saved_cache_after_a_restart(event_log, tiny_model, folder):
    first, finished = turn(event_log, tiny_model, folder, HISTORY)
    assert first.cached_tokens == 0
    assert folder.file_for("chat-1").is_file()
    resumed, _ = turn(event_log, tiny_model, folder, follow_up(HISTORY, finished))
    assert resumed.cached_tokens >= first.prompt_tokens


def test_another_conversation_does_not_use_it(event_log, tiny_model, folder):
    turn(event_log, tiny_model, folder, HISTORY)
    other, _ = turn(event_log, tiny_model, folder, HISTORY, conversation_id="chat-2")
    assert other.cached_tokens == 0


def test_a_saved_cache_is_never_trusted_for_another_model(event_log, tiny_model, folder, tmp_path):
    from mlxchat.models.random_weights import RandomLlamaSpec, build_random_llama

    turn(event_log, tiny_model, folder, HISTORY)
    other_model = build_random_llama(tmp_path / "other", RandomLlamaSpec(seed=7))
    started, _ = turn(event_log, other_model, folder, HISTORY)
    assert started.cached_tokens == 0


@pytest.mark.parametrize("other", ["model", "kv_bits"])
def test_a_cache_saved_for_another_model_or_quantization_is_not_read_at_all(
    event_log, tiny_model, folder, tmp_path, monkeypatch, other
):
    """Its header says whom it was saved for: a mismatch is known without reading (and evaluating) the arrays."""
    import mlxchat.engine.local.saved_prompt_caches as prompt_cache
    from mlxchat.models.random_weights import RandomLlamaSpec, build_random_llama

    turn(event_log, tiny_model, folder, HISTORY)
    read: list[str] = []
    original = prompt_cache.load_prompt_cache
    monkeypatch.setattr(prompt_cache, "load_prompt_cache", lambda path, **kw: read.append(path) or original(path, **kw))
    resumed, _ = turn(event_log, tiny_model, folder, HISTORY)
    assert resumed.cached_tokens > 0 and len(read) == 1, "read for its own model and quantization"
    model = build_random_llama(tmp_path / "other", RandomLlamaSpec(seed=7)) if other == "model" else tiny_model
    started, _ = turn(event_log, model, folder, HISTORY, kv_bits=8 if other == "kv_bits" else None)
    assert started.cached_tokens == 0 and len(read) == 1, "not read for another"


def test_an_edited_history_reuses_only_what_still_matches(event_log, tiny_model, folder):
    first, finished = turn(event_log, tiny_model, folder, HISTORY)
    edited = HISTORY[:2] + (Message("assistant", "Something else entirely."),) + HISTORY[3:]
    started, _ = turn(event_log, tiny_model, folder, edited)
    assert 0 < started.cached_tokens < first.prompt_tokens - 5


def test_a_different_kv_quantization_does_not_use_it(event_log, tiny_model, folder):
    turn(event_log, tiny_model, folder, HISTORY)
    started, _ = turn(event_log, tiny_model, folder, HISTORY, kv_bits=8)
    assert started.cached_tokens == 0


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupt_saved_cache_is_ignored_with_a_log_line(event_log, tiny_model, folder, caplog, damage):
    turn(event_log, tiny_model, folder, HISTORY)
    path = folder.file_for("chat-1")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a cache at all" * 10)
    with caplog.at_level(logging.WARNING, logger="mlxchat.engine.local.saved_prompt_caches"):
        started, finished = turn(event_log, tiny_model, folder, HISTORY)
    assert started.cached_tokens == 0 and finished.text
    assert any("unreadable saved prompt cache" in record.getMessage() for record in caplog.records)
    assert path.is_file()  # the answer saved a good one again


def test_the_folder_evicts_the_least_recently_used_beyond_its_cap(tmp_path):
    folder = SavedCacheFolder(tmp_path, cap_bytes=2500)
    paths = []
    for age, name in enumerate(["old", "middle", "new"]):
        path = folder.file_for(name)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1000 + age, 1000 + age))
        paths.append(path)
    folder.touch(paths[0])  # the oldest was just used again
    removed = folder.evict(keep=paths[2])
    assert removed == [paths[1]]
    assert paths[0].is_file() and paths[2].is_file()


def test_eviction_deletes_only_stale_partial_files(tmp_path):
    """A `.partial` file is another process's save in progress until it goes unmodified for
    `STALE_PARTIAL_AGE_S`: eviction leaves a young one alone (its owner's rename must still succeed), even inside
    a unit it evicts, does not count it toward the cap, and deletes a stale one."""
    from mlxchat.engine.saved_caches import STALE_PARTIAL_AGE_S

    folder = SavedCacheFolder(tmp_path, cap_bytes=2500)
    old, new = folder.file_for("old"), folder.file_for("new")
    for age, path in enumerate([old, new]):
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1000 + age, 1000 + age))
    in_progress = old.with_name(old.name.replace(".safetensors", ".partial.safetensors"))
    in_progress.write_bytes(b"x" * 1000)  # another process writing "old" anew: just modified
    abandoned = tmp_path / ("c" * 32 + ".partial.safetensors")  # a save that crashed long ago
    abandoned.write_bytes(b"x" * 100)
    stale = time.time() - STALE_PARTIAL_AGE_S - 60
    os.utime(abandoned, (stale, stale))

    assert folder.evict(keep=new) == [abandoned]  # 2,000 bytes of units: within the cap without the young one
    assert in_progress.is_file() and old.is_file()
    folder.file_for("newest").write_bytes(b"x" * 1000)
    assert folder.evict(keep=new) == [old]  # "old" goes as the least recently used unit; its save in progress stays
    assert in_progress.is_file()
    os.replace(in_progress, old)  # the other process finishes its save


def test_deleting_a_conversation_deletes_its_saved_cache(tmp_path):
    folder = SavedCacheFolder(tmp_path)
    folder.file_for("gone").write_bytes(b"cache")
    folder.delete("gone")
    folder.delete("never-saved")
    assert not folder.file_for("gone").exists()


def test_the_history_deletes_a_conversations_saved_cache_with_it(tmp_path):
    from mlxchat.engine.saved_caches import SavedCacheFolder, default_folder
    from mlxchat.store import History

    with History(tmp_path / "data") as history:
        conversation = history.create_conversation()
        saved = SavedCacheFolder(default_folder()).file_for(conversation.id)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_bytes(b"cache")
        history.delete_conversation(conversation.id)
    assert not saved.exists()


def test_saving_waits_until_the_answer_is_delivered_and_refuses_no_one(event_log, tiny_model, folder, monkeypatch):
    """The cache is written after `Finished` is out; a message sent meanwhile is accepted and answered next."""
    import threading

    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    saving, release = threading.Event(), threading.Event()
    original = SavedPromptCaches.save

    def slow_save(self, *args, **kwargs):
        saving.set()
        assert release.wait(30)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SavedPromptCaches, "save", slow_save)
    engine = Engine(event_log, saved_caches=folder).start()
    try:
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        event_log.finished(load.request_id)
        first = ChatRequest(HISTORY, conversation_id="chat-1", sampling=GREEDY)
        engine.submit(first)
        assert event_log.finished(first.request_id).reason == "length"
        assert saving.wait(30), "the save starts after Finished"
        second = ChatRequest(HISTORY, conversation_id="chat-1", sampling=GREEDY)
        assert engine.submit(second) is None, "not refused while the cache is being written"
        release.set()
        assert event_log.finished(second.request_id).reason == "length"
    finally:
        release.set()
        engine.close(timeout_s=30)


def test_a_cache_saved_under_the_history_id_resumes_a_conversation_whose_session_id_was_different(
    event_log, tiny_model, folder
):
    """The chat screen's new conversation has a session id that dies with the process; saved under the
    history's id, its cache serves the resumed conversation (whose id is then the history's)."""
    engine = Engine(event_log, saved_caches=folder).start()
    try:
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        event_log.finished(load.request_id)
        opening = ChatRequest(HISTORY[:2], conversation_id="chat-session-1", sampling=GREEDY)  # not stored yet
        engine.submit(opening)
        event_log.finished(opening.request_id)
        request = ChatRequest(HISTORY, conversation_id="chat-session-1", sampling=GREEDY, saved_as="stored-7")
        engine.submit(request)
        first = event_log.finished(request.request_id)
    finally:
        engine.close(timeout_s=30)
    assert folder.file_for("stored-7").is_file()
    assert not folder.file_for("chat-session-1").exists(), "the copy under the session's id is not left behind"
    resumed, _ = turn(event_log, tiny_model, folder, follow_up(HISTORY, first), conversation_id="stored-7")
    assert resumed.cached_tokens >= first.usage.prompt_tokens


def saved_tokens(folder: SavedCacheFolder, name: str) -> list[int]:
    from mlx_lm.models.cache import load_prompt_cache

    _cache, metadata = load_prompt_cache(str(folder.file_for(name)), return_metadata=True)
    return json.loads(metadata["mlxchat_tokens"])


def test_a_summary_of_the_conversation_leaves_its_saved_cache_as_it_was(event_log, tiny_model, folder):
    """The "stop" policy's summary reads the conversation (another window of it, then the instruction): under
    the conversation's own cache name it would overwrite the file the conversation resumes from."""
    from mlxchat.engine.summary import summary_request

    engine = Engine(event_log, saved_caches=folder).start()
    try:
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        event_log.finished(load.request_id)
        request = ChatRequest(HISTORY, conversation_id="chat-session-1", sampling=GREEDY, saved_as="stored-7")
        engine.submit(request)
        answer = event_log.finished(request.request_id)
        other = ChatRequest(HISTORY[:1] + (Message("user", "x"),), conversation_id="other", sampling=GREEDY)
        engine.submit(other)
        event_log.finished(other.request_id)  # another conversation's turn: the answer's cache was saved first
        before = saved_tokens(folder, "stored-7")
        summary = summary_request(
            follow_up(HISTORY, answer)[:-1], conversation_id="chat-session-1", sampling=GREEDY, title="t",
            saved_as="stored-7",
        )
        engine.submit(summary)
        assert event_log.finished(summary.request_id).reason == "length"
    finally:
        engine.close(timeout_s=30)
    assert saved_tokens(folder, "stored-7") == before


def test_a_written_summary_leaves_no_saved_cache_and_removes_an_earlier_one(event_log, tiny_model, folder):
    """A summary is a one-off: a new chat goes on from it, and a later summary of the grown conversation reads
    another window. Its cache is not saved, and a file an earlier version saved under its name is deleted (on the
    owner thread, when it finishes), instead of holding disk space until the size cap evicts it."""
    from mlxchat.engine.summary import summary_cache_id, summary_request

    leftover = folder.file_for(summary_cache_id("chat-session-1"))
    folder.root.mkdir(parents=True)
    leftover.write_bytes(b"an earlier summary's cache")
    engine = Engine(event_log, saved_caches=folder).start()
    try:
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        event_log.finished(load.request_id)
        summary = summary_request(HISTORY, conversation_id="chat-session-1", sampling=GREEDY, title="t",
                                  saved_as="stored-7")
        engine.submit(summary)
        assert event_log.finished(summary.request_id).reason == "length"
        again = summary_request(HISTORY, conversation_id="chat-session-1", sampling=GREEDY, title="t")
        engine.submit(again)
        event_log.finished(again.request_id)
        assert event_log.wait_for(Started, again.request_id).cached_tokens > 0, "still reused from memory"
    finally:
        engine.close(timeout_s=30)
    assert not leftover.exists()
    assert list(folder.root.iterdir()) == []


# ---- reading a conversation's saved cache ahead of its next turn (`PrepareConversation`) ------------------------


@pytest.fixture
def counted_loads(monkeypatch):
    """The conversation names `SavedPromptCaches.load` was asked for (the real load runs), and a gate that holds
    each load until it is set (set by default)."""
    import threading

    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    original = SavedPromptCaches.load
    calls: list[str] = []
    gate = threading.Event()
    gate.set()
    started = threading.Event()

    def counting(self, conversation_id, *args, **kwargs):
        calls.append(conversation_id)
        started.set()
        assert gate.wait(30)
        return original(self, conversation_id, *args, **kwargs)

    monkeypatch.setattr(SavedPromptCaches, "load", counting)
    counting.calls, counting.gate, counting.started = calls, gate, started
    return counting


def loaded_engine(event_log, model, folder):
    engine = Engine(event_log, saved_caches=folder).start()
    load = LoadModel(str(model))
    engine.submit(load)
    assert event_log.finished(load.request_id).reason == "stop"
    return engine


def test_a_prepared_conversation_starts_its_next_turn_without_reading_the_file(
    event_log, tiny_model, folder, counted_loads
):
    from mlxchat.engine import ConversationPrepared, PrepareConversation

    first, finished = turn(event_log, tiny_model, folder, HISTORY)
    counted_loads.calls.clear()
    engine = loaded_engine(event_log, tiny_model, folder)
    try:
        hint = PrepareConversation("chat-1")
        engine.prepare(hint)
        prepared = event_log.wait_for(ConversationPrepared, hint.request_id)
        assert prepared.cached_tokens >= first.prompt_tokens and not prepared.superseded
        assert counted_loads.calls == ["chat-1"]
        request = ChatRequest(follow_up(HISTORY, finished), conversation_id="chat-1", sampling=GREEDY)
        assert engine.submit(request) is None
        assert event_log.finished(request.request_id).reason == "length"
        assert event_log.wait_for(Started, request.request_id).cached_tokens >= first.prompt_tokens
    finally:
        engine.close(timeout_s=30)
    assert counted_loads.calls == ["chat-1"], "the turn used what was read ahead, not the file again"


def test_a_message_sent_while_a_conversation_is_prepared_is_accepted_and_waits_for_it(
    event_log, tiny_model, folder, counted_loads
):
    """The prefetch never refuses a person's message: it is accepted at once and starts when the read is done
    (a read the turn would otherwise make itself)."""
    from mlxchat.engine import PrepareConversation

    first, finished = turn(event_log, tiny_model, folder, HISTORY)
    counted_loads.calls.clear()
    engine = loaded_engine(event_log, tiny_model, folder)
    counted_loads.gate.clear()
    try:
        engine.prepare(PrepareConversation("chat-1"))
        assert counted_loads.started.wait(30)
        request = ChatRequest(follow_up(HISTORY, finished), conversation_id="chat-1", sampling=GREEDY)
        assert engine.submit(request) is None, "not refused while the conversation is being prepared"
        counted_loads.gate.set()
        assert event_log.finished(request.request_id).reason == "length"
        assert event_log.wait_for(Started, request.request_id).cached_tokens >= first.prompt_tokens
    finally:
        counted_loads.gate.set()
        engine.close(timeout_s=30)
    assert counted_loads.calls == ["chat-1"]


def test_a_hint_overtaken_by_a_message_is_dropped(event_log, tiny_model, folder, counted_loads, monkeypatch):
    """A hint still waiting when a message is sent after it is skipped: the message does not wait for a read it
    may not need (here: the person switched to chat-2 and back, and sent in chat-1)."""
    import threading

    from mlxchat.engine import ConversationPrepared, PrepareConversation
    from mlxchat.engine.local.prompt_cache import SavedPromptCaches

    turn(event_log, tiny_model, folder, HISTORY, conversation_id="chat-2")
    counted_loads.calls.clear()
    saving, release = threading.Event(), threading.Event()
    original = SavedPromptCaches.save

    def slow_save(self, *args, **kwargs):  # holds the owner thread after an answer, so both wait in its inbox
        saving.set()
        assert release.wait(30)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SavedPromptCaches, "save", slow_save)
    engine = loaded_engine(event_log, tiny_model, folder)
    try:
        opening = ChatRequest(HISTORY, conversation_id="chat-1", sampling=GREEDY)
        engine.submit(opening)
        event_log.finished(opening.request_id)
        assert saving.wait(30)
        hint = PrepareConversation("chat-2")
        engine.prepare(hint)
        again = ChatRequest(HISTORY, conversation_id="chat-1", sampling=GREEDY)
        assert engine.submit(again) is None
        release.set()
        assert event_log.wait_for(ConversationPrepared, hint.request_id).superseded
        assert event_log.finished(again.request_id).reason == "length"
    finally:
        release.set()
        engine.close(timeout_s=30)
    assert "chat-2" not in counted_loads.calls, "the overtaken hint read nothing"


def test_the_saved_file_holds_only_the_tokens_the_cache_holds(event_log, tiny_model, folder):
    """mlx-lm's KV cache grows in steps of 256 tokens; the file (what a resume reads) holds only the used part,
    and a cache read back from it answers the follow-up from there."""
    import mlx.core as mx

    first, finished = turn(event_log, tiny_model, folder, HISTORY)
    arrays, metadata = mx.load(str(folder.file_for("chat-1")), return_metadata=True)
    held = len(json.loads(metadata["0.mlxchat_tokens"]))
    assert held >= first.prompt_tokens
    lengths = {array.shape[2] for name, array in arrays.items() if array.ndim == 4}
    assert lengths == {held}, f"saved {lengths} tokens a layer for a cache of {held}"
    resumed, _ = turn(event_log, tiny_model, folder, follow_up(HISTORY, finished))
    assert resumed.cached_tokens >= first.prompt_tokens


def test_a_quantized_cache_is_saved_at_its_used_length_too(event_log, tiny_model, folder):
    import mlx.core as mx

    turn(event_log, tiny_model, folder, HISTORY, kv_bits=8)
    arrays, metadata = mx.load(str(folder.file_for("chat-1")), return_metadata=True)
    held = len(json.loads(metadata["0.mlxchat_tokens"]))
    assert {array.shape[2] for array in arrays.values() if array.ndim == 4} == {held}
    started, _ = turn(event_log, tiny_model, folder, HISTORY, kv_bits=8)
    assert started.cached_tokens > 0


def test_a_hint_before_any_model_is_loaded_reads_nothing_and_refuses_no_one(event_log, tiny_model, folder):
    from mlxchat.engine import ConversationPrepared, PrepareConversation

    turn(event_log, tiny_model, folder, HISTORY)
    engine = Engine(event_log, saved_caches=folder).start()
    try:
        hint = PrepareConversation("chat-1")
        engine.prepare(hint)
        assert event_log.wait_for(ConversationPrepared, hint.request_id).cached_tokens == 0
        load = LoadModel(str(tiny_model))
        assert engine.submit(load) is None
        assert event_log.finished(load.request_id).reason == "stop"
    finally:
        engine.close(timeout_s=30)
