"""Settings: flag > config.toml > built-in default, field by field; a bad file names the line and changes nothing."""

from __future__ import annotations

import json

import pytest

from mlxchat.settings import AppConfig, ChatSettings, config_path, load_config

from conftest import TRACEBACK_MARKERS

GOOD_CONFIG = """\
theme = "textual-light"

[chat]
system_prompt = "Answer in French."
temperature = 0
max_tokens = 3
seed = 11

[keymap]
send = "ctrl+j"
new_conversation = ["ctrl+n", "f2"]
"""


def test_no_file_means_the_defaults(own_config_dir):
    config = load_config()
    assert config == AppConfig()
    assert config.chat == ChatSettings()
    assert config_path() == own_config_dir / "config.toml"
    assert not own_config_dir.exists(), "reading the config must not create its folder"


def test_the_file_overrides_the_defaults_field_by_field(write_config):
    path = write_config(GOOD_CONFIG)
    config = load_config()
    assert config.problems == ()
    assert config.path == path
    assert config.theme == "textual-light"
    assert config.chat == ChatSettings(system_prompt="Answer in French.", temperature=0.0, max_tokens=3, seed=11)
    assert config.chat.top_p == ChatSettings().top_p  # not in the file: the default
    assert dict(config.keymap) == {"send": "ctrl+j", "new_conversation": "ctrl+n,f2"}


def test_flags_override_the_file_and_absent_flags_do_not(write_config):
    write_config(GOOD_CONFIG)
    settings = load_config().chat.merged(max_tokens=50, temperature=None, seed=None, model="some-model")
    assert settings.max_tokens == 50  # flag
    assert settings.model == "some-model"  # flag over the default
    assert settings.temperature == 0.0 and settings.seed == 11  # config
    assert settings.top_p is None  # not set: the model's own value, else mlxchat's default
    with pytest.raises(TypeError):
        ChatSettings().merged(temprature=1.0)


def test_a_malformed_file_names_its_line_and_column_and_the_defaults_stand(write_config):
    path = write_config('theme = "textual-light"\n\n[chat]\ntemperature = = 0.5\n')
    config = load_config()
    assert config.chat == ChatSettings() and config.theme is None
    (problem,) = config.problems
    assert str(path) in problem
    assert "line 4, column 15" in problem
    assert "defaults" in problem


def test_an_unterminated_string_at_the_end_still_names_a_line(write_config):
    write_config('[chat]\nsystem_prompt = "unfinished\n')
    (problem,) = load_config().problems
    assert "line 2" in problem


def test_wrong_values_are_named_and_skipped_one_by_one(write_config):
    write_config('[chat]\ntemperature = "hot"\ntop_p = 2.0\nmax_tokens = 64\nshiny = true\n[keymap]\nsend = 3\n')
    config = load_config()
    assert config.chat == ChatSettings(max_tokens=64)
    text = "\n".join(config.problems)
    for needle in ("chat.temperature", "chat.top_p", "chat.shiny", "keymap.send"):
        assert needle in text
    assert len(config.problems) == 4


def test_settings_round_trip_through_a_dict_and_ignore_what_does_not_fit():
    settings = ChatSettings(system_prompt="s", temperature=0.3, top_p=0.5, max_tokens=9, seed=2, model="m")
    assert ChatSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    assert ChatSettings.from_dict({"temperature": "x", "future_field": 1, "seed": 5}) == ChatSettings(seed=5)
    with pytest.raises(ValueError):
        ChatSettings(temperature=-1)


def test_every_setting_is_documented():
    import ast
    import inspect

    import mlxchat.settings as module

    tree = ast.parse(inspect.getsource(module))
    for class_name in ("ChatSettings", "AppConfig"):
        body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name).body
        for node, following in zip(body, body[1:] + [None]):
            if isinstance(node, ast.AnnAssign):
                documented = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                assert documented, f"{class_name}.{node.target.id} has no docstring"


def test_ask_uses_flag_over_config_over_default(run_mlxchat, write_config, tiny_model):
    """End to end: max_tokens from the flag, else from config.toml; temperature 0 from config makes it greedy."""
    write_config(f'[chat]\nmax_tokens = 3\ntemperature = 0\nmodel = "{tiny_model}"\n')
    from_config = json.loads(run_mlxchat("ask", "Hello", "--json").stdout)
    from_flag = json.loads(run_mlxchat("ask", "Hello", "--json", "--max-tokens", "5").stdout)
    assert from_config["usage"]["generation_tokens"] == 3
    assert from_flag["usage"]["generation_tokens"] == 5
    assert from_flag["text"].startswith(from_config["text"])  # greedy from the config: same start
    assert from_config["model"]["name"] == tiny_model.name


def test_ask_with_a_malformed_config_warns_with_the_line_and_answers(run_mlxchat, write_config, tiny_model):
    write_config("[chat\nmax_tokens = 3\n")
    result = run_mlxchat("ask", "Hello", "--model", str(tiny_model), "--max-tokens", "4", "--temp", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    (warning,) = result.stderr.strip().splitlines()
    assert warning.startswith("mlxchat: warning: ") and "line 1" in warning
    assert not any(marker in result.stderr for marker in TRACEBACK_MARKERS)


def test_the_engine_runs_in_its_own_process_unless_the_file_says_thread(write_config):
    """`engine = "thread"` is the way back to an engine in the app's process (a system that refuses child
    processes); anything else is named and the default stands. The chat screen's factory follows it: a
    `ProcessEngine` by default, the local `Engine` itself for "thread" (made here, never started)."""
    from mlxchat.engine import Engine
    from mlxchat.engine.process import ProcessEngine
    from mlxchat.ui.app import local_engine_factory

    assert load_config().engine == "process"
    assert isinstance(local_engine_factory(load_config())(lambda event: None), ProcessEngine)
    write_config('engine = "thread"\n')
    assert load_config().engine == "thread"
    assert type(local_engine_factory(load_config())(lambda event: None)) is Engine
    write_config('engine = "gpu"\n')
    config = load_config()
    assert config.engine == "process"
    (problem,) = config.problems
    assert "engine = 'gpu' ignored" in problem and '"thread"' in problem
