"""The app's switch-interval policy: while the app and its engine's owner thread run, a thread waiting for the GIL
waits a short interval; when the app ends, the process gets the interval it had back (a process that runs many apps,
such as this test suite, must not keep another app's setting)."""

from __future__ import annotations

import sys

import pytest

from mlxchat.ui.switching import SwitchIntervalPolicy

from conftest import loaded


async def test_the_app_shortens_the_switch_interval_while_it_runs_and_restores_it_at_the_end(real_app):
    before = sys.getswitchinterval()
    app = real_app()
    async with app.run_test() as pilot:
        await loaded(pilot)
        assert sys.getswitchinterval() == pytest.approx(SwitchIntervalPolicy.interval_s)
        assert SwitchIntervalPolicy.interval_s < before
    assert sys.getswitchinterval() == before


def test_the_interval_is_the_one_asked_for():
    before = sys.getswitchinterval()
    policy = SwitchIntervalPolicy()
    SwitchIntervalPolicy.interval_s, default = 0.0002, SwitchIntervalPolicy.interval_s
    try:
        policy.start()
        assert sys.getswitchinterval() == pytest.approx(0.0002)
        policy.start()  # a second start keeps the interval first found, to restore it
        policy.stop()
        assert sys.getswitchinterval() == before
    finally:
        SwitchIntervalPolicy.interval_s = default
        policy.stop()


def test_the_policy_does_nothing_when_turned_off():
    before = sys.getswitchinterval()
    policy = SwitchIntervalPolicy()
    SwitchIntervalPolicy.enabled = False
    try:
        policy.start()
        assert sys.getswitchinterval() == before
        policy.stop()
        assert sys.getswitchinterval() == before
    finally:
        SwitchIntervalPolicy.enabled = True


async def test_the_policies_are_given_back_even_when_closing_fails(staged_app, monkeypatch):
    """The history's close raises as the app ends: the engine is still closed, and the switch interval and the
    collector's thresholds are the process's own again."""
    import gc

    from conftest import SIZE

    before = sys.getswitchinterval(), gc.get_threshold()
    app, engine = staged_app()

    def failing_close() -> None:
        raise OSError("disk gone")

    closed: list[bool] = []
    engine_close = engine.close
    monkeypatch.setattr(engine, "close", lambda *args, **kwargs: closed.append(True) or engine_close(*args, **kwargs))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert sys.getswitchinterval() == pytest.approx(SwitchIntervalPolicy.interval_s)
            monkeypatch.setattr(app.chat.store, "close", failing_close)
    except OSError:
        pass  # how Textual reports a handler's exception is its own affair; the policies are what is tested
    assert closed, "the engine was closed"
    assert (sys.getswitchinterval(), gc.get_threshold()) == before
