"""Bad GGUF input is refused with a GGUFImportError that names the file and what is wrong."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mlxchat.models.errors import GGUFImportError
from mlxchat.models.gguf import convert_gguf
from mlxchat.models.gguf_reader import read_header

_LLAMA_META = {
    "general.architecture": "llama",
    "llama.block_count": 1,
    "llama.embedding_length": 32,
    "llama.feed_forward_length": 64,
    "llama.attention.head_count": 2,
    "llama.context_length": 128,
}


def test_unsupported_architecture_is_named(tmp_path: Path) -> None:
    import mlx.core as mx

    path = tmp_path / "tiny-gpt2.gguf"
    mx.save_gguf(str(path), {"token_embd.weight": mx.zeros((8, 4))}, {"general.architecture": "gpt2"})
    with pytest.raises(GGUFImportError) as caught:
        convert_gguf(path, tmp_path / "out")
    message = str(caught.value)
    assert "tiny-gpt2.gguf" in message and "'gpt2'" in message and "llama" in message
    assert not (tmp_path / "out").exists()


def test_unsupported_tensor_type_is_named_with_the_supported_list(tmp_path: Path, gguf_writer) -> None:
    """An integer tensor (I32) where a weight belongs: refused, naming the tensor, its type and what is supported."""
    int_rows = struct.pack("<32i", *range(32))
    path = gguf_writer(tmp_path / "ints.gguf", _LLAMA_META, [("blk.0.attn_q.weight", 26, (1, 32), int_rows)])
    with pytest.raises(GGUFImportError) as caught:
        convert_gguf(path, tmp_path / "out")
    message = str(caught.value)
    assert "ints.gguf: tensor blk.0.attn_q.weight has type I32, which is not supported" in message
    assert "Q4_K" in message and "Q6_K" in message and "IQ4_XS" in message


def test_file_truncated_inside_the_tensor_data(tmp_path: Path, demo_gguf: Path) -> None:
    path = tmp_path / "partial.gguf"
    path.write_bytes(demo_gguf.read_bytes()[: 3 * 1024 * 1024])
    with pytest.raises(GGUFImportError, match=r"partial\.gguf is truncated"):
        convert_gguf(path, tmp_path / "out")


def test_file_truncated_inside_the_header(tmp_path: Path, demo_gguf: Path) -> None:
    path = tmp_path / "stub.gguf"
    with open(demo_gguf, "rb") as source:
        path.write_bytes(source.read(4096))
    with pytest.raises(GGUFImportError, match=r"stub\.gguf is truncated"):
        read_header(path)


def test_non_gguf_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("this is not a model, just some text that is long enough")
    with pytest.raises(GGUFImportError, match=r"notes\.gguf is not a GGUF file"):
        convert_gguf(path, tmp_path / "out")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GGUFImportError, match=r"nowhere\.gguf does not exist"):
        convert_gguf(tmp_path / "nowhere.gguf", tmp_path / "out")


def test_header_reports_types_and_shapes(demo_gguf: Path) -> None:
    header = read_header(demo_gguf)
    assert header.architecture == "llama"
    embed = header.tensors["token_embd.weight"]
    assert (embed.type_name, embed.shape) == ("Q8_0", (49152, 576))
    assert header.tensors["blk.0.attn_q.weight"].type_name == "Q4_1"
