"""Provides model loading on the owner thread: resolve, check, load, and fit the weights to the device.

Everything here runs on the engine's owner thread, because MLX arrays made (even lazily) on one thread cannot
be evaluated on another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import mlx.core as mx
import mlx.nn as nn

from mlxchat.settings import read_generation_config

from ..events import ModelInfo
from ..thinking import ThinkingFormat, detect_thinking_format
from .generation import PrefillChunker
from .kv_attention import install as install_quantized_attention
from .cuda_attention import install as install_cuda_attention

DEFAULT_CONTEXT = 4096

Progress = Callable[[str, float | None], None]


@dataclass
class LoadedModel:
    """A model ready to generate. `text_model` is what mlx-lm drives; for a vision model it is an adapter over
    the VLM's own language model (same weights), and `vision` holds the mlx-vlm side."""

    info: ModelInfo
    text_model: nn.Module
    tokenizer: Any
    vision: Any = None
    chunker: PrefillChunker = field(default_factory=PrefillChunker.for_device)
    thinking: ThinkingFormat | None = None


def resolve(spec: str | None, progress: Progress):
    """Find the model folder for `spec` (converting the bundled demo model on its first use)."""
    from mlxchat.models.discovery import check_weights, resolve_model

    if spec is None:
        progress("Preparing the bundled demo model", None)
    ref = resolve_model(spec, progress=lambda step: progress(step, None))
    check_weights(ref.path)
    return ref


def load(ref, progress: Progress) -> LoadedModel:
    """Load a resolved model. Raises with a readable message on any failure."""
    path = Path(ref.path)
    config = json.loads((path / "config.json").read_text())
    info = ModelInfo(
        name=ref.name,
        path=str(path),
        kind=ref.kind,
        quantization=ref.quantization,
        size_bytes=ref.size_bytes,
        context_size=context_size(config),
        base_model=getattr(ref, "base_model", False),
    )
    progress(f"Reading weights of {ref.name}", 0.1)
    _quiet_transformers()
    if ref.kind == "vision":
        from .vision import load_vision_model

        vision = load_vision_model(path)
        text_model, tokenizer = vision.text_model, vision.tokenizer
    else:
        from mlx_lm import load as mlx_lm_load

        text_model, tokenizer = mlx_lm_load(str(path))
        vision = None
    install_quantized_attention(vision=vision is not None)
    install_cuda_attention(text_model)  # MLX CUDA: no cuDNN graph build per follow-up shape (cuda_attention.py)
    progress("Fitting weights to the device", 0.8)
    fit_to_device(vision.model if vision is not None else text_model)
    thinking = detect_thinking_format(tokenizer)
    info = replace(
        info,
        thinking=thinking.name if thinking else None,
        thinking_switch=bool(thinking and thinking.switch),
        sampling_defaults=tuple(read_generation_config(path).items()),
    )
    return LoadedModel(info=info, text_model=text_model, tokenizer=tokenizer, vision=vision, thinking=thinking)


def _quiet_transformers() -> None:
    """Tokenizer and processor loading warns on stderr (deprecated options); in a TUI that garbles the screen."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    transformers_logging.set_verbosity_error()


def context_size(config: dict) -> int:
    """The model's trained context (discovery's one reading of config.json), else `DEFAULT_CONTEXT`."""
    from mlxchat.models.discovery import context_length

    return context_length(config) or DEFAULT_CONTEXT


def fit_to_device(model: nn.Module) -> None:
    """On the CPU, half-precision parameters make MLX's matmuls (quantized ones too) tens of times slower
    (measured ~40x), so they are widened to float32 there. On a GPU the stored precision is kept."""
    if mx.default_device().type == mx.gpu:
        return
    half = (mx.float16, mx.bfloat16)
    from mlx.utils import tree_flatten

    if any(v.dtype in half for _, v in tree_flatten(model.parameters())):
        model.set_dtype(mx.float32)
    mx.eval(model.parameters())
