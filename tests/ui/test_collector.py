"""The app's garbage-collector policy: while it runs, what start-up and the model load made is frozen out of
collection and collections are rarer; when it ends, the process gets Python's collector back as it was (a process
that runs many apps, such as this test suite, must not keep their objects out of collection)."""

from __future__ import annotations

import gc
import weakref

from mlxchat.ui.collector import CollectorPolicy

from conftest import idle, loaded


async def test_the_app_freezes_start_up_and_the_model_and_gives_the_collector_back_at_the_end(real_app):
    before_thresholds, before_frozen = gc.get_threshold(), gc.get_freeze_count()
    app = real_app()
    async with app.run_test() as pilot:
        await loaded(pilot)
        assert gc.get_threshold() == CollectorPolicy.THRESHOLDS
        frozen_at_load = gc.get_freeze_count()
        assert frozen_at_load > before_frozen + 10_000, "Textual's objects and the model's are frozen"
        model_objects = [o for o in gc.get_objects() if type(o).__module__.startswith("mlx_lm.models")]
        assert not model_objects, "the loaded model's modules are out of every collection's walk"
    assert gc.get_threshold() == before_thresholds
    assert gc.get_freeze_count() == 0


def test_the_policy_does_nothing_when_turned_off():
    policy = CollectorPolicy()
    CollectorPolicy.enabled = False
    try:
        thresholds = gc.get_threshold()
        policy.start()
        assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0
        policy.settle()
        assert gc.get_freeze_count() == 0
    finally:
        CollectorPolicy.enabled = True


def test_a_model_load_collects_garbage_before_it_freezes():
    """A cycle left behind (as by the model a load replaced) is collected, not frozen for the app's lifetime."""

    class Node:
        pass

    policy = CollectorPolicy()
    policy.start()
    try:
        cycle = Node()
        cycle.self = cycle
        alive = weakref.ref(cycle)
        del cycle
        policy.settle()
        assert alive() is None
    finally:
        policy.stop()


def test_no_full_collection_while_an_answer_streams_and_one_after_it():
    """Full collections took 70–97 ms each on this CPU while an answer streamed, each one a keypress that waited
    (round 9). They wait for the answer's end; the young generations still run."""
    policy = CollectorPolicy()
    policy.start()
    full = []

    def on_gc(phase, info):
        if phase == "start" and info["generation"] == 2:
            full.append(info)

    gc.callbacks.append(on_gc)
    try:
        policy.answering("chat-1")
        assert gc.get_threshold() == CollectorPolicy.ANSWERING_THRESHOLDS
        kept = []
        for i in range(3_000_000):  # allocations net, enough for ~30 full collections at the usual thresholds
            kept.append([i])
        assert not full
        assert not policy.answered("load-1"), "a request that never answered changes nothing"
        assert policy.answered("chat-1")
        assert gc.get_threshold() == CollectorPolicy.THRESHOLDS
        policy.collect_between_answers()
        assert len(full) == 1
        policy.answering("chat-2")
        policy.collect_between_answers()  # the timer fired after the next answer started: it waits again
        assert len(full) == 1
    finally:
        gc.callbacks.remove(on_gc)
        policy.stop()
        del kept


async def test_the_app_holds_full_collections_during_an_answer_and_collects_after_it(real_app):
    from mlxchat.ui.app import COLLECT_AFTER_ANSWER_S

    app = real_app(max_tokens=40)  # an answer that ends soon: the test is about its start and end
    calls = []
    policy = app._collector
    for name in ("answering", "answered", "collect_between_answers"):
        method = getattr(policy, name)
        setattr(policy, name, lambda *args, _m=method, _n=name: calls.append((_n, gc.get_threshold(), args)) or _m(*args))
    async with app.run_test() as pilot:
        await loaded(pilot)
        app.chat.prompt.insert("Tell me a story")
        await pilot.press("enter")
        await idle(pilot)
        calls[:] = [call for call in calls if call[0] != "answered" or call[2][0].startswith("chat")]  # not the load's
        assert [name for name, _, _ in calls] == ["answering", "answered"]
        assert calls[1][1] == CollectorPolicy.ANSWERING_THRESHOLDS, "no full collection while it streamed"
        assert gc.get_threshold() == CollectorPolicy.THRESHOLDS
        await pilot.pause(COLLECT_AFTER_ANSWER_S + 0.5)
        assert [name for name, _, _ in calls] == ["answering", "answered", "collect_between_answers"]
