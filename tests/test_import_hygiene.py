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


LOADED_AFTER_THE_FIRST_FRAME = (
    "pydantic",  # typer checks option values with it; the chat screen's options are read without typer
    "mlxchat.ui.screens.model_picker",
    "mlxchat.ui.screens.settings",
    "mlxchat.ui.screens.conversations",
    "mlxchat.ui.screens.file_picker",
    "mlxchat.ui.screens.dialogs",
    "mlxchat.ui.screens.help",
    "mlxchat.ui.screens.unsaved",
    "mlxchat.models.hub",
    "mlxchat.models.discovery",
    "mlxchat.ui.widgets.message",  # a new chat draws no message: its Markdown comes with the first one
    "textual.widgets._markdown",
    "markdown_it",
    "pygments.lexers",  # the code fences' lexers are built on a thread of their own once the model has loaded
    "mlx",
    "mlx_lm",
)
"""Modules a plain `mlxchat -c` start must not import before its first frame: they serve other screens, other
commands or the model, which loads on the engine's thread once the screen is up."""


def test_the_launch_imports_only_what_the_first_frame_draws(tmp_path):
    """`mlxchat -c` in a real terminal with Python's import log on: every import logged before the first frame's
    text reached the terminal is the launch's; none of them is in LOADED_AFTER_THE_FIRST_FRAME."""
    from mlxchat.bench.pty_app import PtyApp, mlxchat_command

    env = {
        "PYTHONPROFILEIMPORTTIME": "1",
        "MLXCHAT_CONFIG_DIR": str(tmp_path / "config"),
        "MLXCHAT_DATA_DIR": str(tmp_path / "data"),
    }
    with PtyApp(mlxchat_command("-c"), env=env, columns=100, rows=30, cwd=tmp_path) as app:
        app.wait_for("Ask anything", 60)
        output = app.output
    before_first_frame = output[: output.index(b"Ask anything")].decode("utf-8", "replace")
    imported = {line.rsplit("|", 1)[-1].strip() for line in before_first_frame.splitlines() if "import time:" in line}
    assert "textual.app" in imported and "mlxchat.ui.screens.chat" in imported  # the log is there
    assert imported.isdisjoint(LOADED_AFTER_THE_FIRST_FRAME), sorted(imported & set(LOADED_AFTER_THE_FIRST_FRAME))
