"""Provides `Engine`: the local backend, where the owner thread does every MLX call.

Why a single owner thread: MLX streams belong to the thread that created them ("There is no Stream(gpu, 1) in
current thread"), and two threads encoding into Metal at once abort the process. So every MLX call — load,
template, prefill, decode, vision, cache work, unload — runs on the engine's one long-lived thread
(`EngineCore`), and a request that arrives while it works is refused at once.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from ..control import RequestControl
from ..core import EngineCore, EngineState, Sink
from ..errors import RequestError, describe_error
from ..events import Finished, ModelLoaded, ModelLoadFailed, ModelLoading, ModelUnloaded
from ..requests import ChatRequest, LoadModel, PrepareConversation, Request, UnloadModel
from ..vision_inputs import images_refused

__all__ = ["Engine", "EngineState", "Sink"]

if TYPE_CHECKING:
    from ..saved_caches import SavedCacheFolder
    from .scripted import Script

log = logging.getLogger(__name__)


class Engine(EngineCore):
    """The local MLX engine. Text turns run through mlx-lm, image turns through mlx-vlm, all on the owner
    thread; MLX itself is imported there, on first use, so the UI paints before it loads."""

    def __init__(
        self,
        sink: Sink,
        *,
        name: str = "mlxchat-engine",
        script: "Script | None" = None,
        saved_caches: "SavedCacheFolder | None" = None,
    ) -> None:
        """`script` forces the answer's tokens (tests and benchmarks only: see `scripted.py`); the model's compute
        stays real. `saved_caches` is where each conversation's prompt cache is saved after an answer and resumed
        from (after a restart too); None keeps caches in memory only."""
        super().__init__(sink, name=name)
        self._script = script
        self._saved_caches = saved_caches
        # Owner-thread state; never touched from other threads.
        self._loaded = None
        self._cache = None

    def _on_start(self) -> None:
        keep_compiled_kernels()  # before any MLX work on this thread
        from .prompt_cache import ConversationCache, SavedPromptCaches

        saved = SavedPromptCaches(self._saved_caches) if self._saved_caches is not None else None
        self._cache = ConversationCache(saved=saved)
        session_seed = os.environ.get("MLXCHAT_SEED")
        if session_seed:
            # MLX's random state is per thread, so only the owner thread can seed the draws it makes. A request's
            # own seed still wins for that request.
            import mlx.core as mx

            mx.random.seed(int(session_seed))

    def _handle(self, request: Request, control: RequestControl) -> Finished:
        if isinstance(request, ChatRequest):
            return self._chat(request, control)
        if isinstance(request, LoadModel):
            return self._load(request, control)
        return self._unload(request)

    def _answer(self, request: ChatRequest, control: RequestControl) -> Finished:
        loaded = self._loaded
        if loaded is None:
            raise RequestError("No model is loaded. Choose one with --model, or in the conversation settings (F3).")
        from .thinking import settle_resume

        request = settle_resume(request, loaded.thinking)  # both routes below read only this decision
        if request.has_images:
            if (refusal := images_refused(loaded.info)) is not None:
                raise RequestError(f"{refusal} Remove the attachments or switch to a vision model.")
            from .vision import run_vision_turn

            return run_vision_turn(loaded, request, control, self._emit, self._cache)
        from .generation import run_text_turn

        return run_text_turn(loaded, request, control, self._emit, self._cache, script=self._script)

    def _chat(self, request: ChatRequest, control: RequestControl) -> Finished:
        """Every chat turn gets concrete sampling values first: what the request left unset is the loaded
        model's own (its `generation_config.json`), else mlxchat's default, by `settings.resolve_sampling`."""
        if self._loaded is not None:
            request = with_model_sampling(request, self._loaded.info.sampling_defaults)
        return self._answer(request, control)

    def _prepare(self, hint: PrepareConversation) -> int:
        """Read the conversation's saved prompt cache into memory now (see `ConversationCache.preload`), so its
        next turn starts from it without reading the file. Nothing to do without a model or saved caches."""
        if self._loaded is None:
            return 0
        before = self._cache.cache
        held = self._cache.preload(hint.conversation_id, hint.kv_bits, hint.saved_as)
        if held and self._cache.cache is not before:  # read from disk just now: warm its shapes while they type
            from .generation import warm_up

            try:
                warm_up(self._loaded.text_model, self._cache.cache)
            except Exception:  # an optimisation: never a reason to fail, but the cache's state is unknown now
                log.exception("warming the prepared conversation's cache failed")
                self._cache.invalidate()
                return 0
        return held

    def _after_finished(self) -> None:
        """Save the answered conversation's prompt cache now that the answer is delivered."""
        try:
            self._cache.persist()
        except Exception:  # a cache is an optimisation: never let saving it take the engine down
            log.exception("saving the prompt cache failed")

    def _load(self, request: LoadModel, control: RequestControl) -> Finished:
        from . import loader

        label = request.model or "demo model"
        rid = request.request_id

        def progress(step: str, fraction: float | None) -> None:
            self._emit(ModelLoading(rid, label, step, fraction))

        progress("Resolving model", 0.0)
        try:
            ref = loader.resolve(request.model, progress)
        except Exception as exc:
            message = describe_error(exc)
            self._emit(ModelLoadFailed(rid, label, message, self._loaded_name()))
            return Finished(rid, "error", error=message)
        if control.cancelled:
            return Finished(rid, "cancelled")
        self._drop_model()
        started = time.perf_counter()
        try:
            loaded = loader.load(ref, progress)
        except Exception as exc:
            message = describe_error(exc)
            self._emit(ModelLoadFailed(rid, label, message, None))
            return Finished(rid, "error", error=message)
        if loaded.vision is None:
            from .generation import warm_up_decode

            try:
                warm_up_decode(loaded.text_model)
            except Exception:  # an optimisation: a model that cannot warm up is still loaded
                log.exception("warming up the loaded model failed")
        self._loaded = loaded
        from ..saved_caches import model_fingerprint

        self._cache.reset(loaded.text_model, model_fingerprint(loaded.info.path))
        self._model_info = loaded.info
        self._emit(ModelLoaded(rid, loaded.info, time.perf_counter() - started))
        return Finished(rid, "stop")

    def _unload(self, request: UnloadModel) -> Finished:
        self._drop_model()
        self._emit(ModelUnloaded(request.request_id))
        return Finished(request.request_id, "stop")

    def _loaded_name(self) -> str | None:
        return self._loaded.info.name if self._loaded is not None else None

    def _drop_model(self) -> None:
        import gc

        import mlx.core as mx

        self._loaded = None
        self._model_info = None
        self._cache.reset()
        gc.collect()
        mx.clear_cache()

    def _shutdown(self) -> None:
        try:
            if self._loaded is not None:
                import mlx.core as mx
                from mlx_lm.generate import generation_stream

                mx.synchronize(generation_stream)  # let a cancelled turn's last queued step finish before exit
            self._drop_model()
        except Exception:
            log.exception("unload at shutdown failed")



def keep_compiled_kernels() -> None:
    """Keep the GPU kernels MLX's CUDA build compiles at run time (PTX) in mlxchat's cache folder, unless the user
    set `MLX_PTX_CACHE_DIR`. MLX's own default, `/tmp/mlx/<version>/ptx`, is wiped at reboot, and the first turn
    after one compiles everything again (66 s for the first 2,400-token prompt on a fresh H200). MLX reads the
    variable once, at its first compile, and creates the folder itself; it does not add its version to a folder
    it is given, so the version is in the name here (another MLX's kernels must not be read). The CPU and Metal
    never read it."""
    import mlx.core as mx

    from mlxchat import paths

    os.environ.setdefault("MLX_PTX_CACHE_DIR", str(paths.cache_dir() / "mlx-ptx" / mx.__version__))


def with_model_sampling(request: ChatRequest, model_defaults: tuple[tuple[str, float], ...]) -> ChatRequest:
    """`request` with every sampling value decided (none left None)."""
    from dataclasses import replace

    from mlxchat.settings import resolve_sampling, sampling_values

    chosen = resolve_sampling(sampling_values(request.sampling), model=dict(model_defaults))
    sampling = replace(request.sampling, **{name: value for name, (value, _) in chosen.items()})
    return replace(request, sampling=sampling)
