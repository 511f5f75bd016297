"""The command line's remote options (`--endpoint`, `--api-key-env`, and the same in config.toml), and the remote
backend's import hygiene."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
from remote_fakes import error_response, free_port, stream

from mlxchat import cli


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    folder.mkdir()
    monkeypatch.setenv("MLXCHAT_CONFIG_DIR", str(folder))
    return folder


def run_ask(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlxchat", "ask", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlxchat: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_ask_streams_from_the_endpoint_named_in_config_toml_and_the_flag_wins(fake_server, config_dir):
    (config_dir / "config.toml").write_text(f'endpoint = "{fake_server.url}"\n[chat]\nmodel = "model-b"\n')
    fake_server.chat = stream("Hello", " world")
    result = run_ask("Hi", "--temp", "0")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Hello world\n", "")
    assert fake_server.chats[-1].body["model"] == "/srv/models/model-b"

    refused = f"http://127.0.0.1:{free_port()}/v1"
    result = run_ask("Hi", "--endpoint", refused)
    assert result.returncode == 2
    assert one_error_line(result) == f"mlxchat: error: Cannot connect to {refused} (connection refused). Is the server running?"


def test_ask_reports_a_busy_server_with_its_message_and_exits_1(fake_server, config_dir):
    fake_server.chat = error_response(503, {"error": {"message": "queue is full", "code": "text_generation_busy"}})
    result = run_ask("Hi", "--endpoint", fake_server.url)
    assert result.returncode == 1
    assert "Server busy" in one_error_line(result) and "“queue is full”" in result.stderr


def test_ask_sends_the_key_from_the_named_variable(fake_server, config_dir):
    result = run_ask("Hi", "--endpoint", fake_server.url, "--api-key-env", "MY_KEY", env={"MY_KEY": "k-123"})
    assert result.returncode == 0, result.stderr
    assert {r.headers["Authorization"] for r in fake_server.seen} == {"Bearer k-123"}


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--endpoint", "ftp://example.com"), "only http:// and https://"),
        (("--endpoint", "http://127.0.0.1:1/v1", "--api-key-env", "MLXCHAT_TEST_UNSET"), "MLXCHAT_TEST_UNSET"),
        (("--endpoint", "http://127.0.0.1:1/v1", "--api-key-env", "sk-abc123"), "not the key itself"),
        (("--api-key-env", "MY_KEY"), "--api-key-env needs --endpoint"),
    ],
)
def test_bad_remote_options_are_one_line_errors_before_anything_runs(args, needle, config_dir):
    result = run_ask("Hi", *args)
    assert result.returncode == 2
    line = one_error_line(result)
    assert needle in line and "sk-abc123" not in line


def test_the_chat_screen_gets_the_remote_flags_when_it_takes_them(monkeypatch, config_dir):
    calls = []
    module = types.ModuleType("mlxchat.ui.app")
    module.run_tui = lambda model=None, theme=None, resume=False, endpoint=None, api_key_env=None: calls.append(
        (model, endpoint, api_key_env)
    ) or 0
    monkeypatch.setitem(sys.modules, "mlxchat.ui.app", module)
    monkeypatch.setenv("MY_KEY", "k")
    assert cli.run(["--endpoint", "gpu-box:8000", "--api-key-env", "MY_KEY", "--model", "m"]) == 0
    assert cli.run([]) == 0
    assert calls == [("m", "gpu-box:8000", "MY_KEY"), (None, None, None)]


def test_a_chat_screen_without_remote_support_says_so(monkeypatch, config_dir, capsys):
    module = types.ModuleType("mlxchat.ui.app")
    module.run_tui = lambda model=None, theme=None, resume=False: 0
    monkeypatch.setitem(sys.modules, "mlxchat.ui.app", module)
    assert cli.run(["--endpoint", "gpu-box:8000"]) == 1
    assert "cannot use a remote endpoint yet" in capsys.readouterr().err


def test_the_remote_backend_never_imports_mlx_or_textual():
    modules = ["mlxchat.engine.remote", "mlxchat.engine.remote.sse", "mlxchat.engine.remote.stream"]
    modules += ["mlxchat.engine.remote.request", "mlxchat.engine.streaming", "mlxchat.ask"]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('\\n'.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    roots = {name.split(".")[0] for name in loaded.stdout.split()}
    assert not roots & {"mlx", "mlx_lm", "mlx_vlm", "textual"}


def test_a_key_variable_in_config_toml_without_an_endpoint_changes_nothing(config_dir, monkeypatch, capsys):
    (config_dir / "config.toml").write_text('api_key_env = "MY_KEY"\n')
    assert cli.run(["ask", "Hi", "--model", "/no/such/model"]) == 2  # the local route, checked as always
    assert "api-key-env" not in capsys.readouterr().err
    calls = []
    module = types.ModuleType("mlxchat.ui.app")
    module.run_tui = lambda model=None, theme=None, resume=False: calls.append(model) or 0
    monkeypatch.setitem(sys.modules, "mlxchat.ui.app", module)
    assert cli.run([]) == 0 and calls == [None]


def test_config_toml_takes_an_endpoint_and_a_key_variable_and_explains_bad_ones(tmp_path):
    from mlxchat.settings import load_config

    good = tmp_path / "good.toml"
    good.write_text('endpoint = "gpu-box:8000"\napi_key_env = "GPU_BOX_KEY"\n')
    config = load_config(good)
    assert (config.endpoint, config.api_key_env, config.problems) == ("gpu-box:8000", "GPU_BOX_KEY", ())
    bad = tmp_path / "bad.toml"
    bad.write_text('endpoint = "ftp://gpu-box"\napi_key_env = "sk-live-123456"\n')
    config = load_config(bad)
    assert (config.endpoint, config.api_key_env) == (None, None)
    endpoint_problem, key_problem = config.problems
    assert "only http:// and https://" in endpoint_problem
    assert "not the key itself" in key_problem and "sk-live-123456" not in key_problem
