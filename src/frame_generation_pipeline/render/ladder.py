"""Precision auto's one ladder: the steps (backend, precision) the backends declare for the device,
fastest first (models/backends: `ladder`), walked once per template set: a checked step is taken
where the fidelity check (render/fidelity.py) reaches its precision's threshold, else the next one
is loaded and tried, down to the last (the baseline), which is taken unchecked. `load_ladder` is
the one place a pipeline asks for its model: it goes down the layers once.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..contract import ModeSpec
from ..devices import check_precision, resolve_device
from ..inputs.templates import TemplateSet
from ..models.backends import InferenceBackend, ladder, load_backend
from ..models.backends.base import InferenceModel
from ..precisions import get_precision
from .fidelity import CheckInputs, check_inputs, exact_model, measured_fidelity
from .template_cache import templates_key

if TYPE_CHECKING:
    from ..models.speech_encoder import SpeechEncoder

logger = logging.getLogger(__name__)

#: The kind of model a PrecisionLadder hands out (a backend, for the pipeline).
Model = TypeVar("Model", bound=InferenceModel)


class PrecisionLadder(Generic[Model]):
    """The models `steps` load, fastest first (the first loaded now, `model`; the others when a walk
    reaches them, once each), and per template set the one it renders with: with `auto`, the first
    whose precision `auto` takes unchecked or whose check on the set reaches that precision's
    threshold (`exact()` loads the exact path for it), the last taken as it is; without, `model`.

    A set is decided once, by its first call: with the audio model then given (`speech`) the check
    feeds real speech, without one seeded windows (render/fidelity.py, "check_inputs")."""

    def __init__(self, steps: Sequence[Callable[[], Model]], exact: Callable[[], InferenceModel], auto: bool) -> None:
        self._steps, self._exact, self.auto = list(steps), exact, auto
        self._models: dict[int, Model] = {}
        self._decided: dict[Hashable, tuple[int, float | None]] = {}
        self._lock = threading.RLock()
        self.model = self._load(0)

    def _load(self, index: int) -> Model:
        with self._lock:
            if index not in self._models:
                self._models[index] = self._steps[index]()
            return self._models[index]

    def _threshold(self, index: int) -> float | None:
        """The dB step `index` must reach to be taken; None where it is taken unchecked."""
        if not self.auto or index == len(self._steps) - 1:
            return None
        return get_precision(self._load(index).precision).min_fidelity_db

    def model_for(self, templates: TemplateSet, speech: SpeechEncoder[Any] | None = None) -> Model:
        """The model `templates` render with (its set decided now where it was not yet)."""
        return self._load(self._decide(templates, speech)[0])

    def fidelity_db(self, templates: TemplateSet, speech: SpeechEncoder[Any] | None = None) -> float | None:
        """The check's dB of the step taken where it was checked, else of the last step that measured
        below its threshold; None where no check ran."""
        return self._decide(templates, speech)[1]

    def _decide(self, templates: TemplateSet, speech: SpeechEncoder[Any] | None) -> tuple[int, float | None]:
        key = templates_key(templates)
        with self._lock:
            if key not in self._decided:
                self._decided[key] = self._walk(templates, speech)
            return self._decided[key]

    def _walk(self, templates: TemplateSet, speech: SpeechEncoder[Any] | None) -> tuple[int, float | None]:
        """The step taken on `templates`, and the dB that decided it (None: none measured)."""
        below: float | None = None
        inputs: CheckInputs | None = None
        where, last = templates.image_dir.parent, len(self._steps) - 1
        for index in range(last):
            threshold = self._threshold(index)
            if threshold is None:
                return index, below
            model = self._load(index)
            inputs = inputs or check_inputs(templates, model.mode, speech)
            value = measured_fidelity(model, self._exact, inputs)
            if value >= threshold:
                logger.info("precision auto: %s, %.1f dB against the exact path on %s (inputs: %s)", model.describe(),
                            value, where, inputs.source)
                return index, value
            after = self._load(index + 1)
            logger.warning("%s measures %.1f dB against the exact path on %s (below %g; inputs: %s): %s %s with %s",
                           model.describe(), value, where, threshold, inputs.source,
                           "rendering in" if self._threshold(index + 1) is None else "trying", after.precision, after.name)
            below = value
        return last, below


def load_ladder(checkpoint: str | os.PathLike[str], mode: ModeSpec, device: str | None, backend: str, precision: str,
                model_file: str | os.PathLike[str] | None) -> PrecisionLadder[InferenceBackend]:
    """The ladder of backend `backend` in `precision` on `device` (a precision the device cannot run
    refused before anything loads): its first step loaded now, the others, and the exact path the
    check compares with, only when a walk needs them."""
    resolved = resolve_device(device)
    check_precision(precision, resolved)
    steps = [functools.partial(load_backend, checkpoint, mode, resolved, step.backend, step.precision, model_file)
             for step in ladder(backend, resolved, precision)]
    loaded: PrecisionLadder[InferenceBackend] = PrecisionLadder(
        steps, lambda: exact_model(checkpoint, mode, loaded.model), precision == "auto")
    return loaded
