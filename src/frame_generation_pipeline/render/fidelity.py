"""The fidelity check of a faster arithmetic (bf16) on the user's own checkpoint and templates: a
few templates through it and through the exact path, the PSNR over the generated square against the
precision's threshold (precisions.py), kept in the export cache (keyed by checkpoint, templates and
precision) so that it runs once per avatar; and the loading it needs (`load_checked`: the model
asked for, the exact path and the baseline model), so that a pipeline asks for its model once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from ..contract import ModeSpec
from ..devices import check_precision, resolve_device
from ..errors import OutputError
from ..files import atomic_file, describe_os_error
from ..inputs.templates import TemplateSet
from ..models.backends import InferenceBackend, load_backend
from ..models.backends.base import InferenceModel
from ..models.cache import cache_dir, entry_name
from ..models.cache_lock import entry_lock
from ..precisions import BASELINE, get_precision
from .arithmetic import to_pixels
from .cropped import crop_template
from .template_cache import templates_key

if TYPE_CHECKING:  # torch loads only where the exact path is needed
    from ..models.backends.torch_backend import TorchBackend

logger = logging.getLogger(__name__)

#: Templates the check runs, spread over the set (first, middle, last for three).
CHECK_TEMPLATES = 3
#: The audio windows of the check: seeded standard-normal rows (features have about that scale).
_AUDIO_SEED = 31


def psnr(ours: np.ndarray, exact: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of uint8 images `ours` against `exact` (inf where equal)."""
    mse = float(np.mean((ours.astype(np.float64) - exact.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def check_inputs(templates: TemplateSet, audio_shape: tuple[int, ...], count: int = CHECK_TEMPLATES) -> tuple[np.ndarray, np.ndarray]:
    """The network inputs of the check: `count` templates spread over the set, seeded audio windows."""
    chosen = sorted({round(i * (len(templates) - 1) / max(1, count - 1)) for i in range(count)})
    images = np.stack([crop_template(templates.load(index)).network_input for index in chosen])
    audio = np.random.default_rng(_AUDIO_SEED).standard_normal((len(chosen), *audio_shape)).astype(np.float32)
    return images, audio


def record_path(model: InferenceModel, images: np.ndarray, audio: np.ndarray) -> Path:
    """Where the check of `model` on these inputs is kept: beside the checkpoint's export, named by
    the backend, precision and a digest of the inputs (so other templates have a record of their own)."""
    digest = hashlib.sha256(images.tobytes())
    digest.update(audio.tobytes())
    folder = cache_dir("fidelity") / entry_name(model.checkpoint_sha256, model.mode)
    return folder / f"{model.name}-{model.precision}-{digest.hexdigest()[:16]}.json"


def _recorded(path: Path) -> float | None:
    """The dB a complete record at `path` holds; None where there is none (or an unreadable one)."""
    try:
        return float(json.loads(path.read_text())["psnr_db"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def measured_fidelity(model: InferenceModel, exact: Callable[[], InferenceModel], templates: TemplateSet) -> float:
    """dB of `model`'s generated squares against the exact path (`exact()` loads it, only when the
    cache has no record) on a few of `templates`; measured once (by one process while others wait
    for it), then read from the cache."""
    images, audio = check_inputs(templates, model.mode.audio_shape)
    path = record_path(model, images, audio)
    value = _recorded(path)
    if value is not None:
        return value
    with contextlib.ExitStack() as held:
        with contextlib.suppress(OutputError):  # an unwritable cache: measured all the same (_measure warns)
            held.enter_context(entry_lock(path))
        value = _recorded(path)  # another process may have measured it while this one waited
        return _measure(model, exact, images, audio, path) if value is None else value


def _measure(model: InferenceModel, exact: Callable[[], InferenceModel], images: np.ndarray, audio: np.ndarray, path: Path) -> float:
    """Measure the check and keep its record at `path` (written to a temporary, renamed into place)."""
    ours = np.stack([to_pixels(output) for output in model.run(images, audio)])
    theirs = np.stack([to_pixels(output) for output in exact().run(images, audio)])
    value = psnr(ours, theirs)
    record = {"psnr_db": value, "backend": model.name, "precision": model.precision, "templates": len(images),
              "max_difference": int(np.abs(ours.astype(np.int16) - theirs).max())}
    try:
        with atomic_file(path) as temporary:
            temporary.write_text(json.dumps(record) + "\n")
    except (OSError, OutputError) as exc:  # the check still holds for this run
        reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        logger.warning("cannot keep the fidelity check in %s (%s): it runs again next time", path, reason)
    return value


#: The kind of model a CheckedPrecision hands out (a backend, for the pipeline).
Model = TypeVar("Model", bound=InferenceModel)


class CheckedPrecision(Generic[Model]):
    """The model precision `auto` renders each template set with: `model` where its precision is not
    one `auto` checks (precisions.py) or `auto` was not asked for, else `model` where its check on the
    set reaches the precision's threshold, or the baseline (fp32) model `fallback()` loads (once)
    where it measures below (one warning line). `exact()` loads the exact path."""

    def __init__(self, model: Model, auto: bool, exact: Callable[[], InferenceModel], fallback: Callable[[], Model]) -> None:
        self.model, self._exact, self._load_fallback = model, exact, fallback
        #: The PSNR the check must reach; None where no check applies.
        self.threshold = get_precision(model.precision).min_fidelity_db if auto else None
        self._measured: dict[Hashable, float] = {}
        self._fallback: Model | None = None
        self._lock = threading.Lock()

    def fidelity_db(self, templates: TemplateSet) -> float | None:
        """The check's dB on `templates` (measured once per checkpoint and set); None where none applies."""
        if self.threshold is None:
            return None
        key = templates_key(templates)
        with self._lock:
            if key not in self._measured:
                value = self._measured[key] = measured_fidelity(self.model, self._exact, templates)
                if value < self.threshold:
                    logger.warning("%s measures %.1f dB against the exact path on %s (below %g): rendering in %s",
                                   self.model.describe(), value, templates.image_dir.parent, self.threshold, BASELINE)
                else:
                    logger.info("precision auto: %s, %.1f dB against the exact path on %s", self.model.describe(), value,
                                templates.image_dir.parent)
            return self._measured[key]

    def model_for(self, templates: TemplateSet) -> Model:
        """`model`, or the baseline one where the check on `templates` measures below the threshold."""
        db = self.fidelity_db(templates)
        if db is None or self.threshold is None or db >= self.threshold:
            return self.model
        with self._lock:
            if self._fallback is None:
                self._fallback = self._load_fallback()
            return self._fallback


def exact_model(checkpoint: str | os.PathLike[str], mode: ModeSpec, model: InferenceModel) -> TorchBackend:
    """The exact path of `model`'s checkpoint: `model` where it is exact, else torch in fp32 on the CPU, loaded now."""
    from ..models.backends.torch_backend import TorchBackend

    if isinstance(model, TorchBackend) and model.exact:
        return model
    return TorchBackend(checkpoint, mode, device="cpu")


def load_checked(checkpoint: str | os.PathLike[str], mode: ModeSpec, device: str | None, backend: str, precision: str,
                 model_file: str | os.PathLike[str] | None) -> CheckedPrecision[InferenceBackend]:
    """Backend `backend` in `precision` loaded once (a precision the device cannot run refused before
    anything loads), with the check `auto` asks for; the exact path and the baseline model are
    loaded from here too, and only when the check needs them."""
    check_precision(precision, resolve_device(device))
    model = load_backend(checkpoint, mode, device, backend, precision, model_file)
    return CheckedPrecision(model, precision == "auto", lambda: exact_model(checkpoint, mode, model),
                            lambda: load_backend(checkpoint, mode, model.device, backend, BASELINE, model_file))
