"""long_bench's image section reads a picture the size people send, at the processing of a VLM people run: a
1024x768 photo through SmolVLM's processor is 13 tiles and hundreds of image tokens, not the tiny model's few."""

from __future__ import annotations

from mlxchat.bench.long_bench import photo, vision_bench_model
from mlxchat.engine.local.vision import _prepare_inputs, load_vision_model


def test_the_realistic_shapes_photo_becomes_hundreds_of_image_tokens(tmp_path):
    # smolvlm-tiles: SmolVLM-256M's processor files and geometry, narrow widths (cheap to build here).
    model, size = vision_bench_model("smolvlm-tiles", tmp_path)
    parts = load_vision_model(model)
    picture = parts.memo.load_images([photo(tmp_path / "photo.jpg", size, seed=0)])
    inputs = _prepare_inputs(parts, "User:<image>What is this?<end_of_utterance>\nAssistant:", picture)
    image_token = parts.model.config.image_token_index
    assert size == (1024, 768)
    assert inputs["pixel_values"].shape[1] == 13  # 4 x 3 tiles of 512 pixels and the whole picture
    assert int((inputs["input_ids"] == image_token).sum()) == 13 * 64
