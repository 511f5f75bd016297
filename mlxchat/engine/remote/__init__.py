"""Provides the remote backend: the same engine contract over an OpenAI-compatible HTTP server.

Nothing here imports MLX; `tests/remote/test_remote_cli.py` proves it.
"""

from .engine import RemoteEngine, RemoteError, RemoteModel, remote_engine_factory

__all__ = ["RemoteEngine", "RemoteError", "RemoteModel", "remote_engine_factory"]
