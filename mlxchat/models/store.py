"""Provides where mlxchat keeps model folders on disk, and how a conversion lands there atomically.

Two places, both from `mlxchat.paths` (platformdirs) and created on first write, never at import:

* the cache (`MLXCHAT_CACHE_DIR`, else the user cache dir + `mlxchat`): the demo model, which can be
  rebuilt from its wheel at any time, so losing it costs a second;
* the data dir (`MLXCHAT_DATA_DIR`, else the user data dir + `mlxchat`): models the user imported, which
  are theirs to keep.

A conversion writes into a hidden temp folder beside its target and is renamed into place only when
complete, so a killed conversion never leaves a half folder where a model is expected.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from mlxchat import paths
from mlxchat.models.errors import ModelError, ModelWriteError

_STALE_PARTIAL_S = 600.0  # a leftover temp folder older than this belongs to a conversion that died


def cache_models_dir() -> Path:
    """`<cache>/models`: converted copies mlxchat can rebuild (the demo model)."""
    return paths.cache_dir() / "models"


def data_models_dir() -> Path:
    """`<data>/models`: models the user imported; one folder per model, named as the user chose."""
    return paths.data_dir() / "models"


def is_partial(folder: Path) -> bool:
    """True for the hidden temp folders `install_converted` works in; listings skip them."""
    return folder.name.startswith(".")


def install_converted(
    gguf_path: Path,
    target: Path,
    *,
    progress: Callable[[str], None] | None = None,
    replace: bool = False,
    bits: int | None = None,
    keep_float: bool = False,
) -> Path:
    """Convert `gguf_path` into `target` through a temp folder beside it, then rename it into place.

    With `replace`, an existing `target` is swapped out only after the new folder is complete. If another
    process installs the same target first, its folder is kept and ours is discarded. `bits` and
    `keep_float` choose the output precision (see `convert_gguf`). An interrupted conversion (Ctrl+C)
    removes its temp folder, so nothing is left behind.
    """
    from mlxchat.models.gguf import convert_gguf

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(target)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as exc:
        raise _write_error(target, exc) from None
    try:
        try:
            convert_gguf(gguf_path, work, progress=progress, bits=bits, keep_float=keep_float)
        except ModelError:
            raise
        except Exception as exc:  # the input was checked before; what fails now is writing the output
            raise _write_error(target, exc) from None
        if replace and target.exists():
            old = target.with_name(f".{target.name}.{os.getpid()}.old.partial")
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(work, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(work, ignore_errors=True)  # someone else finished first; theirs is complete
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def _write_error(target: Path, exc: BaseException) -> ModelWriteError:
    """One message for every way writing a converted model fails (tokenizers, MLX and the OS each word it
    differently, and only some raise OSError)."""
    folder = target.parent
    reason = " ".join(str(exc).split()) or exc.__class__.__name__
    try:
        free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    except OSError:
        free = None
    lowered = reason.lower()
    if "no space" in lowered or getattr(exc, "errno", None) == 28 or (free is not None and free < 64 * 2**20):
        cause = "no space is left on the disk"
    elif "read-only" in lowered or "permission" in lowered or getattr(exc, "errno", None) in (13, 30):
        cause = "the folder is read-only"
    else:
        cause = "no space is left on the disk, or the folder is not writable"
    return ModelWriteError(f"Cannot write the converted model into {folder}: {cause} ({reason}).")


def _remove_stale_partials(target: Path) -> None:
    cutoff = time.time() - _STALE_PARTIAL_S
    for leftover in target.parent.glob(f".{target.name}.*.partial"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass
