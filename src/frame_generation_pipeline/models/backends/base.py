"""What every inference model is (InferenceModel: what callers need of a U-Net, stand-ins included)
and every inference backend (InferenceBackend: one users choose by name), and the ladder of steps
(backend, precision) that precision `auto` walks, fastest first (`steps`).

A backend is one class in one file of this folder plus one line in the registry (`__init__.py`).
It says whether its library is installed, what it runs where and how fast it expects to be there
(`speeds`: one table per backend, each figure's source beside it), and its default batch size. Its
constructor is the one way to load it: `cls(checkpoint, mode, device, precision=...)` (the exported
backends also take `model_file`), which is what `load_backend` calls.
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...checks import missing_file
from ...contract import INPUT_SHAPE, ModeSpec
from ...devices import cpu_runs
from ...errors import CheckpointError, ConfigurationError
from ...files import describe_os_error, file_sha256
from ...precisions import BASELINE, PRECISIONS, get_precision, where_they_run


def checkpoint_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a checkpoint file; CheckpointError naming it when it cannot be read."""
    try:
        return file_sha256(path)
    except (FileNotFoundError, IsADirectoryError):
        raise CheckpointError(path, missing_file(path, "checkpoint file")) from None
    except OSError as exc:
        raise CheckpointError(path, f"cannot read ({describe_os_error(exc)})") from None


class InferenceModel(ABC):
    """A SyncTalk_2D 328 U-Net as renders, live sessions, the template cache and the fidelity check see
    it: what it is (name, mode, device, precision, checkpoint) and its calls on batches of host arrays
    (whole, and where it `splits` at the template half, a template's first visit and the rest).
    Every backend is one (InferenceBackend), and so is every stand-in for one.

    Attributes:
        mode: the audio mode of the loaded network.
        device: "cpu", "cuda" or "cuda:N".
        precision: the arithmetic the network runs in ("fp32", "fp16", "bf16").
        streams: calls to `run` that may usefully run at once, from as many threads.
        checkpoint_sha256: SHA-256 of the checkpoint the weights come from ("" where unknown).
    """

    #: The name users pass as --backend (a stand-in's own name otherwise).
    name: ClassVar[str]
    mode: ModeSpec
    device: str = "cpu"
    precision: str = "fp32"
    streams: int = 1
    checkpoint_sha256: str = ""

    def __init__(self, mode: ModeSpec, device: str = "cpu", precision: str = "fp32", streams: int = 1,
                 checkpoint_sha256: str = "") -> None:
        self.mode = mode
        self.device = device
        self.precision = precision
        self.streams = streams
        self.checkpoint_sha256 = checkpoint_sha256

    @abstractmethod
    def run(self, images: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """float32 (B, 6, 320, 320) and (B, *audio_shape) -> float32 (B, 3, 320, 320) in [0, 1]."""

    @property
    def splits(self) -> bool:
        """True when `first_visit` and `rest` can be run (what the template cache needs); False here."""
        return False

    def first_visit(self, images: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """What `run` gives, and the template half's skips x2..x6 of the same images, float32
        (B, C, H, W) each (network.SKIP_SHAPES): what the template cache keeps of a template."""
        raise ConfigurationError(f"{self.describe()} runs whole: it does not split at the template half")

    def rest(self, images: np.ndarray, skips: Sequence[np.ndarray], audio: np.ndarray) -> np.ndarray:
        """The rest of the network: the images, their `first_visit` skips and the audio -> what `run` gives."""
        raise ConfigurationError(f"{self.describe()} runs whole: it does not split at the template half")

    @property
    def exact(self) -> bool:
        """True when frames equal the contract bit for bit (only the torch backend, fp32, on the CPU)."""
        return False

    @property
    def identity(self) -> Hashable | None:
        """What makes two models' outputs interchangeable (backend, checkpoint, precision, device,
        mode); None where the checkpoint is unknown (such a model shares nothing it computes)."""
        if not self.checkpoint_sha256:
            return None
        return self.name, self.checkpoint_sha256, self.precision, self.device, self.mode.name

    def describe(self) -> str:
        """One phrase for logs and summaries, e.g. "onnxruntime fp32 on cpu"."""
        return f"{self.name} {self.precision} on {self.device}"


@dataclass(frozen=True)
class Speed:
    """How fast a backend expects to be in one precision on one device type: frames per second of
    the network alone at its default batch, as measured on `measured_on` (a named reference machine,
    docs/performance.md) or, where nothing was measured, a relative figure that says so."""

    frames_per_second: float
    measured_on: str


class InferenceBackend(InferenceModel):
    """An InferenceModel that users choose by name (`--backend`): loaded from a checkpoint, placed on
    the ladder by the speeds it declares, always able to split at the template half (ExportedBackend
    says when it pays)."""

    #: Python modules the backend needs, and the pip extra that installs them ("" when they are core).
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""
    #: (device type, precision) -> its expected Speed there, for every pair the backend runs; None where
    #: it runs unmeasured (only when asked for by name: `auto` never takes an arithmetic nobody measured).
    speeds: ClassVar[dict[tuple[str, str], Speed | None]] = {}
    #: Precisions the backend can run in, in the order `speeds` names them (made from it).
    precisions: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.precisions = tuple(dict.fromkeys(precision for _, precision in cls.speeds))

    @classmethod
    def installed(cls) -> bool:
        """True when every module the backend needs can be imported."""
        return all(importlib.util.find_spec(module) is not None for module in cls.requires)

    @classmethod
    def runs_on(cls, device_type: str) -> bool:
        """True when the backend runs on "cpu" or "cuda" in some precision."""
        return any(kind == device_type for kind, _ in cls.speeds)

    @classmethod
    def default_batch(cls, device_type: str) -> int:
        """Frames per network call when none is given (measured; docs/rendering.md, "Backends")."""
        return 8 if device_type == "cuda" else 1

    @property
    def splits(self) -> bool:
        """True: a backend runs `first_visit` and `rest`."""
        return True

    @abstractmethod
    def first_visit(self, images: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """What `run` gives, and the template half's skips x2..x6 (see InferenceModel.first_visit)."""

    @abstractmethod
    def rest(self, images: np.ndarray, skips: Sequence[np.ndarray], audio: np.ndarray) -> np.ndarray:
        """The rest of the network from the images, their skips and the audio (see InferenceModel.rest)."""

    def check_inputs(self, images: np.ndarray, audio: np.ndarray) -> None:
        """Raise ConfigurationError unless images and audio are batches of the mode's shapes."""
        if tuple(images.shape[1:]) != INPUT_SHAPE or tuple(audio.shape[1:]) != self.mode.audio_shape:
            raise ConfigurationError(
                f"expected images (B, {', '.join(map(str, INPUT_SHAPE))}) and audio "
                f"(B, {', '.join(map(str, self.mode.audio_shape))}) for mode {self.mode.name!r}, "
                f"got {tuple(images.shape)} and {tuple(audio.shape)}"
            )
        if images.shape[0] != audio.shape[0]:
            raise ConfigurationError(f"batch sizes differ: {images.shape[0]} images, {audio.shape[0]} audio windows")

    @classmethod
    def resolve_precision(cls, precision: str, device_type: str) -> str:
        """The concrete precision for `precision` ("auto": the top of this backend's own ladder, the
        baseline where it declares nothing faster); ConfigurationError if unsupported."""
        if precision == "auto":
            return next((step.precision for step in steps([cls], device_type, "auto")), BASELINE)
        if precision not in cls.precisions:
            where = f" ({where_they_run((precision,))})" if precision in PRECISIONS else ""
            raise ConfigurationError(
                f"precision {precision!r} is not one the {cls.name} backend runs (it runs {', '.join(cls.precisions)}): "
                f"drop --precision, or choose a backend that runs it{where}"
            )
        return precision


@dataclass(frozen=True)
class Step:
    """One step of the ladder: backend `backend` in `precision`, expected to run at `speed` (None: unmeasured)."""

    backend: str
    precision: str
    speed: Speed | None

    @property
    def checked(self) -> bool:
        """True when `auto` takes it only after the fidelity check passes (precisions.py)."""
        return get_precision(self.precision).checked


def runs_here(precision: str, device_type: str) -> bool:
    """True when a `device_type` device can run `precision` (on a CPU, one with the instructions it needs)."""
    return device_type != "cpu" or cpu_runs(get_precision(precision))


def _offered(name: str, speed: Speed | None, precision: str) -> bool:
    """True when a step in precision `name` declared at `speed` is one `precision` may take."""
    if precision != "auto":
        return name == precision
    return speed is not None and (name == BASELINE or get_precision(name).checked)


def steps(classes: Iterable[type[InferenceBackend]], device_type: str, precision: str) -> list[Step]:
    """The steps `precision` may take among the backends `classes` (registry order) on `device_type`,
    fastest first (ties keep that order). "auto": the measured steps in precisions this device runs
    that `auto` takes, the checked ones down to and including the fastest it takes unchecked (the
    baseline), where the ladder ends (none without such a step); a named precision: every backend
    that runs it here, those unmeasured last (the caller takes the first)."""
    found = [Step(cls.name, name, speed) for cls in classes for (kind, name), speed in cls.speeds.items()
             if kind == device_type and runs_here(name, device_type) and _offered(name, speed, precision)]
    found.sort(key=lambda step: 0.0 if step.speed is None else -step.speed.frames_per_second)
    if precision != "auto":
        return found
    end = next((index for index, step in enumerate(found) if not step.checked), None)
    return [] if end is None else found[:end + 1]
