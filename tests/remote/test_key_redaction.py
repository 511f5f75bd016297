"""Secrets never come back to the user: a short API key, a `user:password@` in the endpoint URL (also as the
base64 `Basic` header a server may quote), and a warning when a secret would cross a network unencrypted."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from remote_fakes import error_response
from remote_turns import ask, select

from mlxchat.engine.remote.request import Endpoint, plain_http_key_warning, redact


def test_a_short_api_key_quoted_back_by_the_server_is_redacted(fake_server, remote_engines, event_log, monkeypatch):
    monkeypatch.setenv("MLXCHAT_TEST_SHORT_KEY", "ab")
    engine = remote_engines(fake_server.url, api_key_env="MLXCHAT_TEST_SHORT_KEY")
    assert select(engine, event_log, "model-b").reason == "stop"
    fake_server.chat = error_response(401, {"error": {"message": "Incorrect API key provided: ab. Bearer ab"}})
    failed = ask(engine, event_log, "Hi")
    assert "provided: [redacted]. Bearer [redacted]" in failed.error, failed.error
    assert "ab." not in failed.error and " ab" not in failed.error


def test_a_password_in_the_endpoint_url_never_comes_back_plain_or_as_basic_base64(fake_server, remote_engines, event_log):
    with_password = fake_server.url.replace("http://", "http://alice:s%40fe1@")
    basic = base64.b64encode(b"alice:s@fe1").decode()
    engine = remote_engines(with_password)
    assert select(engine, event_log, "model-b").reason == "stop"
    assert fake_server.seen[-1].headers["Authorization"] == f"Basic {basic}"
    said = f"bad Authorization: Basic {basic} (user alice, password s@fe1 / s%40fe1)"
    fake_server.chat = error_response(401, {"error": {"message": said}})
    failed = ask(engine, event_log, "Hi")
    assert basic not in failed.error and "s@fe1" not in failed.error and "s%40fe1" not in failed.error, failed.error
    assert f"Basic [redacted] (user alice, password [redacted] / [redacted])" in failed.error


def test_one_letter_secrets_do_not_blank_every_letter():
    assert redact("a key a is bad at all", ["a"]) == "[redacted] key [redacted] is bad at all"


@pytest.mark.parametrize(
    "endpoint, key_env, warned",
    [
        ("http://gpu-box:8000/v1", "KEY", True),
        ("http://10.0.0.5:8000", "KEY", True),
        ("http://user:pw@gpu-box:8000", None, True),
        ("http://gpu-box:8000/v1", None, False),
        ("https://gpu-box/v1", "KEY", False),
        ("http://127.0.0.1:8000", "KEY", False),
        ("http://localhost:8000", "KEY", False),
        ("http://[::1]:8000", "KEY", False),
    ],
)
def test_a_secret_over_plain_http_to_another_machine_is_warned_about(endpoint, key_env, warned):
    warning = plain_http_key_warning(endpoint, key_env)
    assert bool(warning) == warned, warning
    if warned:
        assert Endpoint.parse(endpoint).display in warning and "unencrypted" in warning and "https://" in warning


def test_ask_warns_once_on_stderr_when_the_key_goes_over_plain_http(tmp_path):
    unreachable = "http://192.0.2.1:9/v1"  # TEST-NET-1; the missing image stops ask before anything is sent
    command = ["ask", "Hi", "--endpoint", unreachable, "--api-key-env", "K", "--image", str(tmp_path / "no.png")]
    result = subprocess.run(
        [sys.executable, "-m", "mlxchat", *command],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "K": "secret", "MLXCHAT_CONFIG_DIR": str(tmp_path)},
    )
    warnings = [line for line in result.stderr.splitlines() if line.startswith("mlxchat: warning:")]
    assert len(warnings) == 1 and "192.0.2.1:9" in warnings[0] and "unencrypted" in warnings[0], result.stderr
