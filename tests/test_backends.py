"""What every backend promises, checked on each installed one alike: it says what it is (name,
precision, checkpoint, identity), runs a batch to the contract's shapes and range within its
precision's promise of the exact path, whole and (where it splits) in halves, and refuses bad shapes."""

from __future__ import annotations

import numpy as np
import pytest

from frame_generation_pipeline import TemplateSet
from frame_generation_pipeline.contract import get_mode
from frame_generation_pipeline.errors import ConfigurationError
from frame_generation_pipeline.files import file_sha256
from frame_generation_pipeline.models.backends import BACKENDS, backend_class, load_backend
from frame_generation_pipeline.models.backends.base import InferenceBackend
from frame_generation_pipeline.models.backends.torch_backend import TorchBackend
from frame_generation_pipeline.precisions import BASELINE, PRECISIONS
from frame_generation_pipeline.render.arithmetic import to_pixels
from frame_generation_pipeline.render.cropped import crop_template

from .spec_reference import max_difference


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request, checkpoints, exports):
    """Each installed backend, loaded on the CPU in the baseline precision from the ave checkpoint."""
    if not backend_class(request.param).installed():
        pytest.skip(f"{request.param} is not installed")
    exports["ave"]  # the cached export the graph backends load (made once per session)
    return load_backend(checkpoints["ave"], "ave", "cpu", request.param, BASELINE)


@pytest.fixture(scope="module")
def inputs(templates_640):
    """Two templates' network inputs and two seeded audio windows of each of two utterances."""
    templates = TemplateSet.from_folder(templates_640)
    images = np.stack([crop_template(templates.load(index)).network_input for index in (0, 3)])
    rng = np.random.default_rng(11)
    audio, later = (rng.standard_normal((2, *get_mode("ave").audio_shape)).astype(np.float32) for _ in range(2))
    return images, audio, later


@pytest.fixture(scope="module")
def exact(checkpoints):
    """The exact path: torch in fp32 on the CPU."""
    return TorchBackend(checkpoints["ave"], "ave", device="cpu")


def _off_by(ours, theirs):
    """The largest per-value difference of two batches of network outputs, as pixels."""
    return max(max_difference(to_pixels(a), to_pixels(b)) for a, b in zip(ours, theirs, strict=True))


def test_a_backend_says_what_it_is(backend, checkpoints):
    assert isinstance(backend, InferenceBackend) and backend.name in BACKENDS and backend.streams >= 1
    assert (backend.precision, backend.device, backend.mode.name) == (BASELINE, "cpu", "ave")
    assert backend.checkpoint_sha256 == file_sha256(checkpoints["ave"])
    assert backend.identity == (backend.name, backend.checkpoint_sha256, BASELINE, "cpu", "ave")
    assert backend.describe() == f"{backend.name} {BASELINE} on cpu"
    assert set(type(backend).precisions) <= set(PRECISIONS), "it runs only declared precisions"


def test_a_backend_runs_within_its_precisions_promise_whole_and_in_halves(backend, exact, inputs):
    images, audio, later = inputs
    promise = PRECISIONS[backend.precision].max_difference
    output = backend.run(images, audio)
    assert output.shape == (2, 3, 320, 320) and output.dtype == np.float32 and 0 <= output.min() <= output.max() <= 1
    assert _off_by(output, exact.run(images, audio)) <= promise
    if backend.splits:  # a template's first visit keeps its half; a later frame runs the rest with its own audio
        first, skips = backend.first_visit(images, audio)
        assert _off_by(first, exact.run(images, audio)) <= promise
        assert _off_by(backend.rest(images, skips, later), exact.run(images, later)) <= promise


def test_a_backend_refuses_batches_of_other_shapes(backend, inputs):
    images, audio, _ = inputs
    for bad_images, bad_audio, message in ((images[:, :3], audio, "expected images"), (images, audio[:, :16], "expected images"),
                                           (images, audio[:1], "batch sizes differ")):
        with pytest.raises(ConfigurationError, match=message):
            backend.run(bad_images, bad_audio)
        if backend.splits:
            with pytest.raises(ConfigurationError, match=message):
                backend.first_visit(bad_images, bad_audio)
