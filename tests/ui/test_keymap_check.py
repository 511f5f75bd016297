"""A `[keymap]` entry whose keys are not keys (`quit = "nonsense+++key"`) is rejected with a message naming it,
and the action keeps its default keys (the quit key used to be lost)."""

from __future__ import annotations

import pytest

from mlxchat.ui.keys import checked_keymap, key_problem


@pytest.mark.parametrize("key", ["ctrl+q", "f5", "ctrl+shift+up", "escape", "pageup", "question_mark", "plus", "a", "alt+enter"])
def test_real_keys_pass(key):
    assert key_problem(key) is None


@pytest.mark.parametrize(
    "key, why",
    [
        ("nonsense+++key", "'nonsense' is not a modifier"),
        ("ctrl+", "'' is not a key name"),
        ("ctrl+foo", "'foo' is not a key name"),
        ("++", "a '+' with no key beside it"),
    ],
)
def test_non_keys_are_named(key, why):
    assert why in key_problem(key)


def test_a_bad_entry_is_left_out_whole_and_named_with_the_default_it_keeps():
    kept, problems = checked_keymap({"quit": "nonsense+++key", "help": "f1,ctrl+h", "new_conversation": "ctrl+n,bogus"})
    assert kept == {"help": "f1,ctrl+h"}
    assert problems == [
        "config.toml: keymap.quit = 'nonsense+++key' ignored: 'nonsense' is not a modifier (ctrl, shift, alt, meta, "
        "super); quit keeps ctrl+q.",
        "config.toml: keymap.new_conversation = 'ctrl+n,bogus' ignored: 'bogus' is not a key name (examples: ctrl+n, "
        "f5, escape, pageup, question_mark); new_conversation keeps ctrl+n.",
    ]


async def test_the_app_keeps_the_quit_key_when_the_keymap_names_a_non_key(staged_app):
    from conftest import SIZE, staged_loaded

    app, engine = staged_app(keymap={"quit": "nonsense+++key"})
    async with app.run_test(size=SIZE) as pilot:
        await staged_loaded(pilot, engine)
        shown = list(app._startup_notices)  # what the app notifies once it is up
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.return_code is not None or not app.is_running, "ctrl+q still quits"
    assert any("keymap.quit = 'nonsense+++key' ignored" in message for message in shown), shown
