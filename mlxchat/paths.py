"""Provides the user folders mlxchat reads and writes, from platformdirs.

Nothing is created at import: each folder is made on first write by whoever writes. Tests and power users
redirect them with MLXCHAT_CACHE_DIR, MLXCHAT_DATA_DIR and MLXCHAT_CONFIG_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "mlxchat"


def _from_env(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Rebuildable things: converted demo model, saved prompt caches, MLX's compiled GPU kernels (CUDA build)."""
    return _from_env("MLXCHAT_CACHE_DIR") or Path(platformdirs.user_cache_dir(APP_NAME))


def engine_log() -> Path:
    """What the engine's process wrote last time it ran (its log, MLX's own messages): rewritten at each start."""
    return cache_dir() / "engine.log"


def data_dir() -> Path:
    """Things users keep: history database, attachments, imported models."""
    return _from_env("MLXCHAT_DATA_DIR") or Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    """config.toml (defaults, theme, keymap) and user themes."""
    return _from_env("MLXCHAT_CONFIG_DIR") or Path(platformdirs.user_config_dir(APP_NAME))
