"""Determinism: batching, worker threads, network streams and the caches change no frame (and the
cropped-template cache stays bounded); the optimised torch path and the GPU precisions stay within
their stated bounds of the exact frames."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from frame_generation_pipeline import FrameGenerator, TemplateSet, UNetModel
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.errors import ConfigurationError
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.models.backends.base import InferenceModel
from frame_generation_pipeline.render.cropped import CroppedCache


@pytest.fixture(scope="module")
def three_templates(tmp_path_factory):
    return synthetic.make_templates(tmp_path_factory.mktemp("three"), 3, 640, 480, parsing=True)


@pytest.fixture(scope="module")
def model(checkpoints):
    return UNetModel(checkpoints["ave"], "ave", device="cpu")


def test_workers_cache_and_batching_change_no_frame(model, three_templates):
    templates = TemplateSet.from_folder(three_templates, use_parsing=True)
    features = AudioFeatures(synthetic.random_features("ave", 5, seed=2), "ave")
    plain = list(FrameGenerator(model, batch_size=1, workers=1, cache_bytes=0).iter_frames(templates, features))
    busy = list(FrameGenerator(model, batch_size=3, workers=3, cache_bytes=1 << 30).iter_frames(templates, features))
    assert len(plain) == len(busy) == 5
    for a, b in zip(plain, busy):
        assert np.array_equal(a, b)


def test_cache_hits_when_ping_pong_returns_and_stays_bounded(three_templates):
    templates = TemplateSet.from_folder(three_templates)
    cache = CroppedCache(templates, max_bytes=1 << 30)
    for k in templates.schedule(8):  # 1, 2, 1, 0, 1, 2, 1, 0
        cache.get(k)
    assert (cache.misses, cache.hits) == (3, 5)
    entry = cache.get(0)
    small = CroppedCache(templates, max_bytes=entry.nbytes * 2)
    for k in (0, 1, 2, 0):
        small.get(k)
    assert small.nbytes <= entry.nbytes * 2 and small.misses == 4


def test_stopping_early_ends_the_worker_threads(model, three_templates):
    templates = TemplateSet.from_folder(three_templates)
    features = AudioFeatures(synthetic.random_features("ave", 8, seed=2), "ave")
    frames = FrameGenerator(model, batch_size=1, workers=2).iter_frames(templates, features)
    next(frames)
    frames.close()
    assert not [t for t in threading.enumerate() if t.name.startswith(("frame-worker", "frame-network"))]


class _Paired(InferenceModel):
    """A model whose calls must meet in pairs: a call made alone times out and fails."""

    name = "paired"

    def __init__(self, model, streams):
        super().__init__(model.mode, streams=streams)
        self.model = model
        self.meeting = threading.Barrier(streams, timeout=20)
        self.threads = set()

    def run(self, images, audio):
        self.threads.add(threading.current_thread().name)
        self.meeting.wait()
        return self.model.run(images, audio)


def test_network_streams_run_at_once_and_change_no_frame(model, three_templates):
    templates = TemplateSet.from_folder(three_templates, use_parsing=True)
    features = AudioFeatures(synthetic.random_features("ave", 4, seed=3), "ave")
    alone = list(FrameGenerator(model, batch_size=1).iter_frames(templates, features))
    paired = _Paired(model, streams=2)
    together = list(FrameGenerator(paired, batch_size=1).iter_frames(templates, features))  # 4 calls, 2 pairs
    assert len(paired.threads) == 2 and all(name.startswith("frame-network") for name in paired.threads)
    assert len(alone) == len(together) == 4
    for a, b in zip(alone, together):
        assert np.array_equal(a, b)


def test_optimised_torch_path_stays_within_two_per_value(checkpoints, model, three_templates):
    optimised = UNetModel(checkpoints["ave"], "ave", device="cpu", optimize=True)
    assert optimised.optimized and not model.optimized
    templates = TemplateSet.from_folder(three_templates)
    features = AudioFeatures(synthetic.random_features("ave", 3, seed=4), "ave")
    exact = FrameGenerator(model).iter_frames(templates, features)
    fast = FrameGenerator(optimised, batch_size=3).iter_frames(templates, features)
    for a, b in zip(exact, fast, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_half_precision_needs_cuda(checkpoints):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigurationError, match="needs a CUDA device"):
        UNetModel(checkpoints["ave"], "ave", device="cpu", precision="fp16")
    with pytest.raises(ConfigurationError, match="is not one the"):
        UNetModel(checkpoints["ave"], "ave", device="cpu", precision="int8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_precisions_against_the_exact_cpu_frames(checkpoints, model, three_templates, precision):
    gpu = UNetModel(checkpoints["ave"], "ave", device="cuda", precision=precision)
    templates = TemplateSet.from_folder(three_templates)
    features = AudioFeatures(synthetic.random_features("ave", 4, seed=4), "ave")
    exact = list(FrameGenerator(model).iter_frames(templates, features))
    fast = list(FrameGenerator(gpu, batch_size=4).iter_frames(templates, features))
    worst = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(exact, fast))
    print(f"{precision}: max pixel difference to the exact CPU frames {worst}")
    assert worst <= {"fp32": 2, "fp16": 8, "bf16": 24}[precision]
