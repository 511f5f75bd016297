"""Provides downloads of MLX models from the Hugging Face Hub into the standard Hugging Face cache.

`inspect_repo` asks the Hub what a repo holds (one API call, nothing downloaded) and says whether mlxchat can
use it; `download_model` fetches the files an MLX model needs, one at a time, reporting `DownloadProgress`.

Everything on the wire is `huggingface_hub`'s: `HfApi.model_info` for the listing, `get_hf_file_metadata` for
each file's ETag and size, `http_get` for the bytes (it sends `Range` to resume and retries a dropped
connection), and `hf_hub_download` to link the finished blob into the snapshot folder. mlxchat adds what the
library does not do:

* **Resume across runs.** The library writes each file to a temp name it deletes on any failure, so Ctrl+C
  loses the file in flight. mlxchat writes into `blobs/<etag>.mlxchat-partial` instead and hands `http_get`
  its length, so the next run asks only for the rest.
* **Nothing half-written looks like a model.** `config.json` is fetched last and `refs/main` written after
  it; discovery lists a snapshot only when it has a config, so an interrupted download is never offered.
* **A disk-space check before the first byte**, clear answers for every failure (`HubError` subclasses,
  worded for the user), and cancelling from another thread (a `threading.Event` checked at every chunk).

Settings are read when a download starts, not when `huggingface_hub` was imported: `HF_ENDPOINT` (a mirror, or
the tests' loopback server), `HF_HUB_OFFLINE` (refuse before any request), `HF_TOKEN` (the library reads it
per request) and the cache folder (`discovery.hf_hub_cache_dir`).
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import shutil
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

from mlxchat.models.discovery import HF_REPO_ID, hf_hub_cache_dir, hf_snapshot
from mlxchat.models.errors import ModelError, ModelWriteError

DEFAULT_ENDPOINT = "https://huggingface.co"
# What an MLX model folder needs, as mlx-lm's own downloader fetches it; top-level files only, so a repo's
# `original/` or `onnx/` folders are never pulled.
MLX_FILE_PATTERNS = (
    "*.json",
    "*.safetensors",
    "*.py",
    "tokenizer.model",
    "*.tiktoken",
    "tiktoken.model",
    "*.txt",
    "*.jsonl",
    "*.jinja",
)
# Mistral's repos carry the weights twice; mlx-lm and mlx-vlm load the `model*` shards and skip this one.
SKIPPED_PATTERNS = ("consolidated*.safetensors",)
PYTORCH_WEIGHT_PATTERNS = ("*.bin", "*.pt", "*.pth")
PARTIAL_SUFFIX = ".mlxchat-partial"
# A chunk is the unit of progress and of cancelling. The library regroups what the socket delivers into 10 MiB
# chunks, which would make a cancel on a slow line wait many seconds and costs a copy of every byte; None hands
# each socket read (tens of kB) straight to the file: faster, and cancel is near-instant (see BENCHMARKS.md).
CHUNK_BYTES: int | None = None
DISK_MARGIN_BYTES = 64 << 20
PROGRESS_INTERVAL_S = 0.2
_SPEED_WINDOW_S = 3.0
_NO_ROOM_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
LOGIN_HINT = "log in with `hf auth login` (or set HF_TOKEN to an access token)"


class HubError(ModelError):
    """A download could not start or finish; the message is worded for the user."""


class RepoNotFoundError(HubError):
    """No such repo on the Hub (or it is private and we are not logged in: the Hub cannot tell us which)."""


class RepoAccessError(HubError):
    """The repo is gated or private and the token (if any) may not read it."""


class NotAnMLXModelError(HubError):
    """The repo exists but holds no MLX weights: GGUF files, PyTorch weights, or no model at all."""

    def __init__(self, message: str, gguf_files: tuple["RemoteFile", ...] = ()) -> None:
        super().__init__(message)
        self.gguf_files = gguf_files


class HubUnreachableError(HubError):
    """No network, the endpoint does not answer, or HF_HUB_OFFLINE forbids asking."""


class DiskSpaceError(HubError, ModelWriteError):
    """Not enough room before the download, or the disk filled up during it; what was written is kept."""


class DownloadCancelled(HubError):
    """The download was stopped (cancel event or Ctrl+C); what was written is kept and the next run resumes."""


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int


@dataclass(frozen=True)
class RemoteRepo:
    """What a Hub repo holds at one commit, and which of its files an MLX model needs."""

    repo_id: str
    commit: str
    files: tuple[RemoteFile, ...]
    """Every file of the repo."""
    wanted: tuple[RemoteFile, ...]
    """The files mlxchat downloads, in download order: config.json last."""
    gated: bool = False

    @property
    def download_bytes(self) -> int:
        return sum(f.size for f in self.wanted)


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report. Speeds are over the last few seconds; `None` where not yet known."""

    repo_id: str
    file: str
    file_done: int
    file_total: int
    done: int
    total: int
    files_done: int
    files_total: int
    bytes_per_s: float | None
    finished: bool = False

    @property
    def eta_s(self) -> float | None:
        return _eta(self.total - self.done, self.bytes_per_s)

    @property
    def file_eta_s(self) -> float | None:
        return _eta(self.file_total - self.file_done, self.bytes_per_s)


def describe_progress(report: DownloadProgress) -> str:
    """One line for a progress report, the same in the terminal and above the status pane, e.g. `model.safetensors
    312.4 MB / 2.1 GB · 14.8 MB/s · 2m 01s left │ total 0.4 GB / 2.3 GB (2/7 files) · 2m 10s left`."""
    from mlxchat.ui.attachment_files import human_size

    speed = f"{human_size(int(report.bytes_per_s))}/s" if report.bytes_per_s else "…/s"
    if report.finished:
        return f"{report.repo_id}: {human_size(report.total)} in {report.files_total} files, done"
    file_part = (
        f"{report.file} {human_size(report.file_done)} / {human_size(report.file_total)} · {speed} · "
        f"{describe_seconds(report.file_eta_s)} left"
    )
    total_part = (
        f"total {human_size(report.done)} / {human_size(report.total)} "
        f"({report.files_done}/{report.files_total} files) · {describe_seconds(report.eta_s)} left"
    )
    return f"{file_part} │ {total_part}"


def describe_seconds(seconds: float | None) -> str:
    """45 -> '45s', 121 -> '2m 01s', 3900 -> '1h 05m'; unknown -> '…'."""
    if seconds is None:
        return "…"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def _eta(remaining: int, speed: float | None) -> float | None:
    if remaining <= 0:
        return 0.0
    return remaining / speed if speed else None


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def needs_download(spec: str | None) -> bool:
    """Whether `spec` names a Hub repo (`org/name`) that is neither a local path nor in the HF cache yet."""
    if not spec or not HF_REPO_ID.match(spec.strip()):
        return False
    spec = spec.strip()
    return not Path(spec).expanduser().exists() and hf_snapshot(spec) is None


def downloaded_by_mlxchat(repo_id: str) -> bool:
    """Whether mlxchat created this repo's folder in the HF cache (`mlxchat rm` deletes only those unasked)."""
    return _download_record(repo_id).is_file()


def _download_record(repo_id: str) -> Path:
    from mlxchat.models.store import data_models_dir

    return data_models_dir().parent / "downloads" / repo_id.replace("/", "--")


def forget_download(repo_id: str) -> None:
    _download_record(repo_id).unlink(missing_ok=True)


def is_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as it is now, not as it was when huggingface_hub was imported."""
    truthy = ("1", "ON", "YES", "TRUE")
    return any(os.environ.get(name, "").strip().upper() in truthy for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def inspect_repo(repo_id: str, revision: str = "main") -> RemoteRepo:
    """Ask the Hub what `repo_id` holds and check that it is an MLX model; raises a `HubError` otherwise."""
    from huggingface_hub import HfApi

    _refuse_offline(repo_id)
    with _hub_errors(repo_id):
        info = HfApi(endpoint=hub_endpoint()).model_info(repo_id, revision=revision, files_metadata=True)
    files = tuple(RemoteFile(s.rfilename, int(s.size or 0)) for s in (info.siblings or ()))
    repo = RemoteRepo(
        repo_id=repo_id,
        commit=str(info.sha),
        files=files,
        wanted=_wanted_files(files),
        gated=bool(info.gated),
    )
    _check_is_mlx_model(repo)
    return repo


def _wanted_files(files: tuple[RemoteFile, ...]) -> tuple[RemoteFile, ...]:
    chosen = [
        f
        for f in files
        if "/" not in f.path
        and any(fnmatch.fnmatch(f.path, p) for p in MLX_FILE_PATTERNS)
        and not any(fnmatch.fnmatch(f.path, p) for p in SKIPPED_PATTERNS)
    ]
    # Small files first (a tokenizer problem shows early), config.json last (see the module docstring).
    return tuple(sorted(chosen, key=lambda f: (f.path == "config.json", f.path.endswith(".safetensors"), f.path)))


def _check_is_mlx_model(repo: RemoteRepo) -> None:
    from mlxchat.ui.attachment_files import human_size  # plain Python: sizes read the same everywhere

    names = {f.path for f in repo.files}
    has_safetensors = any(f.path.endswith(".safetensors") for f in repo.wanted)
    if "config.json" in names and has_safetensors:
        return
    ggufs = tuple(f for f in repo.files if f.path.lower().endswith(".gguf"))
    if ggufs:
        shown = ", ".join(f"{f.path} ({human_size(f.size)})" for f in ggufs[:6])
        more = f" and {len(ggufs) - 6} more" if len(ggufs) > 6 else ""
        example = min(ggufs, key=lambda f: f.size).path
        raise NotAnMLXModelError(
            f"{repo.repo_id} holds GGUF files, not an MLX model: {shown}{more}. Download one "
            f"(`hf download {repo.repo_id} {example} --local-dir .`) and convert it with "
            f"`mlxchat import {Path(example).name}`.",
            gguf_files=ggufs,
        )
    if "config.json" in names and any(any(fnmatch.fnmatch(n, p) for p in PYTORCH_WEIGHT_PATTERNS) for n in names):
        raise NotAnMLXModelError(
            f"{repo.repo_id} holds PyTorch weights only; convert it to MLX first: "
            f"`mlx_lm.convert --hf-path {repo.repo_id} -q` (then `mlxchat --model ./mlx_model`), or look for an "
            f"MLX version under https://huggingface.co/mlx-community."
        )
    raise NotAnMLXModelError(
        f"{repo.repo_id} is not an MLX model: it has no config.json with *.safetensors weights "
        f"({len(repo.files)} files)."
    )


def download_model(
    repo_id: str,
    *,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    revision: str = "main",
) -> Path:
    """Download the MLX files of `repo_id` into the HF cache and return the snapshot folder.

    Files already in the cache are skipped and a partial file from an earlier run is resumed. `progress` is
    called from this thread at most every `PROGRESS_INTERVAL_S`, plus once per finished file. Setting
    `cancel` stops at the next chunk with `DownloadCancelled`; a KeyboardInterrupt is let through as it is.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub import constants as hf_constants

    repo = inspect_repo(repo_id, revision)
    cache = hf_hub_cache_dir()
    storage = _storage(repo_id)
    snapshot = storage / "snapshots" / repo.commit
    todo = missing_files(repo)
    _check_disk_space(repo, todo, storage)
    if todo:
        _check_model_type(repo)
    if todo and not storage.exists():  # mlxchat creates this repo's folder: remember, so `mlxchat rm` may delete it
        record = _download_record(repo_id)
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(repo.commit + "\n")
        except OSError:
            pass  # then `mlxchat rm` asks for --force; not worth failing a download over
    hf_constants.DOWNLOAD_CHUNK_SIZE = CHUNK_BYTES
    # The library logs a warning per retried chunk; our own messages say it better, and a log line on stderr
    # would tear through the progress line.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    meter = _Meter(repo, todo, progress, cancel)
    for remote in todo:
        meter.start_file(remote)
        with _hub_errors(repo_id):
            blob = _fetch_blob(repo, remote, storage, meter)
            hf_hub_download(
                repo_id,
                remote.path,
                revision=repo.commit,
                cache_dir=str(cache),
                endpoint=hub_endpoint(),
            )
        meter.finish_file(blob)
    if revision == "main" or not _looks_like_commit(revision):
        refs = storage / "refs"
        with _hub_errors(repo_id):
            refs.mkdir(parents=True, exist_ok=True)
            (refs / f".{revision}.tmp").write_text(repo.commit)
            os.replace(refs / f".{revision}.tmp", refs / revision)
    meter.report(force=True, finished=True)
    return snapshot


def missing_files(repo: RemoteRepo) -> list[RemoteFile]:
    """The files of `repo.wanted` not yet in the cache's snapshot of `repo.commit` (all of them on a first pull)."""
    snapshot = _storage(repo.repo_id) / "snapshots" / repo.commit
    return [f for f in repo.wanted if not (snapshot / f.path).exists()]


def _storage(repo_id: str) -> Path:
    return hf_hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def _check_model_type(repo: RemoteRepo) -> None:
    """Read the repo's config.json (a few kB, into a temp folder, not the cache) and refuse an architecture the
    installed mlx-lm and mlx-vlm cannot load, before gigabytes of weights are fetched for nothing."""
    import json
    import tempfile

    from huggingface_hub import hf_hub_download

    from mlxchat.models.architectures import is_known_model_type

    with tempfile.TemporaryDirectory(prefix="mlxchat-config-") as folder:
        with _hub_errors(repo.repo_id):
            path = hf_hub_download(
                repo.repo_id, "config.json", revision=repo.commit, local_dir=folder, endpoint=hub_endpoint()
            )
        try:
            config = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str):
        raise NotAnMLXModelError(f"{repo.repo_id} is not an MLX model: its config.json has no model_type.")
    if not is_known_model_type(model_type):
        raise NotAnMLXModelError(
            f"{repo.repo_id} is a {model_type!r} model, which the installed mlx-lm and mlx-vlm cannot load "
            f"(upgrading them may help: pip install -U mlx-lm mlx-vlm)."
        )


def _fetch_blob(repo: RemoteRepo, remote: RemoteFile, storage: Path, meter: "_Meter") -> Path:
    """Bring one file's blob into `storage/blobs`, resuming a partial from an earlier run."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(repo.repo_id, remote.path, revision=repo.commit, endpoint=hub_endpoint())
    metadata = get_hf_file_metadata(url)
    blob = storage / "blobs" / str(metadata.etag)
    if blob.exists():
        return blob
    blob.parent.mkdir(parents=True, exist_ok=True)
    partial = blob.with_name(blob.name + PARTIAL_SUFFIX)
    expected = metadata.size if metadata.size is not None else remote.size
    # As the library does: fetch the exact blob the HEAD found (its CDN location), and never send the Hub token
    # to another host. A Xet-stored file is fetched from the resolve URL, whose redirects httpx follows.
    source, headers = url, build_hf_headers()
    if metadata.xet_file_data is None and metadata.location != url:
        source = metadata.location
        if _origin(source) != _origin(url):
            headers.pop("authorization", None)
    try:
        with open(partial, "ab") as sink:
            resume_from = sink.tell()
            if resume_from > expected:  # the file changed under the same etag: start over
                sink.truncate(0)
                resume_from = 0
            meter.resume(resume_from)
            http_get(
                source,
                sink,
                resume_size=resume_from,
                headers=headers,
                expected_size=expected,
                tqdm_class=meter.chunk_counter,
            )
    except OSError as error:
        if error.errno in _NO_ROOM_ERRNOS:
            raise _disk_full(repo, remote, partial, error) from None
        raise
    os.replace(partial, blob)
    return blob


class _Meter:
    """Counts bytes for one download, works out speed and time left, and calls `progress` sparingly."""

    def __init__(
        self,
        repo: RemoteRepo,
        todo: list[RemoteFile],
        progress: Callable[[DownloadProgress], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        self.repo, self.progress, self.cancel = repo, progress, cancel
        self.total = sum(f.size for f in todo)
        self.files_total = len(todo)
        self.files_done = 0
        self.done = 0
        self.file = RemoteFile("", 0)
        self.file_done = 0
        self._samples: deque[tuple[float, int]] = deque()
        self._last_report = 0.0
        meter = self

        class ChunkCounter:
            """What `http_get` takes for a tqdm bar: it tells us every chunk it writes."""

            def __init__(self, *args, **kwargs) -> None:
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> None:
                pass

            def update(self, n: int | float | None = 1) -> None:
                meter.add(int(n or 0))

            def close(self) -> None:
                pass

        self.chunk_counter = ChunkCounter

    def start_file(self, remote: RemoteFile) -> None:
        self._check_cancel()
        self.file, self.file_done = remote, 0
        self.report(force=True)

    def resume(self, already: int) -> None:
        """Bytes found in a partial file count as done, but not towards the speed."""
        self.file_done += already
        self.done += already
        self._samples.clear()

    def add(self, n: int) -> None:
        self.file_done += n
        self.done += n
        now = time.monotonic()
        self._samples.append((now, self.done))
        while self._samples and now - self._samples[0][0] > _SPEED_WINDOW_S:
            self._samples.popleft()
        self.report()
        self._check_cancel()

    def finish_file(self, blob: Path) -> None:
        self.done += self.file.size - self.file_done  # a blob shared with another repo downloads nothing
        self.file_done = self.file.size
        self.files_done += 1
        self.report(force=True)

    def report(self, *, force: bool = False, finished: bool = False) -> None:
        now = time.monotonic()
        if self.progress is None or (not force and now - self._last_report < PROGRESS_INTERVAL_S):
            return
        self._last_report = now
        self.progress(
            DownloadProgress(
                repo_id=self.repo.repo_id,
                file=self.file.path,
                file_done=self.file_done,
                file_total=self.file.size,
                done=self.done,
                total=self.total,
                files_done=self.files_done,
                files_total=self.files_total,
                bytes_per_s=self._speed(now),
                finished=finished,
            )
        )

    def _speed(self, now: float) -> float | None:
        if len(self._samples) < 2:
            return None
        (start, start_bytes), (_, end_bytes) = self._samples[0], self._samples[-1]
        return (end_bytes - start_bytes) / max(now - start, 1e-3)

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(
                f"Download of {self.repo.repo_id} cancelled; what was fetched is kept, and "
                f"`mlxchat pull {self.repo.repo_id}` resumes it."
            )


def _check_disk_space(repo: RemoteRepo, todo: list[RemoteFile], storage: Path) -> None:
    from mlxchat.ui.attachment_files import human_size

    partial_bytes = sum(p.stat().st_size for p in (storage / "blobs").glob(f"*{PARTIAL_SUFFIX}")) if (
        storage / "blobs"
    ).is_dir() else 0
    needed = max(sum(f.size for f in todo) - partial_bytes, 0)
    free = free_disk_bytes(storage)
    if needed + DISK_MARGIN_BYTES > free:
        raise DiskSpaceError(
            f"Not enough disk space for {repo.repo_id}: it needs {human_size(needed)} more and "
            f"{human_size(free)} is free in {_existing_parent(storage)}. Free some space (or point HF_HUB_CACHE "
            f"at a bigger disk) and run the download again."
        )


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the disk that holds `path` (or its nearest existing parent)."""
    return shutil.disk_usage(_existing_parent(path)).free


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _disk_full(repo: RemoteRepo, remote: RemoteFile, partial: Path, error: OSError) -> DiskSpaceError:
    from mlxchat.ui.attachment_files import human_size

    written = partial.stat().st_size if partial.exists() else 0
    return DiskSpaceError(
        f"The disk filled up while downloading {remote.path} of {repo.repo_id} ({error.strerror}; "
        f"{human_size(written)} of {human_size(remote.size)} written). The model is not usable yet; free some "
        f"space and run `mlxchat pull {repo.repo_id}` to resume."
    )


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _looks_like_commit(revision: str) -> bool:
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def _refuse_offline(repo_id: str) -> None:
    if is_offline():
        raise HubUnreachableError(
            f"Cannot download {repo_id}: HF_HUB_OFFLINE is set, so mlxchat may not contact the Hub. Unset it "
            f"to download, or use a model that is already local (`mlxchat models`)."
        )


@contextmanager
def _hub_errors(repo_id: str) -> Iterator[None]:
    """Turns the library's and the network's exceptions into one `HubError` worded for the user."""
    try:
        yield
    except HubError:
        raise
    except Exception as error:
        raise _translate(repo_id, error) from None


def _translate(repo_id: str, error: BaseException) -> BaseException:
    import httpx2
    from huggingface_hub import errors as hf_errors

    endpoint = hub_endpoint()
    if isinstance(error, hf_errors.GatedRepoError):
        return RepoAccessError(
            f"{repo_id} is gated: accept its terms at {endpoint}/{repo_id}, then {LOGIN_HINT}."
        )
    if isinstance(error, hf_errors.RepositoryNotFoundError):
        status = error.response.status_code if error.response is not None else None
        private = " If it is private, " + LOGIN_HINT + "." if status == 401 else ""
        return RepoNotFoundError(f"No model {repo_id} on {endpoint} (check the spelling).{private}")
    if isinstance(error, hf_errors.RevisionNotFoundError):
        return RepoNotFoundError(f"{repo_id} has no such revision on {endpoint}.")
    if isinstance(error, hf_errors.HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        if status in (401, 403):
            return RepoAccessError(f"{endpoint} refused access to {repo_id} (HTTP {status}): {LOGIN_HINT}.")
        return HubUnreachableError(f"{endpoint} answered HTTP {status} for {repo_id}; try again later.")
    if isinstance(error, hf_errors.OfflineModeIsEnabled):
        return HubUnreachableError(f"Cannot download {repo_id}: HF_HUB_OFFLINE is set.")
    if isinstance(error, (httpx2.TransportError, ConnectionError, TimeoutError)):
        reason = " ".join(str(error).split()) or error.__class__.__name__
        return HubUnreachableError(
            f"Cannot reach {endpoint} to download {repo_id} ({reason}). Check the network connection (or "
            f"HF_ENDPOINT); what was fetched is kept and the next try resumes."
        )
    if isinstance(error, OSError) and error.errno in _NO_ROOM_ERRNOS:
        return DiskSpaceError(f"The disk filled up while downloading {repo_id} ({error.strerror}).")
    if isinstance(error, OSError):
        return HubError(f"Downloading {repo_id} failed: {' '.join(str(error).split())}")
    return error
