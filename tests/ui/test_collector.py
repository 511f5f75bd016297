"""The app's garbage-collector policy: while it runs, what start-up and the model load made is frozen out of
collection and collections are rarer; when it ends, the process gets Python's collector back as it was (a process
that runs many apps, such as this test suite, must not keep their objects out of collection)."""

from __future__ import annotations

import gc
import weakref

from mlxchat.ui.collector import CollectorPolicy

from conftest import loaded


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
