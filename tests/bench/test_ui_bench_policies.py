"""The UI benchmark's policy knobs: each of the app's process-wide policies can be turned off (to say what it
bought) and the switch interval can be set (to compare values); the numbers record which were in force."""

from __future__ import annotations

import sys

import pytest

from mlxchat.bench.ui_bench import set_app_policies
from mlxchat.ui.collector import CollectorPolicy
from mlxchat.ui.switching import SwitchIntervalPolicy


@pytest.fixture
def policies():
    saved = CollectorPolicy.enabled, SwitchIntervalPolicy.enabled, SwitchIntervalPolicy.interval_s
    yield
    CollectorPolicy.enabled, SwitchIntervalPolicy.enabled, SwitchIntervalPolicy.interval_s = saved


def test_the_switch_interval_knob_turns_the_policy_off(policies):
    recorded = set_app_policies(default_collector=False, default_switch_interval=True, switch_interval_ms=None)
    assert recorded == {"collector_policy": True, "switch_interval_ms": None}
    before = sys.getswitchinterval()
    policy = SwitchIntervalPolicy()
    policy.start()
    assert sys.getswitchinterval() == before
    policy.stop()


def test_the_switch_interval_option_sets_the_apps_interval(policies):
    recorded = set_app_policies(default_collector=True, default_switch_interval=False, switch_interval_ms=0.2)
    assert recorded == {"collector_policy": False, "switch_interval_ms": pytest.approx(0.2)}
    assert not CollectorPolicy.enabled
    before = sys.getswitchinterval()
    policy = SwitchIntervalPolicy()
    policy.start()
    try:
        assert sys.getswitchinterval() == pytest.approx(0.0002)
    finally:
        policy.stop()
    assert sys.getswitchinterval() == before
