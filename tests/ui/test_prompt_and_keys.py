"""The prompt, keys, help, command palette and themes, on the staged engine (no model needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from textual.command import CommandPalette

from mlxchat.ui.keys import ACTIONS
from mlxchat.ui.screens.help import HelpScreen
from mlxchat.ui.themes import load_theme_file, source_theme_folder

from conftest import SIZE, staged_loaded, until


async def test_enter_sends_and_the_newline_keys_insert_line_breaks(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged_loaded(pilot, engine)
        await pilot.press(*"one", "ctrl+j", *"two", "shift+enter", *"three", "enter")
        await until(pilot, lambda: len(app.chat.session.turns) == 2, what="the send")
        assert engine.submitted[-1].messages[-1].content == "one\ntwo\nthree"


async def test_up_and_down_recall_earlier_prompts(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged_loaded(pilot, engine)
        for text in ("first", "second"):
            await pilot.press(*text, "enter")
            await until(pilot, lambda: app.chat.busy, what="the send")
            engine.finish("stop")
            await until(pilot, lambda: not app.chat.busy, what="the finish")
        await pilot.press(*"draft", "up")
        assert app.chat.prompt.text == "second"
        await pilot.press("up")
        assert app.chat.prompt.text == "first"
        await pilot.press("down", "down")
        assert app.chat.prompt.text == "draft"


async def test_a_keymap_remaps_bindings_by_id(staged_app):
    app, engine = staged_app(keymap={"send": "ctrl+s", "retry_answer": "f9"})
    async with app.run_test(size=SIZE) as pilot:
        await staged_loaded(pilot, engine)
        await pilot.press(*"a", "enter", *"b", "ctrl+s")
        await until(pilot, lambda: len(app.chat.session.turns) == 2, what="the send")
        assert engine.submitted[-1].messages[-1].content == "a\nb", "Enter, unbound, inserts a line break"


def test_every_action_has_a_unique_binding_id():
    ids = [spec.id for spec in ACTIONS]
    assert len(ids) == len(set(ids))
    assert all(spec.keys and spec.title and spec.help for spec in ACTIONS)


async def test_f1_lists_every_action_with_its_keys(staged_app):
    app, _ = staged_app(keymap={"retry_answer": "f9"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help-table").content
        titles = [cell for cell in table.columns[1]._cells]
        for spec in ACTIONS:
            assert spec.title in titles
        assert "f9" in table.columns[0]._cells
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_every_action_is_in_the_command_palette(staged_app):
    app, _ = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for spec in ACTIONS:
            if spec.id not in ("command_palette", "history"):
                assert spec.title in titles
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)


async def test_help_from_the_palette_runs_the_action(staged_app):
    app, _ = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Help")
        await command.callback()
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


THEME_FILES = sorted(source_theme_folder().glob("*.toml"))


def test_there_are_at_least_three_theme_files():
    assert len(THEME_FILES) >= 3


@pytest.mark.parametrize("path", THEME_FILES, ids=[p.stem for p in THEME_FILES])
def test_each_theme_file_loads(path: Path):
    theme = load_theme_file(path)
    assert theme.name.startswith("mlxchat-")
    theme.to_color_system()


def test_a_broken_theme_file_is_a_readable_problem(tmp_path):
    from mlxchat.ui.themes import load_theme_folders

    (tmp_path / "bad.toml").write_text('name = "bad"\nprimary = "not a colour"\n')
    (tmp_path / "worse.toml").write_text("primary = \n")
    result = load_theme_folders(tmp_path)
    assert result.themes == ()
    assert len(result.problems) == 2 and all(str(tmp_path) in p for p in result.problems)


async def test_a_chosen_theme_is_reported_for_remembering(staged_app):
    chosen = []
    app, _ = staged_app(on_theme_change=chosen.append, theme="mlxchat-paper")
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "mlxchat-paper"
        app.theme = "mlxchat-ember"
        await pilot.pause()
    assert chosen == ["mlxchat-ember"]


async def test_the_starting_theme_is_in_place_without_a_second_css_parse(staged_app, monkeypatch):
    """The app is built in its theme (colours, light mode), so Textual never refreshes the CSS to change it: setting
    `theme` after `App.__init__` parsed all the CSS again at every start (~40 ms)."""
    from textual.app import App

    refreshes = []
    original = App.refresh_css
    monkeypatch.setattr(App, "refresh_css", lambda app, *a, **k: (refreshes.append(1), original(app, *a, **k)))
    app, _ = staged_app(theme="mlxchat-paper")
    assert app.theme_variables["background"].upper() == app.get_theme("mlxchat-paper").background.upper()
    assert "-light-mode" in app.classes
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "mlxchat-paper" and refreshes == []


def test_run_tui_remembers_the_theme_in_the_data_folder(isolated_user_dirs):
    from mlxchat.ui.app import remember_theme, remembered_theme

    assert remembered_theme() is None
    remember_theme("mlxchat-phosphor")
    assert remembered_theme() == "mlxchat-phosphor"


def test_the_ui_never_imports_mlx():
    """Building the app (and importing every UI module) leaves MLX, mlx-lm and mlx-vlm unimported."""
    code = (
        "import sys, pkgutil, importlib, mlxchat.ui as ui\n"
        "for m in pkgutil.walk_packages(ui.__path__, 'mlxchat.ui.'): importlib.import_module(m.name)\n"
        "from mlxchat.ui.app import make_app\n"
        "make_app()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm', 'mlx_vlm'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_no_screen_or_app_key_is_swallowed_by_the_prompt(staged_app):
    """While typing, every conversation and app key still reaches its action (not a TextArea binding)."""
    app, _ = staged_app()
    async with app.run_test(size=SIZE):
        active = app.screen.active_bindings
        for spec in ACTIONS:
            if spec.scope == "prompt" or spec.id == "cancel_generation":  # Ctrl+C copies while idle, by design
                continue
            for key in spec.keys.split(","):
                assert active[key].binding.action == spec.action, f"{key} runs {active[key].binding.action}"
