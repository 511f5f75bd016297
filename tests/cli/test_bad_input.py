"""Bad input never shows a traceback: one line on stderr, exit code 2."""

from __future__ import annotations

from conftest import TRACEBACK_MARKERS, assert_one_line_error


def test_missing_image(run_mlxchat, tiny_model, tmp_path):
    missing = tmp_path / "nowhere.png"
    result = run_mlxchat("ask", "What is this?", "--image", str(missing), "--model", str(tiny_model))
    assert_one_line_error(result, "image not found", str(missing))
    assert result.stdout == ""


def test_unknown_model(run_mlxchat):
    result = run_mlxchat("ask", "Hello", "--model", "no-such-model-anywhere")
    assert_one_line_error(result, "no-such-model-anywhere")


def test_a_folder_that_is_not_a_model(run_mlxchat, tmp_path):
    result = run_mlxchat("ask", "Hello", "--model", str(tmp_path))
    assert_one_line_error(result, "config.json")


def test_a_model_that_fails_to_load(run_mlxchat, tiny_model, tmp_path):
    """Checks pass (config and weight files are there) but the weights are damaged: found while loading."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for item in tiny_model.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    weights = next(broken.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = run_mlxchat("ask", "Hello", "--model", str(broken))
    assert_one_line_error(result)


def test_an_image_for_a_text_only_model(run_mlxchat, tiny_model, red_square):
    result = run_mlxchat("ask", "What is this?", "--image", str(red_square), "--model", str(tiny_model))
    assert_one_line_error(result, "text-only")


def test_an_empty_prompt(run_mlxchat):
    assert_one_line_error(run_mlxchat("ask", "   "), "prompt is empty")
    assert_one_line_error(run_mlxchat("ask", "-", stdin=""), "prompt is empty")


def test_usage_errors_exit_2_without_a_traceback(run_mlxchat):
    for args in (("ask",), ("ask", "x", "--temp", "-1"), ("ask", "x", "--max-tokens", "0"), ("no-such-command",)):
        result = run_mlxchat(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert not any(marker in result.stderr for marker in TRACEBACK_MARKERS), result.stderr
