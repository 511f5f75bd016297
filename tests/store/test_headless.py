"""The store and settings are plain Python: importing them loads neither MLX nor Textual, and creates no files."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_store_and_settings_is_light_and_touches_no_folder(tmp_path):
    code = (
        "import sys, mlxchat.store, mlxchat.settings, mlxchat.exit\n"
        "print('\\n'.join(sys.modules))"
    )
    env = {**os.environ, **{f"MLXCHAT_{name}_DIR": str(tmp_path / name) for name in ("CACHE", "DATA", "CONFIG")}}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=True)
    roots = {name.split(".")[0] for name in result.stdout.split()}
    assert not roots & {"mlx", "mlx_lm", "mlx_vlm", "textual", "typer"}
    assert list(tmp_path.iterdir()) == []
