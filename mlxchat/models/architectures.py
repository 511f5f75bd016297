"""Provides which `model_type` values the installed mlx-lm and mlx-vlm can load, without importing them.

Importing mlx-lm or mlx-vlm takes over a second (mostly transformers) and imports MLX, which the UI must
not do. Both libraries pick a model's module by `model_type`, after a small remapping table
(`MODEL_REMAPPING` in their `utils.py`), so we look at their `models` folders on disk and read the table
from the source with `ast`: the answer matches what `load` will do, at the cost of a directory listing.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=None)
def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)  # finds, does not import, a top-level package
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


@lru_cache(maxsize=None)
def _remapping(package: str) -> dict[str, str]:
    """The package's `MODEL_REMAPPING` literal, or {} if its source no longer has one we can read."""
    folder = _package_dir(package)
    if folder is None:
        return {}
    try:
        tree = ast.parse((folder / "utils.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "MODEL_REMAPPING" for target in node.targets
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    return {}


@lru_cache(maxsize=None)
def _module_names(package: str) -> frozenset[str]:
    folder = _package_dir(package)
    models = folder / "models" if folder else None
    if models is None or not models.is_dir():
        return frozenset()
    names = set()
    for entry in models.iterdir():
        if entry.name.startswith("_"):
            continue
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            names.add(entry.name)
    return frozenset(names)


def _resolves_in(package: str, model_type: str) -> bool:
    model_type = model_type.lower()
    return _remapping(package).get(model_type, model_type) in _module_names(package)


def text_model_types_known(model_type: str) -> bool:
    """True when mlx-lm has a module for `model_type`."""
    return _resolves_in("mlx_lm", model_type)


def vision_model_types_known(model_type: str) -> bool:
    """True when mlx-vlm has a module for `model_type` (it also covers many text-only models)."""
    return _resolves_in("mlx_vlm", model_type)


def is_known_model_type(model_type: str) -> bool:
    """True when either library can build a model of this type."""
    return text_model_types_known(model_type) or vision_model_types_known(model_type)


def is_vision_config(config: dict[str, Any]) -> bool:
    """A model takes images when its config has a `vision_config`, or only mlx-vlm knows its type."""
    if isinstance(config.get("vision_config"), dict):
        return True
    model_type = str(config.get("model_type", ""))
    return vision_model_types_known(model_type) and not text_model_types_known(model_type)
