"""Provides the errors the model layer raises.

They share one base class so the engine can catch every "this model cannot be used" case with one
`except ModelError` and show the message as it is: each message names the file or folder and says what
was expected, so it is fit for the user's eyes without a traceback.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class: a model could not be found, read or converted."""


class GGUFImportError(ModelError):
    """A GGUF file is unreadable, truncated, or uses an architecture or tensor type we cannot convert."""


class ModelNotFoundError(ModelError):
    """Nothing at the given path or name: no folder, imported model, cache entry or demo wheel."""


class NotAModelError(ModelError):
    """Something exists at the given path but is not a loadable MLX model folder."""


class CorruptWeightsError(ModelError):
    """A weights file is truncated or its header is damaged, so loading it would fail obscurely."""


class ModelWriteError(ModelError):
    """A converted model could not be written: the disk is full, or the folder is read-only. Nothing about the
    input is wrong, so callers report it as a failure of this machine, not as bad input."""
