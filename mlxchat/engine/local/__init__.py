"""Provides the local backend: the engine whose owner thread runs every MLX call (load, template, prefill, decode,
vision, cache work, unload).

MLX itself is imported on the owner thread, never here, so `import mlxchat.engine.local` stays cheap and
MLX-free until a model loads.
"""

from .engine import Engine

__all__ = ["Engine"]
