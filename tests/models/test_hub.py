"""Downloads from the Hub: the real `huggingface_hub` against our loopback server (tests/models/hub_server.py).

Nothing here contacts any address but 127.0.0.1. The session fixtures set HF_HUB_OFFLINE=1; the `hub` fixture
lifts it for its test only (in the environment and in the library's constant, which it reads at import).
"""

from __future__ import annotations

import hashlib
import json
import resource
import signal
import socket
import struct
import threading
from pathlib import Path

import pytest

from hub_server import FakeRepo, HubServer
from mlxchat.models import hub
from mlxchat.models.discovery import hf_hub_cache_dir, list_models, resolve_model

pytestmark = pytest.mark.timeout(60)


def safetensors_bytes(payload_bytes: int) -> bytes:
    """A valid safetensors file holding one uint8 tensor of `payload_bytes` (bytes that differ, so a resume
    stitched at the wrong offset would not match)."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [payload_bytes], "data_offsets": [0, payload_bytes]}})
    header_bytes = header.encode().ljust(len(header) + (-len(header)) % 8)
    payload = (hashlib.sha256(b"seed").digest() * (payload_bytes // 32 + 1))[:payload_bytes]
    payload = bytes((b + i) % 256 for i, b in enumerate(payload[:4096])) + payload[4096:]
    return struct.pack("<Q", len(header_bytes)) + header_bytes + payload


def tiny_repo_files(tiny_model: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in tiny_model.iterdir() if p.is_file()}


def big_repo_files(payload_bytes: int = 3_000_000) -> dict[str, bytes]:
    config = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, "vocab_size": 32}
    return {
        "config.json": json.dumps(config).encode(),
        "tokenizer_config.json": b"{}",
        "model.safetensors": safetensors_bytes(payload_bytes),
    }


@pytest.fixture
def hub_server(monkeypatch, tmp_path):
    from huggingface_hub import constants as hf_constants

    server = HubServer().start()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))  # never the developer's login
    yield server
    server.stop()


def snapshot_of(repo_id: str, server: HubServer) -> Path:
    return hf_hub_cache_dir() / ("models--" + repo_id.replace("/", "--")) / "snapshots" / server.repos[repo_id].commit


def test_pull_fetches_only_the_mlx_files_and_the_model_is_then_local(hub_server, tiny_model):
    files = tiny_repo_files(tiny_model) | {
        "README.md": b"# tiny",
        "pytorch_model.bin": b"x" * 100,
        "original/w.safetensors": b"y",
        "consolidated.safetensors": b"z",
    }
    hub_server.repos["org/tiny"] = FakeRepo(files)

    snapshot = hub.download_model("org/tiny")

    assert sorted(p.name for p in snapshot.iterdir()) == sorted(tiny_repo_files(tiny_model))
    for name, data in tiny_repo_files(tiny_model).items():
        assert (snapshot / name).read_bytes() == data
    ref = resolve_model("org/tiny")
    assert ref.path == snapshot and ref.source == "hf-cache"
    assert "org/tiny" in [m.name for m in list_models()]


def test_a_second_pull_downloads_nothing(hub_server, tiny_model):
    hub_server.repos["org/tiny"] = FakeRepo(tiny_repo_files(tiny_model))
    hub.download_model("org/tiny")
    hub_server.requests.clear()

    hub.download_model("org/tiny")

    assert [r for r in hub_server.requests if r.method == "GET" and "/resolve/" in r.path] == []


def test_progress_reports_file_and_total_bytes_speed_and_time_left(hub_server):
    hub_server.repos["org/big"] = FakeRepo(big_repo_files())
    hub_server.chunk_delay_s = 0.01
    reports: list[hub.DownloadProgress] = []

    hub.download_model("org/big", progress=reports.append)

    weights = [r for r in reports if r.file == "model.safetensors"]
    assert len(weights) >= 3, "progress should move during the file, not only at its ends"
    assert [r.done for r in reports] == sorted(r.done for r in reports)
    assert any(r.bytes_per_s and r.eta_s is not None and 0 < r.file_done < r.file_total for r in weights)
    assert reports[-1].finished and reports[-1].done == reports[-1].total == sum(len(d) for d in big_repo_files().values())
    assert reports[-1].files_done == reports[-1].files_total == 3


def test_cancel_from_another_thread_stops_mid_file_and_the_next_pull_resumes_with_range(hub_server):
    hub_server.repos["org/big"] = FakeRepo(big_repo_files())
    hub_server.chunk_delay_s = 0.02
    cancel, mid_file, outcome = threading.Event(), threading.Event(), {}

    def watch(report: hub.DownloadProgress) -> None:
        if report.file == "model.safetensors" and report.file_done > 1_000_000:
            mid_file.set()

    def run() -> None:
        try:
            hub.download_model("org/big", progress=watch, cancel=cancel)
        except hub.HubError as error:
            outcome["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    assert mid_file.wait(timeout=20)
    cancel.set()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert isinstance(outcome.get("error"), hub.DownloadCancelled)
    assert "resumes" in str(outcome["error"])
    snapshot = snapshot_of("org/big", hub_server)
    assert not (snapshot / "config.json").exists(), "an unfinished download must not look like a model"
    assert "org/big" not in [m.name for m in list_models()]

    hub_server.chunk_delay_s = 0.0
    snapshot = hub.download_model("org/big")

    resumed = hub_server.gets_of("model.safetensors")[-1]
    assert resumed.range is not None and int(resumed.range.removeprefix("bytes=").split("-")[0]) > 1_000_000
    assert (snapshot / "model.safetensors").read_bytes() == big_repo_files()["model.safetensors"]
    assert not list(snapshot.parent.parent.glob("blobs/*" + hub.PARTIAL_SUFFIX))


def test_a_dropped_connection_resumes_where_it_stopped(hub_server):
    hub_server.repos["org/big"] = FakeRepo(big_repo_files())
    hub_server.drop_once_at["model.safetensors"] = 1_500_000

    snapshot = hub.download_model("org/big")

    gets = hub_server.gets_of("model.safetensors")
    assert len(gets) == 2 and gets[0].range is None
    assert 0 < int(gets[1].range.removeprefix("bytes=").split("-")[0]) <= 1_500_000
    assert (snapshot / "model.safetensors").read_bytes() == big_repo_files()["model.safetensors"]


def test_a_repo_that_does_not_exist_is_named(hub_server):
    with pytest.raises(hub.RepoNotFoundError, match="No model org/missing on http://127.0.0.1"):
        hub.download_model("org/missing")


def test_a_private_repo_says_how_to_log_in_and_downloads_with_a_token(hub_server, tiny_model, monkeypatch):
    hub_server.repos["org/private"] = FakeRepo(tiny_repo_files(tiny_model), private=True)
    with pytest.raises(hub.RepoNotFoundError, match="hf auth login"):
        hub.download_model("org/private")

    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    assert (hub.download_model("org/private") / "config.json").is_file()


def test_a_gated_repo_says_to_accept_its_terms_and_log_in(hub_server, tiny_model):
    hub_server.repos["org/gated"] = FakeRepo(tiny_repo_files(tiny_model), gated=True)
    with pytest.raises(hub.RepoAccessError, match=r"gated: accept its terms at .*/org/gated.*hf auth login.*HF_TOKEN"):
        hub.download_model("org/gated")
    assert "org/gated" not in [m.name for m in list_models()]


def test_a_gguf_repo_lists_its_files_and_offers_import(hub_server):
    hub_server.repos["org/gguf"] = FakeRepo(
        {"README.md": b"x", "model-Q4_K_M.gguf": b"g" * 2000, "model-Q8_0.gguf": b"g" * 3000}
    )
    with pytest.raises(hub.NotAnMLXModelError) as caught:
        hub.download_model("org/gguf")
    message = str(caught.value)
    assert "model-Q4_K_M.gguf (2.0 KB)" in message and "model-Q8_0.gguf (3.0 KB)" in message
    assert "mlxchat import model-Q4_K_M.gguf" in message
    assert [f.path for f in caught.value.gguf_files] == ["model-Q4_K_M.gguf", "model-Q8_0.gguf"]
    assert not [r for r in hub_server.requests if "/resolve/" in r.path]


def test_a_pytorch_only_repo_gives_the_convert_command(hub_server):
    hub_server.repos["org/torch"] = FakeRepo({"config.json": b"{}", "pytorch_model.bin": b"w" * 100})
    with pytest.raises(hub.NotAnMLXModelError, match=r"mlx_lm\.convert --hf-path org/torch -q"):
        hub.download_model("org/torch")


def test_no_network_is_said_plainly(hub_server, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(hub.HubUnreachableError, match=f"Cannot reach http://127.0.0.1:{port}"):
        hub.download_model("org/tiny")


def test_hf_hub_offline_refuses_before_any_request(hub_server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.HubUnreachableError, match="HF_HUB_OFFLINE"):
        hub.download_model("org/tiny")
    assert hub_server.requests == []


def test_too_little_disk_space_is_refused_before_the_first_byte(hub_server, monkeypatch):
    hub_server.repos["org/big"] = FakeRepo(big_repo_files())
    monkeypatch.setattr(hub, "free_disk_bytes", lambda path: 10_000_000)
    with pytest.raises(hub.DiskSpaceError, match=r"needs 3\.0 MB more and 10\.0 MB is free"):
        hub.download_model("org/big")
    assert not [r for r in hub_server.requests if "/resolve/" in r.path]


def test_a_disk_that_fills_up_mid_way_leaves_nothing_that_looks_like_a_model(hub_server):
    """The process's file-size limit makes writes past 1 MB fail (EFBIG), as a full disk fails them (ENOSPC)."""
    hub_server.repos["org/big"] = FakeRepo(big_repo_files())
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, hard))
    try:
        with pytest.raises(hub.DiskSpaceError, match=r"filled up while downloading model\.safetensors of org/big"):
            hub.download_model("org/big")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert not (snapshot_of("org/big", hub_server) / "config.json").exists()
    assert "org/big" not in [m.name for m in list_models()]


def test_inspect_repo_lists_what_would_be_downloaded_without_downloading(hub_server, tiny_model):
    hub_server.repos["org/tiny"] = FakeRepo(tiny_repo_files(tiny_model) | {"README.md": b"# tiny"})
    repo = hub.inspect_repo("org/tiny")
    assert [f.path for f in repo.wanted][-1] == "config.json"
    assert "README.md" not in [f.path for f in repo.wanted]
    assert repo.download_bytes == sum(len(d) for d in tiny_repo_files(tiny_model).values())
    assert not [r for r in hub_server.requests if "/resolve/" in r.path]


def test_an_architecture_mlx_cannot_load_is_refused_before_the_weights_download(hub_server):
    files = big_repo_files() | {"config.json": json.dumps({"model_type": "no_such_architecture"}).encode()}
    hub_server.repos["org/alien"] = FakeRepo(files)
    with pytest.raises(hub.NotAnMLXModelError, match="'no_such_architecture' model, which the installed mlx-lm"):
        hub.download_model("org/alien")
    assert hub_server.gets_of("model.safetensors") == []
    assert not (hf_hub_cache_dir() / "models--org--alien").exists()


def test_a_cache_folder_that_cannot_be_written_is_one_clear_error(hub_server, tiny_model, monkeypatch, tmp_path):
    """A file where the cache's folder should be fails for root too (a read-only folder would not)."""
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "not-a-folder" / "hub"))
    hub_server.repos["org/tiny"] = FakeRepo(tiny_repo_files(tiny_model))
    with pytest.raises(hub.HubError, match="Downloading org/tiny failed: .*Not a directory"):
        hub.download_model("org/tiny")


def test_weights_come_from_the_cdn_the_hub_redirects_to_and_the_token_never_goes_there(hub_server, monkeypatch):
    hub_server.repos["org/private"] = FakeRepo(big_repo_files(), private=True)
    hub_server.cdn = True
    monkeypatch.setenv("HF_TOKEN", hub_server.token)

    snapshot = hub.download_model("org/private")

    assert (snapshot / "model.safetensors").read_bytes() == big_repo_files()["model.safetensors"]
    cdn = [r for r in hub_server.requests if r.path.startswith("/cdn/")]
    assert cdn and all(r.method == "GET" and not r.authorization for r in cdn)
    assert all(r.authorization for r in hub_server.requests if "/resolve/" in r.path)
