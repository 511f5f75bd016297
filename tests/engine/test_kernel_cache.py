"""MLX's CUDA build keeps the kernels it compiles at run time where a reboot does not wipe them: in mlxchat's cache
folder, unless the user chose a folder (`MLX_PTX_CACHE_DIR`). Only the variable can be checked on this CPU."""

from __future__ import annotations

import os

from mlxchat.engine import Engine


def started_and_closed(event_log) -> None:
    """An engine started and closed: its owner thread has run its start-up (`close` joins it)."""
    engine = Engine(event_log).start()
    assert engine.close(timeout_s=30)


def test_a_started_engine_keeps_mlxs_compiled_kernels_in_the_cache_folder(event_log, user_dirs, monkeypatch):
    import mlx.core as mx

    monkeypatch.setenv("MLX_PTX_CACHE_DIR", "")  # recorded, so the test's setting is undone after it
    monkeypatch.delenv("MLX_PTX_CACHE_DIR")
    started_and_closed(event_log)
    assert os.environ["MLX_PTX_CACHE_DIR"] == str(user_dirs["cache"] / "mlx-ptx" / mx.__version__)


def test_a_users_own_kernel_folder_is_kept(event_log, tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", str(tmp_path / "mine"))
    started_and_closed(event_log)
    assert os.environ["MLX_PTX_CACHE_DIR"] == str(tmp_path / "mine")
