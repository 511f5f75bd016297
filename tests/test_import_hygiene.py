"""The headless engine never imports Textual, and the UI never imports MLX (checked in fresh interpreters)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import mlxchat

PACKAGE_ROOT = Path(mlxchat.__file__).parent


def modules_under(subpackage: str) -> list[str]:
    folder = PACKAGE_ROOT / subpackage
    prefix = f"mlxchat.{subpackage}."
    return [f"mlxchat.{subpackage}"] + [
        info.name for info in pkgutil.walk_packages([str(folder)], prefix=prefix) if not info.ispkg
    ]


def imported_after(modules: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(result.stdout.split())


def test_engine_modules_never_import_textual():
    loaded = imported_after(modules_under("engine"))
    assert not {m for m in loaded if m == "textual" or m.startswith("textual.")}


def test_importing_the_engine_api_loads_no_mlx_until_the_owner_thread_needs_it():
    loaded = imported_after(["mlxchat.engine"])
    assert "mlx.core" not in loaded and "mlx_lm" not in loaded


def test_ui_modules_never_import_mlx():
    loaded = imported_after(modules_under("ui"))
    assert not {m for m in loaded if m.split(".")[0] in ("mlx", "mlx_lm", "mlx_vlm")}


def test_the_import_linter_contracts_in_pyproject_hold():
    """The same layers, statically: every import in the source (lazy ones too), per `[tool.importlinter]`."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=PACKAGE_ROOT.parent, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
