"""The fidelity check of a faster arithmetic (bf16) on the user's own checkpoint and templates: a few
templates through it and through the exact path, the PSNR over the generated square against the
precision's threshold (precisions.py), kept in the export cache (keyed by checkpoint, backend,
precision and what the inputs were) so that it runs once per avatar.

Its audio windows are real speech where an audio model is at hand: the package's two seconds of
speech (audio/speech.py) through the session's own audio model (ave, hubert). Where none is (features
given as files or arrays, or the wenet mode, which has none here) they are seeded standard-normal
windows, which are fine for bf16's rounding but not for an arithmetic whose error depends on the
signal. The record and the log line say which inputs were used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio.speech import SHIPPED_SPEECH, shipped_speech
from ..contract import ModeSpec
from ..errors import OutputError
from ..files import atomic_file, describe_os_error
from ..inputs.features import AudioFeatures
from ..inputs.templates import TemplateSet
from ..models.backends.base import InferenceModel
from ..models.cache import cache_dir, entry_name
from ..models.cache_lock import entry_lock
from .arithmetic import to_pixels
from .cropped import crop_template

if TYPE_CHECKING:  # torch loads only where the exact path is needed
    from ..models.backends.torch_backend import TorchBackend
    from ..models.speech_encoder import SpeechEncoder

logger = logging.getLogger(__name__)

#: Templates the check runs, spread over the set (first, middle, last for three).
CHECK_TEMPLATES = 3
#: The audio windows of the check without an audio model: seeded standard-normal rows (features have about that scale).
_AUDIO_SEED = 31


def psnr(ours: np.ndarray, exact: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of uint8 images `ours` against `exact` (inf where equal)."""
    mse = float(np.mean((ours.astype(np.float64) - exact.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@dataclass(frozen=True)
class CheckInputs:
    """The network inputs of one check: `images` (B, 6, 320, 320) and `audio` (B, *audio_shape) windows,
    `kind` "speech" or "seeded" (part of the record's name) and `source`, what they are in words."""

    images: np.ndarray
    audio: np.ndarray
    kind: str
    source: str


def check_inputs(templates: TemplateSet, mode: ModeSpec, speech: SpeechEncoder[Any] | None = None,
                 count: int = CHECK_TEMPLATES) -> CheckInputs:
    """The inputs of the check: `count` templates spread over the set, each with a window of the
    package's speech through `speech` (an audio model of `mode`), spread over it; seeded windows
    where there is no such model."""
    chosen = sorted({round(i * (len(templates) - 1) / max(1, count - 1)) for i in range(count)})
    images = np.stack([crop_template(templates.load(index)).network_input for index in chosen])
    if speech is not None and speech.mode.name == mode.name:
        features = AudioFeatures(speech.features_from_samples(shipped_speech(), str(SHIPPED_SPEECH)), mode, str(SHIPPED_SPEECH))
        rows = [round((i + 1) * len(features) / (len(chosen) + 1)) for i in range(len(chosen))]
        source = f"real speech ({SHIPPED_SPEECH.name}) through the {mode.name} audio model {speech.path.name}"
        return CheckInputs(images, features.windows(rows), "speech", source)
    audio = np.random.default_rng(_AUDIO_SEED).standard_normal((len(chosen), *mode.audio_shape)).astype(np.float32)
    return CheckInputs(images, audio, "seeded", f"seeded random audio windows (no {mode.name} audio model at hand)")


def record_path(model: InferenceModel, inputs: CheckInputs) -> Path:
    """Where the check of `model` on `inputs` is kept: beside the checkpoint's export, named by the
    backend, precision, kind of inputs and a digest of them (other templates or another audio model
    have a record of their own)."""
    digest = hashlib.sha256(inputs.images.tobytes())
    digest.update(inputs.audio.tobytes())
    folder = cache_dir("fidelity") / entry_name(model.checkpoint_sha256, model.mode)
    return folder / f"{model.name}-{model.precision}-{inputs.kind}-{digest.hexdigest()[:16]}.json"


def _recorded(path: Path) -> float | None:
    """The dB a complete record at `path` holds; None where there is none (or an unreadable one)."""
    try:
        return float(json.loads(path.read_text())["psnr_db"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def measured_fidelity(model: InferenceModel, exact: Callable[[], InferenceModel], inputs: CheckInputs) -> float:
    """dB of `model`'s generated squares against the exact path (`exact()` loads it, only when the
    cache has no record) on `inputs`; measured once (by one process while others wait for it), then
    read from the cache."""
    path = record_path(model, inputs)
    value = _recorded(path)
    if value is not None:
        return value
    with contextlib.ExitStack() as held:
        with contextlib.suppress(OutputError):  # an unwritable cache: measured all the same (_measure warns)
            held.enter_context(entry_lock(path))
        value = _recorded(path)  # another process may have measured it while this one waited
        return _measure(model, exact, inputs, path) if value is None else value


def _measure(model: InferenceModel, exact: Callable[[], InferenceModel], inputs: CheckInputs, path: Path) -> float:
    """Measure the check and keep its record at `path` (written to a temporary, renamed into place)."""
    ours = np.stack([to_pixels(output) for output in model.run(inputs.images, inputs.audio)])
    theirs = np.stack([to_pixels(output) for output in exact().run(inputs.images, inputs.audio)])
    value = psnr(ours, theirs)
    record = {"psnr_db": value, "backend": model.name, "precision": model.precision, "templates": len(inputs.images),
              "inputs": inputs.source, "max_difference": int(np.abs(ours.astype(np.int16) - theirs).max())}
    try:
        with atomic_file(path) as temporary:
            temporary.write_text(json.dumps(record) + "\n")
    except (OSError, OutputError) as exc:  # the check still holds for this run
        reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        logger.warning("cannot keep the fidelity check in %s (%s): it runs again next time", path, reason)
    return value


def exact_model(checkpoint: str | os.PathLike[str], mode: ModeSpec, model: InferenceModel) -> TorchBackend:
    """The exact path of `model`'s checkpoint: `model` where it is exact, else torch in fp32 on the CPU, loaded now."""
    from ..models.backends.torch_backend import TorchBackend

    if isinstance(model, TorchBackend) and model.exact:
        return model
    return TorchBackend(checkpoint, mode, device="cpu")
