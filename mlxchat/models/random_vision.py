"""Provides tiny random-weight vision-language model folders that mlx-vlm loads, built offline in about a second.

Tests need a real VLM to prove the vision route (image → vision tower → language model → tokens) without a
download. These folders are ordinary mlx-vlm checkpoints: `config.json` with a `vision_config`, safetensors,
a tokenizer that knows the architecture's image tokens, the image processor's and processor's JSON, and a chat
template that writes the image placeholder for image items. Everything is random and tiny (a 64-wide vision
tower of 2 layers over a 64-pixel image), so one image becomes 4 tokens and an image turn takes tens of
milliseconds on a CPU. The tokenizer is `random_weights.build_tokenizer`'s, with the image tokens added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .random_weights import build_tokenizer


@dataclass(frozen=True)
class TinyVisionSpec:
    """Sizes of the model to build. One image of `image_size` pixels becomes a few image tokens."""

    text_hidden_size: int = 64
    text_layers: int = 2
    vision_hidden_size: int = 64
    vision_layers: int = 2
    patch_size: int = 16
    image_size: int = 64
    vocab_size: int = 512
    seed: int = 0
    # Shape details a real checkpoint has (defaults: the tiny test model's). Widths of 0 mean twice the hidden size.
    text_intermediate_size: int = 0
    text_heads: int = 4
    text_kv_heads: int = 2
    vision_intermediate_size: int = 0
    vision_heads: int = 4
    scale_factor: int = 2
    split_edge: int = 0
    """Idefics3/SmolVLM: an image is resized to this longest edge and cut into `image_size` tiles plus a global
    one (their processors' image splitting); 0: no splitting, one tile."""
    model_vocab_size: int = 0
    """The embedding and output rows (a real vocabulary's cost); 0: just enough for the tokenizer."""
    dtype: str = "float32"


SMOLVLM_256M = TinyVisionSpec(
    text_hidden_size=576,
    text_intermediate_size=1536,
    text_layers=30,
    text_heads=9,
    text_kv_heads=3,
    vision_hidden_size=768,
    vision_intermediate_size=3072,
    vision_layers=12,
    vision_heads=12,
    patch_size=16,
    image_size=512,
    scale_factor=4,
    split_edge=2048,
    model_vocab_size=49280,
    dtype="bfloat16",
)
"""HuggingFaceTB/SmolVLM-256M-Instruct's shape (SigLIP tower 12 x 768 over 512-pixel tiles, pixel shuffle 4: 64
tokens a tile; SmolLM2-135M text model), random weights: what a benchmark needs to pay what a real image costs."""


@dataclass(frozen=True)
class _Recipe:
    """What differs between architectures: config, tokens, template and processor files."""

    config: dict[str, Any]
    special_tokens: list[str]
    eos_token: str
    chat_template: str
    preprocessor: dict[str, Any]
    processor: dict[str, Any]
    # Tokens the model must never pick on its own (image placeholders, turn markers): output row set to zero.
    silent_tokens: list[str]
    # Config keys that hold token ids (image_token_id, ...) and the token each names.
    config_tokens: dict[str, str]
    # Extra JSON files some processors read (a missing one can make them look on the Hugging Face Hub).
    extra_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Weight names whose checkpoint layout differs from MLX's (PyTorch conv kernels), with the axes to store.
    checkpoint_layout: dict[str, tuple[int, ...]] = field(default_factory=dict)


# SmolVLM's own template: it reads list content only ({"type": "image"} / {"type": "text"} items), as the real
# checkpoints' does, so tests prove the text route copes with it.
_IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def _idefics3_recipe(architecture: str, spec: TinyVisionSpec) -> _Recipe:
    tokens = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"]
    patches_per_side = spec.image_size // spec.patch_size
    scale_factor = spec.scale_factor
    image_seq_len = (patches_per_side // scale_factor) ** 2
    processor_type = "SmolVLM" if architecture == "smolvlm" else "Idefics3"
    text_config = {
        "model_type": "llama",
        "hidden_size": spec.text_hidden_size,
        "intermediate_size": spec.text_intermediate_size or spec.text_hidden_size * 2,
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_kv_heads,
        "num_hidden_layers": spec.text_layers,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": False,
    }
    vision_config = {
        "model_type": f"{architecture}_vision",
        "hidden_size": spec.vision_hidden_size,
        "intermediate_size": spec.vision_intermediate_size or spec.vision_hidden_size * 2,
        "num_attention_heads": spec.vision_heads,
        "num_hidden_layers": spec.vision_layers,
        "patch_size": spec.patch_size,
        "image_size": spec.image_size,
        "num_channels": 3,
        "layer_norm_eps": 1e-6,
    }
    config = {
        "model_type": architecture,
        "architectures": [f"{processor_type}ForConditionalGeneration"],
        "scale_factor": scale_factor,
        "text_config": text_config,
        "vision_config": vision_config,
    }
    preprocessor = {
        "image_processor_type": f"{processor_type}ImageProcessor",
        "processor_class": f"{processor_type}Processor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"longest_edge": spec.split_edge or spec.image_size},
        "max_image_size": {"longest_edge": spec.image_size},
        "do_image_splitting": bool(spec.split_edge),
        "resample": 1,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_pad": True,
    }
    processor = {"processor_class": f"{processor_type}Processor", "image_seq_len": image_seq_len}
    return _Recipe(
        config=config,
        special_tokens=tokens,
        eos_token="<end_of_utterance>",
        chat_template=_IDEFICS3_TEMPLATE,
        preprocessor=preprocessor,
        processor=processor,
        silent_tokens=tokens + ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
        config_tokens={"image_token_id": "<image>", "image_token_index": "<image>"},
    )


# Qwen2-VL style ChatML with <|vision_start|><|image_pad|><|vision_end|> for each image item.
_QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _qwen2_vl_recipe(architecture: str, spec: TinyVisionSpec) -> _Recipe:
    tokens = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    heads = 4
    head_dim = spec.text_hidden_size // heads
    quarter = head_dim // 8  # mrope splits head_dim / 2 rotary pairs over (time, height, width)
    config = {
        "model_type": "qwen2_vl",
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "hidden_size": spec.text_hidden_size,
        "intermediate_size": spec.text_hidden_size * 2,
        "num_attention_heads": heads,
        "num_key_value_heads": 2,
        "num_hidden_layers": spec.text_layers,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": [head_dim // 2 - 2 * quarter, quarter, quarter]},
        "max_position_embeddings": 8192,
        "tie_word_embeddings": False,
        "vision_config": {
            "model_type": "qwen2_vl",
            "depth": spec.vision_layers,
            "embed_dim": spec.vision_hidden_size,
            "hidden_size": spec.text_hidden_size,
            "num_heads": 4,
            "mlp_ratio": 2,
            "patch_size": spec.patch_size,
            "spatial_patch_size": spec.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "in_channels": 3,
        },
    }
    pixels = spec.image_size * spec.image_size
    preprocessor = {
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2VLProcessor",
        "patch_size": spec.patch_size,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "min_pixels": pixels,
        "max_pixels": pixels,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    return _Recipe(
        config=config,
        special_tokens=tokens,
        eos_token="<|im_end|>",
        chat_template=_QWEN2_VL_TEMPLATE,
        preprocessor=preprocessor,
        processor={"processor_class": "Qwen2VLProcessor"},
        silent_tokens=tokens + ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
        config_tokens={
            "image_token_id": "<|image_pad|>",
            "video_token_id": "<|video_pad|>",
            "vision_start_token_id": "<|vision_start|>",
        },
        extra_files={"video_preprocessor_config.json": preprocessor},
        # Conv3d kernels are stored PyTorch-style (out, in, t, h, w); mlx-vlm's sanitize turns them back.
        checkpoint_layout={"vision_tower.patch_embed.proj.weight": (0, 4, 1, 2, 3)},
    )


_RECIPES: dict[str, Callable[[str, TinyVisionSpec], _Recipe]] = {
    "smolvlm": _idefics3_recipe,
    "idefics3": _idefics3_recipe,
    "qwen2_vl": _qwen2_vl_recipe,
}

ARCHITECTURES = tuple(_RECIPES)


def build_tiny_vlm(
    folder: Path, architecture: str = "smolvlm", spec: TinyVisionSpec = TinyVisionSpec(), *, thinking: bool = False
) -> Path:
    """Write a random-weight VLM folder of `architecture` (one of `ARCHITECTURES`) that `mlx_vlm.load` accepts.

    The output rows of the end-of-turn and image tokens are zero, so greedy decoding never picks them: the
    model keeps talking until stopped or out of tokens, which cancel and busy tests rely on. `thinking` makes it
    a reasoning model whose generation prompt opens `<think>` (as DeepSeek-R1's does); `</think>` is silent too,
    so it thinks until a thinking budget ends it.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_vlm.utils import get_model_and_args, update_module_configs

    if architecture not in _RECIPES:
        raise ValueError(f"unknown tiny VLM architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    recipe = _RECIPES[architecture](architecture, spec)
    if thinking:
        recipe = replace(
            recipe,
            special_tokens=[*recipe.special_tokens, "<think>", "</think>"],
            silent_tokens=[*recipe.silent_tokens, "<think>", "</think>"],
            chat_template=recipe.chat_template + "{% if add_generation_prompt %}{{ '<think>\\n' }}{% endif %}",
        )
    ids = _write_tokenizer(folder, spec, recipe)

    config = dict(recipe.config)
    vocab_size = max(_round_up(max(ids.values()) + 1, 64), spec.model_vocab_size)
    if "text_config" in config:  # nested (Idefics3) or flat at the top level (Qwen2-VL)
        config["text_config"] = {**config["text_config"], "vocab_size": vocab_size}
    config["vocab_size"] = vocab_size
    config["eos_token_id"] = ids[recipe.eos_token]
    config.update({key: ids[token] for key, token in recipe.config_tokens.items()})

    mx.random.seed(spec.seed)
    model_module, _ = get_model_and_args(config)
    model_config = model_module.ModelConfig.from_dict(config)
    model_config = update_module_configs(model_config, model_module, config, ["text", "vision"])
    model = model_module.Model(model_config)
    _silence_rows(model, [ids[token] for token in recipe.silent_tokens])

    dtype = getattr(mx, spec.dtype)
    weights = {
        name: value.astype(dtype) if mx.issubdtype(value.dtype, mx.floating) else value
        for name, value in tree_flatten(model.parameters())
    }
    for name, axes in recipe.checkpoint_layout.items():
        weights[name] = weights[name].transpose(axes)
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "preprocessor_config.json").write_text(json.dumps(recipe.preprocessor, indent=2))
    (folder / "processor_config.json").write_text(json.dumps(recipe.processor, indent=2))
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": recipe.chat_template}))
    for name, content in recipe.extra_files.items():
        (folder / name).write_text(json.dumps(content, indent=2))
    return folder


def _write_tokenizer(folder: Path, spec: TinyVisionSpec, recipe: _Recipe) -> dict[str, int]:
    """The shared tiny BPE tokenizer plus this architecture's special tokens. Returns the vocabulary (token → id)."""
    from tokenizers import AddedToken, Tokenizer

    build_tokenizer(folder, spec.vocab_size)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in recipe.special_tokens])
    tokenizer.save(str(folder / "tokenizer.json"))
    config_path = folder / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config.update(
        {
            "eos_token": recipe.eos_token,
            "chat_template": recipe.chat_template,
            "additional_special_tokens": recipe.special_tokens,
        }
    )
    config_path.write_text(json.dumps(tokenizer_config, indent=2))
    return tokenizer.get_vocab(with_added_tokens=True)


def _silence_rows(model, token_ids: list[int]) -> None:
    """Zero the output rows of `token_ids` so random logits elsewhere always beat them."""
    import mlx.core as mx

    head = model.language_model.lm_head
    rows = mx.arange(head.weight.shape[0])[:, None]
    silent = (rows == mx.array(token_ids)[None, :]).any(axis=1, keepdims=True)
    head.weight = mx.where(silent, 0.0, head.weight)


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple
