"""What a person importing a GGUF sees: progress, Ctrl+C leaving nothing behind, a message naming the tensor
or key at fault for an inconsistent file, big models written in shards, and the CLI's precision options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gguf_builders import write_tiny_gguf
from mlxchat.models import gguf as gguf_module
from mlxchat.models.errors import GGUFImportError
from mlxchat.models.gguf import convert_gguf
from mlxchat.models.store import install_converted

TYPES = ("Q4_K", "Q6_K", "Q5_0", "Q8_0")  # what a Q4_K_M file mixes


def test_progress_counts_tensors_and_reports_speed(tmp_path: Path) -> None:
    tensors = write_tiny_gguf(tmp_path / "m.gguf", "qwen2", TYPES)
    lines: list[str] = []
    convert_gguf(tmp_path / "m.gguf", tmp_path / "out", progress=lines.append)
    bars = [line for line in lines if line.startswith("Converting [")]
    assert len(bars) == len(tensors)
    assert bars[-1].startswith(f"Converting [{'#' * 24}] {len(tensors)}/{len(tensors)} tensors, ")
    assert bars[-1].endswith(" MB/s")


def test_ctrl_c_during_conversion_leaves_nothing_behind(tmp_path: Path) -> None:
    write_tiny_gguf(tmp_path / "m.gguf", "llama", TYPES)
    target = tmp_path / "models" / "m"

    def interrupt_at_the_fifth_tensor(line: str) -> None:
        if " 5/" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        install_converted(tmp_path / "m.gguf", target, progress=interrupt_at_the_fifth_tensor)
    assert list(target.parent.iterdir()) == []


def test_metadata_that_contradicts_a_tensor_names_the_tensor(tmp_path: Path) -> None:
    """A file whose head count does not fit its Q projection is refused before anything is written."""
    from gguf import GGUFReader, GGUFWriter

    write_tiny_gguf(tmp_path / "good.gguf", "qwen2", TYPES)
    reader = GGUFReader(str(tmp_path / "good.gguf"))
    writer = GGUFWriter(str(tmp_path / "bad.gguf"), "qwen2")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        value = field.contents()
        if field.name == "qwen2.attention.head_count":
            value = 8
        writer.add_key_value(field.name, value, field.types[0], sub_type=field.types[-1] if len(field.types) > 1 else None)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, np.array(tensor.data), raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFImportError) as caught:
        convert_gguf(tmp_path / "bad.gguf", tmp_path / "out")
    message = str(caught.value)
    assert "bad.gguf: tensor blk.0.attn_k.weight has shape (128, 256)" in message  # Qwen2: head size = 256 / 8
    assert "qwen2.attention.head_count = 8" in message and "inconsistent" in message
    assert not (tmp_path / "out").exists()


def test_a_model_larger_than_a_shard_is_written_in_shards_that_load_alike(tmp_path, monkeypatch) -> None:
    import mlx.core as mx
    import mlx_lm

    write_tiny_gguf(tmp_path / "m.gguf", "llama", TYPES)
    whole = convert_gguf(tmp_path / "m.gguf", tmp_path / "whole")
    monkeypatch.setattr(gguf_module, "SHARD_BYTES", 400_000)
    sharded = convert_gguf(tmp_path / "m.gguf", tmp_path / "sharded")
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    tokens = mx.array([[1, 2, 3, 4]])
    assert mx.array_equal(mlx_lm.load(str(whole))[0](tokens), mlx_lm.load(str(sharded))[0](tokens)).item()


def test_cli_import_takes_bits_and_refuses_contradictions(tmp_path: Path, capsys) -> None:
    from mlxchat.cli import run

    write_tiny_gguf(tmp_path / "tiny.gguf", "gemma3", TYPES)
    assert run(["import", str(tmp_path / "tiny.gguf"), "--name", "tiny8", "--bits", "8"]) == 0
    assert "Imported tiny8" in capsys.readouterr().out
    assert run(["import", str(tmp_path / "tiny.gguf"), "--name", "t3", "--bits", "3"]) != 0
    assert "--bits 3 is not supported; choose one of 4, 5, 6, 8" in capsys.readouterr().err
    assert run(["import", str(tmp_path / "tiny.gguf"), "--name", "t", "--bits", "4", "--keep-float"]) != 0
    assert "contradict" in capsys.readouterr().err


def test_a_gguf_without_chat_template_is_a_base_model_answering_by_plain_completion(tmp_path: Path) -> None:
    import mlx_lm

    from mlxchat.models.discovery import import_gguf

    write_tiny_gguf(tmp_path / "base.gguf", "llama", TYPES)  # byte vocabulary, no turn tokens, no template
    ref = import_gguf(tmp_path / "base.gguf", "base")
    assert ref.base_model and ref.kind_label == "text · base model"
    _, tokenizer = mlx_lm.load(str(ref.path))
    messages = [{"role": "user", "content": "Once upon"}, {"role": "assistant", "content": "a time"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == "Once upon\n\na time"


def test_a_base_model_of_a_known_family_gets_its_turn_format_and_stops_at_its_end(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from mlxchat.models.tokenizer_from_gguf import write_tokenizer_files

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *[chr(c) for c in range(ord("a"), ord("z") + 1)], "Ġ"]
    metadata = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3, 3, 3] + [1] * 27,
        "tokenizer.ggml.merges": [],
        "tokenizer.ggml.eos_token_id": 0,
    }
    assert write_tokenizer_files(metadata, tmp_path) == [0, 2]  # <|endoftext|>, then ChatML's <|im_end|>
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_default_precision_keeps_exact_types_and_gives_q6_k_eight_bits(tmp_path: Path) -> None:
    """A Q4_K_M-like mix: Q4_K stays 4-bit, Q5_0 5-bit, Q8_0 8-bit (all exact); Q6_K is re-quantized to 8 bits."""
    import mlx.core as mx

    tensors = write_tiny_gguf(tmp_path / "m.gguf", "qwen2", TYPES)
    folder = convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
    stored = mx.load(str(folder / "model.safetensors"))
    expected_bits = {"Q4_K": 4, "Q5_0": 5, "Q8_0": 8, "Q6_K": 8}
    for gguf_name, (type_name, values) in tensors.items():
        if values.ndim != 2:
            continue
        layer = gguf_name.split(".")[1] if gguf_name.startswith("blk.") else None
        part = gguf_name.split(".")[-2]
        names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
                 "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
                 "ffn_down": "mlp.down_proj", "token_embd": "model.embed_tokens", "output": "lm_head"}  # fmt: skip
        name = f"model.layers.{layer}.{names[part]}" if layer else names[part]
        bits = stored[f"{name}.weight"].shape[-1] * 32 // values.shape[-1]
        assert bits == expected_bits[type_name], f"{gguf_name} ({type_name}) stored in {bits} bits"
