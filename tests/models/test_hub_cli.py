"""`mlxchat pull`, `--model org/name`, `models --remote` and `rm`, as real subprocesses against the loopback Hub."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hub_server import FakeRepo, HubServer
from test_hub import tiny_repo_files

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def hub_server():
    server = HubServer().start()
    yield server
    server.stop()


@pytest.fixture
def mlxchat(hub_server, tmp_path):
    """Run `mlxchat ARGS…` with HF_ENDPOINT at the loopback Hub and the session's offline switch lifted."""

    def run(*args: str, env: dict | None = None, stdin: str | None = None):
        environment = {**os.environ, "HF_ENDPOINT": hub_server.endpoint, "COLUMNS": "120"}
        environment.pop("HF_HUB_OFFLINE", None)
        environment.pop("HF_TOKEN", None)
        environment["HF_TOKEN_PATH"] = str(tmp_path / "no-token")
        environment.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "mlxchat", *args],
            capture_output=True,
            text=True,
            timeout=100,
            env=environment,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )

    return run


def test_pull_downloads_and_says_how_to_chat(mlxchat, hub_server, tiny_model):
    hub_server.repos["org/tiny"] = FakeRepo(tiny_repo_files(tiny_model))

    result = mlxchat("pull", "org/tiny")

    assert result.returncode == 0, result.stderr
    assert "Downloading org/tiny: 4 files" in result.stderr
    assert "Downloaded org/tiny (text, f32" in result.stdout and "mlxchat --model org/tiny" in result.stdout
    listed = mlxchat("models", "--json")
    assert "org/tiny" in listed.stdout


def test_pull_of_a_missing_repo_is_one_line_and_exit_2(mlxchat):
    result = mlxchat("pull", "org/missing")
    assert result.returncode == 2
    assert result.stderr.startswith("mlxchat: error: No model org/missing on http://127.0.0.1")
    assert len(result.stderr.strip().splitlines()) == 1


def test_pull_without_a_network_fails_with_exit_1(mlxchat):
    result = mlxchat("pull", "org/tiny", env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert result.returncode == 1
    assert "Cannot reach http://127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr


def test_pull_refuses_what_is_not_a_repo_id(mlxchat):
    result = mlxchat("pull", "not-a-repo")
    assert result.returncode == 2 and "expected org/name" in result.stderr


def test_ask_with_a_model_that_is_not_local_downloads_it_first(mlxchat, hub_server, tiny_model):
    hub_server.repos["org/tiny"] = FakeRepo(tiny_repo_files(tiny_model))

    result = mlxchat("ask", "Hello", "--model", "org/tiny", "--max-tokens", "3", "--temp", "0")

    assert result.returncode == 0, result.stderr
    assert "org/tiny is not in the local cache; downloading it first" in result.stderr
    assert result.stdout.strip()


def test_models_remote_lists_files_and_size_without_downloading(mlxchat, hub_server, tiny_model):
    hub_server.repos["org/tiny"] = FakeRepo(tiny_repo_files(tiny_model) | {"README.md": b"# tiny"})

    result = mlxchat("models", "--remote", "org/tiny")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("org/tiny @ ") and "a pull downloads 4 files" in result.stdout
    assert "* " in result.stdout and "README.md" in result.stdout
    assert not [r for r in hub_server.requests if "/resolve/" in r.path]


def test_models_remote_of_a_gguf_repo_lists_the_gguf_files(mlxchat, hub_server):
    hub_server.repos["org/gguf"] = FakeRepo({"model-Q4_0.gguf": b"g" * 1500})
    result = mlxchat("models", "--remote", "org/gguf")
    assert result.returncode == 2 and "model-Q4_0.gguf (1.5 KB)" in result.stderr and "mlxchat import" in result.stderr


def test_rm_deletes_a_pulled_model_and_leaves_one_mlxchat_did_not_download_unless_forced(mlxchat, hub_server, tiny_model):
    hub_server.repos["org/tiny"] = FakeRepo(tiny_repo_files(tiny_model))
    assert mlxchat("pull", "org/tiny").returncode == 0

    unconfirmed = mlxchat("rm", "org/tiny")
    assert unconfirmed.returncode == 2 and "add --yes" in unconfirmed.stderr
    assert "org/tiny" in mlxchat("models", "--json").stdout

    removed = mlxchat("rm", "org/tiny", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith("Deleted org/tiny (downloaded by mlxchat")
    assert "org/tiny" not in mlxchat("models", "--json").stdout


def test_rm_refuses_a_cache_repo_another_tool_downloaded_unless_forced(mlxchat, tiny_model):
    from mlxchat.models.discovery import hf_hub_cache_dir

    snapshot = hf_hub_cache_dir() / "models--other--tool" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    for name, data in tiny_repo_files(tiny_model).items():
        (snapshot / name).write_bytes(data)

    refused = mlxchat("rm", "other/tool", "--yes")
    assert refused.returncode == 2 and "mlxchat did not download it" in refused.stderr and "--force" in refused.stderr
    assert snapshot.is_dir()

    forced = mlxchat("rm", "other/tool", "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert not snapshot.exists()


def test_rm_never_deletes_a_folder_named_by_path(mlxchat, tiny_model):
    result = mlxchat("rm", str(tiny_model), "--yes", "--force")
    assert result.returncode == 2 and "does not delete it" in result.stderr
    assert (tiny_model / "config.json").is_file()


def test_ctrl_c_stops_a_pull_with_exit_130_and_the_next_pull_resumes_the_file(mlxchat, hub_server, tmp_path):
    import signal
    import time

    from mlxchat.models.discovery import hf_hub_cache_dir
    from test_hub import big_repo_files

    hub_server.repos["org/big"] = FakeRepo(big_repo_files())
    hub_server.chunk_delay_s = 0.05  # about 1.3 MB/s: the weights take a few seconds
    environment = {**os.environ, "HF_ENDPOINT": hub_server.endpoint, "HF_TOKEN_PATH": str(tmp_path / "no-token")}
    environment.pop("HF_HUB_OFFLINE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "mlxchat", "pull", "org/big"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )
    blobs = hf_hub_cache_dir() / "models--org--big" / "blobs"

    def partial_bytes() -> int:
        return max((p.stat().st_size for p in blobs.glob("*.mlxchat-partial")), default=0)

    deadline = time.monotonic() + 60
    while partial_bytes() <= 200_000:
        assert time.monotonic() < deadline and process.poll() is None, "the download never got going"
        time.sleep(0.05)  # polling a file another process writes; bounded by the deadline
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted; run `mlxchat pull org/big` again to resume" in stderr and "Traceback" not in stderr

    hub_server.chunk_delay_s = 0.0
    resumed = mlxchat("pull", "org/big")
    assert resumed.returncode == 0, resumed.stderr
    last_get = hub_server.gets_of("model.safetensors")[-1]
    assert last_get.range is not None and int(last_get.range.removeprefix("bytes=").split("-")[0]) > 200_000
    snapshot = next((hf_hub_cache_dir() / "models--org--big" / "snapshots").iterdir())
    assert (snapshot / "model.safetensors").read_bytes() == big_repo_files()["model.safetensors"]
    assert "is up to date" in mlxchat("pull", "org/big").stderr


def test_rm_deletes_an_imported_model_and_refuses_the_demo(mlxchat, tiny_model):
    import shutil

    from mlxchat.models.store import data_models_dir

    shutil.copytree(tiny_model, data_models_dir() / "my-model")
    removed = mlxchat("rm", "my-model", "--yes")
    assert removed.returncode == 0 and removed.stdout.startswith("Deleted my-model (imported")
    assert not (data_models_dir() / "my-model").exists()

    demo = mlxchat("rm", "demo", "--yes")
    assert demo.returncode == 2 and "uninstall that package" in demo.stderr
