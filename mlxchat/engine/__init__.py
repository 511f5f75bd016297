"""Provides the headless engine: one owner thread for every MLX call, requests in, events out.

This package never imports Textual; `tests/test_import_hygiene.py` proves it.
"""

from .core import EngineState
from .local import Engine
from .errors import EngineClosed
from .events import (
    Busy,
    ContextWindow,
    ConversationPrepared,
    Draining,
    Event,
    Finished,
    ModelInfo,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    ModelUnloaded,
    PrefillProgress,
    Silence,
    Started,
    Stats,
    TextDelta,
    ThinkingDelta,
    ThinkingDone,
    Usage,
)
from .requests import (
    ChatRequest,
    LoadModel,
    Message,
    PrepareConversation,
    SamplingParams,
    UnloadModel,
    new_request_id,
)

__all__ = [
    "Busy",
    "ChatRequest",
    "ContextWindow",
    "ConversationPrepared",
    "Draining",
    "Engine",
    "EngineClosed",
    "EngineState",
    "Event",
    "Finished",
    "LoadModel",
    "Message",
    "PrepareConversation",
    "ModelInfo",
    "ModelLoaded",
    "ModelLoadFailed",
    "ModelLoading",
    "ModelUnloaded",
    "PrefillProgress",
    "SamplingParams",
    "Silence",
    "Started",
    "Stats",
    "TextDelta",
    "ThinkingDelta",
    "ThinkingDone",
    "UnloadModel",
    "Usage",
    "new_request_id",
]
