"""Provides the vision route's memory of the last images it read: the decoded pictures, their files' digests and
what the model's image processor made of them, so a text follow-up about the same images pays for none again.

A follow-up in an image chat is still tokenized whole, images included: its token ids decide how much of the
prompt cache it can reuse, and each image's placeholder expands by the processor's tiling. What the processor
does to the pixels (resize, cut into tiles, normalize) depends only on the pictures, and it is the expensive part:
about 1 s for a 1024x768 photo through SmolVLM's processor on this CPU (13 tiles of 512 pixels), against ~5 ms
for the text. So the image processor is given a memory of its last calls, and the same picture files give the
very same picture objects (by path, size, modification and change times, and inode), which is what that memory
recognises.
The processor's pixel arrays are kept as MLX arrays, so they are not copied again either.

Everything here runs on the engine's owner thread. The memory holds the last `KEPT` results (a photo's tiles are
~40 MB of float32): the full conversation's and the one its context window fitted.
"""

from __future__ import annotations

import copy
import hashlib
import os
import stat
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ..vision_inputs import load_image

KEPT = 2


class ImageMemo:
    """Decoded pictures by file, and the image processor's output by the pictures it was given."""

    def __init__(self, processor: Any) -> None:
        self._pictures: dict[tuple, Any] = {}
        self._earlier_pictures: dict[tuple, Any] = {}
        self._digests: dict[tuple, bytes] = {}
        self._processed: list[tuple[tuple, list, Any]] = []  # (key, pictures kept alive for their ids, output)
        self._inside = False
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is not None and callable(getattr(image_processor, "preprocess", None)):
            _remember_calls(image_processor, self)

    def load_images(self, paths: list[Path]) -> list[Any]:
        """The pictures at `paths`, each decoded once while its file stays the same (`load_image`'s checks run
        on every new or changed file). Pictures asked for neither now nor in the call before are forgotten: a
        turn whose window leaves an image out asks for all of them, then for the ones it keeps."""
        pictures, kept = [], {}
        for path in paths:
            key = _file_key(path)
            picture = (self._pictures.get(key) or self._earlier_pictures.get(key)) if key is not None else None
            if picture is None:
                picture = load_image(path)
            if key is not None:
                kept[key] = picture
            pictures.append(picture)
        self._earlier_pictures, self._pictures = self._pictures, kept
        return pictures

    def fingerprint(self, paths: list[Path]) -> str:
        """The images' content, in order. Image placeholder tokens are the same whatever the picture, so a cache is
        reused only for the very same images (another picture in the same place must be read). Each file is
        hashed once while it stays the same: a phone photo is megabytes to read and hash every turn."""
        whole, kept = hashlib.sha256(), {}
        for path in paths:
            key = _file_key(path)
            digest = self._digests.get(key) if key is not None else None
            if digest is None:
                digest = hashlib.sha256(Path(path).read_bytes()).digest()
            if key is not None:
                kept[key] = digest
            whole.update(digest)
        self._digests = kept
        return whole.hexdigest()

    def call(self, work: Callable, args: tuple, kwargs: dict) -> Any:
        """`work(*args, **kwargs)` (the image processor's), or its output for the same pictures and options."""
        if self._inside:  # __call__ running preprocess (or the reverse): the outer call remembers
            return work(*args, **kwargs)
        pictures: list = []
        try:
            key = _call_key((args, kwargs), pictures)
        except _Unremembered:
            return work(*args, **kwargs)
        for index, (seen, _pictures, output) in enumerate(self._processed):
            if seen == key:
                self._processed.append(self._processed.pop(index))
                return copy.copy(output)  # callers pop entries (SmolVLM's rows and cols) from what they get
        self._inside = True
        try:
            output = _pixels_as_mlx(work(*args, **kwargs))
        finally:
            self._inside = False
        if not hasattr(output, "items"):  # a tuple or list: what a caller changes inside could not be kept apart
            return output
        self._processed = [*self._processed[-(KEPT - 1) :], (key, pictures, output)]
        return copy.copy(output)


def _remember_calls(image_processor: Any, memo: ImageMemo) -> None:
    """Route `image_processor`'s two entry points through `memo`: processors call it (`__call__`, which runs
    `preprocess` in transformers, or does the work itself as mlx-vlm's Qwen-VL one does) and mlx-vlm's own route
    calls `preprocess`. `__call__` is looked up on the class, so the instance gets a subclass of its own class
    (isinstance checks still hold); `preprocess` is an instance attribute."""
    own = type(image_processor)
    preprocess = image_processor.preprocess

    def remembered_call(self, *args, **kwargs):
        return memo.call(partial(own.__call__, self), args, kwargs)

    image_processor.__class__ = type(own.__name__, (own,), {"__call__": remembered_call, "__module__": own.__module__})
    image_processor.preprocess = lambda *args, **kwargs: memo.call(preprocess, args, kwargs)


class _Unremembered(Exception):
    """A preprocess call with an argument that cannot be told apart cheaply (an array): it runs as it is."""


def _pixels_as_mlx(output: Any) -> Any:
    """The processor's pixel arrays (3 or more axes: tiles, masks) as MLX arrays, once: its own conversion passes
    MLX arrays through, and copying a photo's 13 tiles from NumPy again cost ~90 ms a turn on this CPU. Smaller
    arrays (image grids, row and column counts) stay NumPy, as processors compute with them."""
    import mlx.core as mx
    import numpy as np

    if hasattr(output, "items") and hasattr(output, "__setitem__"):
        for name, value in list(output.items()):
            if isinstance(value, np.ndarray) and value.ndim >= 3:
                output[name] = mx.array(value)
    return output


def _file_key(path: Path) -> tuple | None:
    """What identifies a regular file's present content cheaply; None for anything else (left to `load_image`,
    which names the problem). The status change time is in it because the modification time is not enough: a
    same-size rewrite that puts the old modification time back (`cp -p`, `rsync -t`, `tar x`) keeps size and
    mtime, but every write and every `utime` sets the change time, and no one can set it back."""
    try:
        info = os.stat(Path(path).expanduser())
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (str(path), info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev)


def _call_key(value: Any, pictures: list) -> Any:
    """A hashable description of a preprocess call: pictures by identity (each kept in `pictures`, so the
    identity is not reused while remembered), plain values by value. Raises `_Unremembered` for anything else."""
    from PIL import Image

    if isinstance(value, Image.Image):
        pictures.append(value)
        return ("picture", id(value))
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_call_key(item, pictures) for item in value)
    if isinstance(value, dict):
        return tuple((str(name), _call_key(item, pictures)) for name, item in sorted(value.items()))
    raise _Unremembered
