"""Model specs resolve to the right local model, or to an error that names the path and what was expected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlxchat.models.discovery import check_weights, import_gguf, list_models, quantization_label, resolve_model
from mlxchat.models.errors import CorruptWeightsError, ModelError, ModelNotFoundError, NotAModelError

LLAMA = {"model_type": "llama", "torch_dtype": "bfloat16"}


def _hf_repo(hub: Path, repo_id: str, config: dict, model_folder, revision: str = "abc123") -> Path:
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return model_folder(repo / "snapshots" / revision, config)


def test_no_spec_gives_the_demo_model(demo_cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLXCHAT_CACHE_DIR", str(demo_cache_root))
    ref = resolve_model(None)
    assert (ref.name, ref.source, ref.kind, ref.quantization) == ("SmolLM2-135M-Instruct-Q4_1", "demo", "text", "4-bit (q4_1)")
    assert ref.size_bytes == (ref.path / "model.safetensors").stat().st_size
    assert resolve_model("demo") == ref


def test_local_folder(tmp_path: Path, model_folder) -> None:
    folder = model_folder(tmp_path / "my-model", LLAMA)
    ref = resolve_model(str(folder))
    assert (ref.name, ref.path, ref.source, ref.kind, ref.quantization) == ("my-model", folder, "folder", "text", "bf16")
    assert ref.size_bytes == (folder / "model.safetensors").stat().st_size


def test_vision_models_are_recognised(tmp_path: Path, model_folder) -> None:
    with_vision_config = model_folder(tmp_path / "a", {"model_type": "llama", "vision_config": {"model_type": "siglip"}})
    vision_only_type = model_folder(tmp_path / "b", {"model_type": "smolvlm"})
    assert resolve_model(str(with_vision_config)).kind == "vision"
    assert resolve_model(str(vision_only_type)).kind == "vision"


def test_hf_repo_id_in_the_hub_cache(isolated_dirs: Path, model_folder) -> None:
    snapshot = _hf_repo(isolated_dirs / "hf" / "hub", "mlx-community/Tiny-4bit", {**LLAMA, "quantization": {"group_size": 64, "bits": 4}}, model_folder)
    ref = resolve_model("mlx-community/Tiny-4bit")
    assert (ref.name, ref.path, ref.source, ref.quantization) == ("mlx-community/Tiny-4bit", snapshot, "hf-cache", "4-bit")


def test_hf_home_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_folder) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    snapshot = _hf_repo(tmp_path / "hf-home" / "hub", "org/model", LLAMA, model_folder)
    assert resolve_model("org/model").path == snapshot


def test_imported_model_by_name(isolated_dirs: Path, model_folder) -> None:
    folder = model_folder(isolated_dirs / "data" / "models" / "my-import", LLAMA)
    ref = resolve_model("my-import")
    assert (ref.name, ref.path, ref.source) == ("my-import", folder, "imported")


def test_import_gguf_converts_into_the_data_dir(isolated_dirs: Path, demo_gguf: Path) -> None:
    ref = import_gguf(demo_gguf, name="smol")
    assert (ref.name, ref.source, ref.quantization) == ("smol", "imported", "4-bit (q4_1)")
    assert ref.path == isolated_dirs / "data" / "models" / "smol"
    assert resolve_model("smol") == ref
    with pytest.raises(ModelError, match="already exists"):
        import_gguf(demo_gguf, name="smol")


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"nope does not exist"):
        resolve_model(str(tmp_path / "nope"))


def test_unknown_name_says_where_it_looked(isolated_dirs: Path) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("nobody/nothing")
    assert "nobody/nothing" in str(caught.value) and str(isolated_dirs / "hf" / "hub") in str(caught.value)


def test_folder_without_config_is_not_a_model(tmp_path: Path, model_folder) -> None:
    folder = model_folder(tmp_path / "bare", None)
    with pytest.raises(NotAModelError, match=r"bare has no config.json"):
        resolve_model(str(folder))


def test_config_without_model_type_is_not_a_model(tmp_path: Path, model_folder) -> None:
    folder = model_folder(tmp_path / "odd", {"hidden_size": 8})
    with pytest.raises(NotAModelError, match=r"config.json has no model_type"):
        resolve_model(str(folder))


def test_unknown_model_type_is_named(tmp_path: Path, model_folder) -> None:
    folder = model_folder(tmp_path / "future", {"model_type": "frobnicator"})
    with pytest.raises(NotAModelError, match=r"model_type 'frobnicator' in .*future/config.json is not supported"):
        resolve_model(str(folder))


def test_folder_without_weights_is_not_a_model(tmp_path: Path, model_folder) -> None:
    folder = model_folder(tmp_path / "empty", LLAMA, weights=False)
    with pytest.raises(NotAModelError, match=r"empty has no \*.safetensors"):
        resolve_model(str(folder))


def test_a_gguf_file_asks_to_be_imported(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(NotAModelError, match=r"model.gguf is a GGUF file.*import it"):
        resolve_model(str(path))


def test_check_weights_accepts_the_converted_demo(converted_demo: Path) -> None:
    assert check_weights(converted_demo) == [converted_demo / "model.safetensors"]


def test_check_weights_reports_a_truncated_file(tmp_path: Path, safetensors_writer) -> None:
    path = safetensors_writer(tmp_path / "model.safetensors", {"a": ("F32", (64, 64)), "b": ("F16", (8,))})
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 100)
    with pytest.raises(CorruptWeightsError, match=r"model.safetensors is truncated"):
        check_weights(tmp_path)


def test_check_weights_reports_a_damaged_header(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes((20).to_bytes(8, "little") + b"{not json at all!!!}" + bytes(64))
    with pytest.raises(CorruptWeightsError, match=r"model.safetensors has a damaged header"):
        check_weights(path)


def test_check_weights_reports_a_missing_shard(tmp_path: Path, safetensors_writer) -> None:
    safetensors_writer(tmp_path / "model-00001-of-00002.safetensors", {"a": ("F32", (2,))})
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(NotAModelError, match=r"model-00002-of-00002.safetensors"):
        check_weights(tmp_path)


def test_list_models_finds_every_source_and_skips_broken_folders(isolated_dirs: Path, model_folder) -> None:
    model_folder(isolated_dirs / "data" / "models" / "mine", {**LLAMA, "quantization": {"group_size": 64, "bits": 8}})
    model_folder(isolated_dirs / "data" / "models" / "broken", None)
    model_folder(isolated_dirs / "data" / "models" / ".mine.x.partial", LLAMA)
    _hf_repo(isolated_dirs / "hf" / "hub", "org/vlm", {"model_type": "smolvlm"}, model_folder)
    _hf_repo(isolated_dirs / "hf" / "hub", "org/pytorch-only", LLAMA, model_folder).joinpath("model.safetensors").unlink()
    found = {ref.name: ref for ref in list_models()}
    assert set(found) == {"SmolLM2-135M-Instruct-Q4_1", "mine", "org/vlm"}
    assert found["SmolLM2-135M-Instruct-Q4_1"].source == "demo"  # listed before its first conversion
    assert (found["mine"].source, found["mine"].quantization) == ("imported", "8-bit")
    assert (found["org/vlm"].source, found["org/vlm"].kind) == ("hf-cache", "vision")


def test_discovery_never_imports_mlx(isolated_dirs: Path) -> None:
    """The UI lists models through this module, so it must stay free of MLX and transformers."""
    code = (
        "import sys; from mlxchat.models.discovery import list_models; list_models(); "
        "heavy = [m for m in ('mlx.core', 'mlx_lm', 'mlx_vlm', 'transformers') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("bits", "file_type", "label"),
    [(4, "Q4_1", "4-bit (q4_1)"), (4, "Q4_K_M", "4-bit (q4_k_m)"), (8, "Q4_1", "8-bit (from q4_1)"),
     (8, "Q6_K", "8-bit (from q6_k)"), (8, "Q8_0", "8-bit (q8_0)"), (4, "F16", "4-bit")],
)
def test_an_imported_gguf_says_when_it_was_requantized(bits, file_type, label):
    config = {"quantization": {"bits": bits, "group_size": 32}, "gguf": {"file_type": file_type}}
    assert quantization_label(config, []) == label
