"""Rest frames on disk: per template, the network's 320x320 pixels (uint8) for silence, kept in the
export cache so that the next start of the same avatar has them at once (live/rest.py computes them).

Folder: `rest/<sha>-<mode>-opset<N>/<backend>-<precision>-<digest>/<template>.npy` under the cache
root (models/cache.py lists and clears it per checkpoint), the digest naming the template files
(TemplateSet.identity: each file's size, modification time and inode), the audio model's files and
the device. A file is written to a temporary beside it and renamed into place: one that exists is
complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..files import atomic_file, describe_os_error
from ..inputs.templates import TemplateSet
from .backends.base import InferenceModel
from .cache import cache_dir, entry_name
from .speech_encoder import SpeechEncoder

logger = logging.getLogger(__name__)

#: What one rest frame is: the network's generated square as pixels.
REST_SHAPE = (320, 320, 3)


def _stamp(path: Path) -> list[Any]:
    """What identifies the audio model's file cheaply (its path, size and modification time); a folder's files'."""
    if path.is_dir():
        return [_stamp(item) for item in sorted(path.iterdir()) if item.is_file()]
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def rest_key(model: InferenceModel, templates: TemplateSet, encoder: SpeechEncoder[Any]) -> str | None:
    """The digest of what rest frames depend on beyond the checkpoint: the template images and
    landmarks, the audio model's files, the device; None where the model's checkpoint is unknown
    (a stand-in: its rest frames are kept in memory only) or the audio model's files cannot be read."""
    if model.identity is None:
        return None
    try:
        audio = _stamp(Path(encoder.path))
    except OSError:
        return None
    files = [str(templates.image_dir.resolve()), templates.identity]  # every file's size, mtime and inode
    identity = [model.checkpoint_sha256, model.mode.name, model.name, model.precision, str(model.device),
                encoder.mode.name, audio, files]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


class RestStore:
    """The rest frames of one model, template set and audio model on disk (`folder`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._warned = False

    @classmethod
    def of(cls, model: InferenceModel, templates: TemplateSet, encoder: SpeechEncoder[Any]) -> RestStore | None:
        """The store of `model` on `templates` with `encoder` (None where it cannot be keyed)."""
        key = rest_key(model, templates, encoder)
        if key is None:
            return None
        try:
            root = cache_dir("rest")
        except OutputError as exc:
            logger.warning("rest frames are kept in memory only: %s", exc)
            return None
        return cls(root / entry_name(model.checkpoint_sha256, model.mode) / f"{model.name}-{model.precision}-{key}")

    def path(self, template: int) -> Path:
        """Where template `template`'s rest frame is kept."""
        return self.folder / f"{template}.npy"

    def has(self, template: int) -> bool:
        """True when template `template`'s rest frame is on disk."""
        return self.path(template).is_file()

    def load(self, template: int) -> np.ndarray | None:
        """Template `template`'s rest frame, or None when it is not on disk (or not one)."""
        try:
            pixels = np.load(self.path(template), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return pixels if pixels.shape == REST_SHAPE and pixels.dtype == np.uint8 else None

    def save(self, template: int, pixels: np.ndarray) -> None:
        """Keep template `template`'s rest frame (a failure is said once per store and otherwise ignored)."""
        path = self.path(template)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as temporary, open(temporary, "wb") as handle:
                np.save(handle, pixels, allow_pickle=False)
        except (OSError, OutputError) as exc:
            if not self._warned:
                self._warned = True
                reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
                logger.warning("cannot keep rest frames in %s (%s): they are computed again next time", self.folder, reason)
