"""Instrumentation that records which threads run MLX code, and how many at once.

A Python profile hook sees every Python frame entered in MLX's own packages (`mlx.nn`, `mlx_lm`, `mlx_vlm`)
and in mlxchat's MLX-facing engine modules; the direct `mlx.core` calls those make (eval, async_eval,
synchronize, ...) are wrapped too, since C functions raise no profile events. A thread is "inside MLX" while it
has such a frame or call on its stack. Installed before the engine starts, so the owner thread inherits it.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from contextlib import contextmanager

MLX_MODULE_PREFIXES = ("mlx.", "mlx_lm", "mlx_vlm")
ENGINE_MLX_MODULES = (
    "mlxchat.engine.local.generation",
    "mlxchat.engine.local.vision",
    "mlxchat.engine.local.prompt_cache",
    "mlxchat.engine.local.loader",
)
WRAPPED_CORE_FUNCTIONS = ("eval", "async_eval", "synchronize", "clear_cache", "load", "get_peak_memory")


class MLXProbe:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth: Counter[int] = Counter()
        self.threads_seen: set[int] = set()
        self.thread_names: dict[int, str] = {}
        self.max_concurrent = 0

    @property
    def inside_now(self) -> int:
        with self._lock:
            return sum(1 for depth in self._depth.values() if depth > 0)

    def _enter(self) -> None:
        ident = threading.get_ident()
        with self._lock:
            self._depth[ident] += 1
            if self._depth[ident] == 1:
                self.threads_seen.add(ident)
                self.thread_names[ident] = threading.current_thread().name
                inside = sum(1 for depth in self._depth.values() if depth > 0)
                self.max_concurrent = max(self.max_concurrent, inside)

    def _leave(self) -> None:
        ident = threading.get_ident()
        with self._lock:
            if self._depth[ident] > 0:
                self._depth[ident] -= 1

    def _profile(self, frame, event, arg):
        if event not in ("call", "return"):
            return
        name = frame.f_globals.get("__name__", "")
        if name.startswith(MLX_MODULE_PREFIXES) or name in ENGINE_MLX_MODULES:
            if event == "call":
                self._enter()
            else:
                self._leave()

    def _wrap(self, function):
        probe = self

        def wrapped(*args, **kwargs):
            probe._enter()
            try:
                return function(*args, **kwargs)
            finally:
                probe._leave()

        wrapped.__wrapped__ = function
        return wrapped


@contextmanager
def probe_mlx():
    """Install the probe for the block; threads started inside the block inherit the profile hook."""
    import mlx.core as mx

    probe = MLXProbe()
    originals = {name: getattr(mx, name) for name in WRAPPED_CORE_FUNCTIONS}
    for name, function in originals.items():
        setattr(mx, name, probe._wrap(function))
    old_profile = sys.getprofile()
    threading.setprofile(probe._profile)
    sys.setprofile(probe._profile)
    try:
        yield probe
    finally:
        sys.setprofile(old_profile)
        threading.setprofile(None)  # type: ignore[arg-type]
        for name, function in originals.items():
            setattr(mx, name, function)
