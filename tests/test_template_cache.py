"""The network's two halves and the template cache: the split is exact in torch and within its bound
exported, the cache never exceeds its budget and recomputes evicted entries equal, and one cache is
shared by two live sessions (the template half computed once per template)."""

from __future__ import annotations

import gc

import cv2
import numpy as np
import pytest

from frame_generation_pipeline import TemplateSet, UNetModel
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.contract import get_mode
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.live.session import StreamingSession
from frame_generation_pipeline.models.backends.base import InferenceModel
from frame_generation_pipeline.models.backends.onnxruntime_backend import OnnxRuntimeBackend
from frame_generation_pipeline.models.cache import export_path
from frame_generation_pipeline.models.onnx_files import onnx_metadata
from frame_generation_pipeline.render.cropped import crop_template
from frame_generation_pipeline.render.generator import FrameRenderer
from frame_generation_pipeline.render.lru import ByteLRU
from frame_generation_pipeline.render.template_cache import TemplateCache, run_network

from .test_live_session import world  # noqa: F401 (the live tests' templates, speech and encoder)

ENTRY_BYTES = 4 * (32 * 160**2 + 64 * 80**2 + 128 * 40**2 + 256 * 20**2 + 512 * 10**2)


@pytest.fixture(scope="module")
def exact_model(checkpoints):
    return UNetModel(checkpoints["ave"], "ave", device="cpu")


def _frames(model, templates, features, batch, cache):
    generator = FrameRenderer(model, batch_size=batch, template_cache=cache)
    return list(generator.iter_frames(templates, features))


@pytest.fixture(scope="module")
def unsplit(exact_model, templates_640, features):
    """The templates, the features (7 frames over 5 templates: the schedule returns to some) and the
    frames of the whole network each frame, one at a time (the exact path's frames do not depend on the batch)."""
    templates = TemplateSet.from_folder(templates_640, use_parsing=True)
    feats = AudioFeatures.load(features["ave"], "ave")
    return templates, feats, _frames(exact_model, templates, feats, 1, None)


@pytest.mark.parametrize("batch", [1, 2])  # 2: batches of first visits, of hits, and of both ([4, 3])
def test_the_cached_template_half_gives_the_unsplit_frames_bit_for_bit(exact_model, unsplit, batch):
    templates, feats, whole = unsplit
    cache = TemplateCache()
    cached = _frames(exact_model, templates, feats, batch, cache)
    assert all(np.array_equal(a, b) for a, b in zip(whole, cached, strict=True))
    used = len(set(templates.schedule(len(feats))))
    assert cache.computed == used and cache.hits == len(feats) - used > 0 and cache.nbytes == used * ENTRY_BYTES
    if batch == 2:  # a budget of two entries: evicted and computed again, still equal
        small = TemplateCache(2 * ENTRY_BYTES + 1)
        again = _frames(exact_model, templates, feats, batch, small)
        assert all(np.array_equal(a, b) for a, b in zip(whole, again, strict=True))
        assert small.evicted > 0 and small.computed > used and small.nbytes <= small.max_bytes and len(small) == 2


def test_the_exported_split_graphs_match_the_full_graph_and_carry_its_provenance(checkpoints, exports):
    model = OnnxRuntimeBackend(checkpoints["ave"], "ave", device="cpu")
    rng = np.random.default_rng(3)
    images = rng.random((3, 6, 320, 320), dtype=np.float32)
    audio = rng.standard_normal((3, *get_mode("ave").audio_shape)).astype(np.float32)
    output, skips = model.first_visit(images, audio)
    assert np.array_equal(output, model.run(images, audio)), "a first visit costs one whole network, with the same result"
    assert [s.shape for s in skips] == [(3, 32, 160, 160), (3, 64, 80, 80), (3, 128, 40, 40), (3, 256, 20, 20),
                                        (3, 512, 10, 10)]
    assert np.abs(model.rest(images, skips, audio) - model.run(images, audio)).max() <= 1e-4
    full = onnx_metadata(exports["ave"])
    for part in ("first", "rest"):
        metadata = onnx_metadata(export_path(model.checkpoint_sha256, model.mode, part))
        assert metadata["part"] == part and metadata["checkpoint_sha256"] == full["checkpoint_sha256"] == model.checkpoint_sha256
        assert metadata["mode"] == "ave"
    assert full["part"] == "full", "ports keep getting the whole network"


class Halves(InferenceModel):
    """A deterministic stand-in for a split network that counts the templates whose skips it computes
    and records each call (`first` for a whole network keeping skips, `rest`, `run`)."""

    mode, streams, name, precision, device, checkpoint_sha256, splits = get_mode("ave"), 1, "halves", "fp32", "cpu", "0", True

    def __init__(self):
        self.template_rows = 0
        self.calls = []

    @staticmethod
    def _skips(images):
        return (images[:, :3] * 0.5, images[:, 3:].mean(axis=1, keepdims=True))

    @staticmethod
    def _decode(skips, audio):
        level = 1 / (1 + np.exp(-audio.reshape(len(audio), -1).mean(axis=1)))
        return ((skips[0] + skips[1]) * level[:, None, None, None]).astype(np.float32)

    def first_visit(self, images, audio):
        self.template_rows += len(images)
        self.calls.append("first")
        skips = self._skips(images)
        return self._decode(skips, audio), skips

    def rest(self, images, skips, audio):
        self.calls.append("rest")
        return self._decode(skips, audio)

    def run(self, images, audio):
        self.calls.append("run")
        return self._decode(self._skips(images), audio)


def test_the_lru_never_exceeds_its_budget_and_recomputes_equal():
    model, rng = Halves(), np.random.default_rng(5)
    inputs = rng.random((6, 6, 8, 8), dtype=np.float32)
    audio = np.zeros((1, *get_mode("ave").audio_shape), np.float32)
    expected = [Halves().run(inputs[i : i + 1], audio) for i in range(6)]
    entry = inputs[0, :3].nbytes + inputs[0, :1].nbytes
    cache = TemplateCache(3 * entry + 1)
    recent, calls = [], []  # a naive LRU of three entries, and the network call each frame should make
    for index in [0, 1, 2, 0, 3, 4, 1, 0, 5, 2, 0, 1] * 2:
        output = cache.run(model, inputs[index : index + 1], audio, [index])
        assert cache.nbytes <= cache.max_bytes and len(cache) <= 3
        assert np.array_equal(output, expected[index])
        calls.append("rest" if index in recent else "first")
        recent = ([i for i in recent if i != index] + [index])[-3:]
    assert model.calls == calls, "a miss runs the network once (keeping the skips), a hit the rest alone"
    misses = calls.count("first")
    assert cache.computed == model.template_rows == misses and cache.evicted == misses - 3
    TemplateCache(0).run(model, inputs[:1], audio, [0])
    assert model.calls[-1] == "run" and model.template_rows == misses, "a budget of 0 keeps nothing"


def test_a_batch_with_a_new_template_runs_whole_and_keeps_only_the_new_ones():
    model, rng = Halves(), np.random.default_rng(6)
    inputs = rng.random((3, 6, 8, 8), dtype=np.float32)
    audio = rng.standard_normal((3, *get_mode("ave").audio_shape)).astype(np.float32)
    cache = TemplateCache()
    cache.run(model, inputs[:1], audio[:1], [0])
    mixed = cache.run(model, inputs[[0, 1, 1]], audio, [0, 1, 1])  # a kept template, a new one twice
    assert np.array_equal(mixed, Halves().run(inputs[[0, 1, 1]], audio))
    assert model.calls == ["first", "first"] and cache.computed == 2 and len(cache) == 2
    assert np.array_equal(cache.run(model, inputs[[1, 0]], audio[:2], [1, 0]), Halves().run(inputs[[1, 0]], audio[:2]))
    assert model.calls[-1] == "rest" and cache.hits == 3


def test_one_cache_shared_by_two_live_sessions_computes_each_template_once(world):  # noqa: F811
    model, cache = Halves(), TemplateCache()
    samples = world["speech"]["a"]
    slots, first_calls = [], []
    for _ in range(2):
        first_calls.append(len(model.calls))
        session = StreamingSession(model, world["templates"], world["encoder"], batch_size=3, template_cache=cache)
        session.push_audio(samples)
        session.end_of_speech()
        session.close()
        slots.append([slot.image for slot in session if slot.kind == "speech"])
    assert len(slots[0]) > len(world["templates"]), "the schedule comes back to templates"
    assert cache.computed == len(world["templates"]), "once per template, not per session"
    assert set(model.calls[first_calls[1]:]) == {"rest"}, "the second session finds every template kept"
    assert all(np.array_equal(a, b) for a, b in zip(*slots, strict=True))


def test_models_of_other_checkpoints_never_share_entries():
    first, second = Halves(), Halves()
    second.checkpoint_sha256 = "1"
    cache, rng = TemplateCache(), np.random.default_rng(9)
    audio = np.zeros((1, *get_mode("ave").audio_shape), np.float32)
    images = {model: rng.random((1, 6, 8, 8), dtype=np.float32) for model in (first, second)}
    for model in (first, second, first, second):
        assert np.array_equal(cache.run(model, images[model], audio, ["template 0"]), model.run(images[model], audio))
    assert cache.computed == 2 and cache.hits == 2


def test_the_byte_lru_replaces_keys_counts_and_refuses_what_cannot_fit():
    lru = ByteLRU(10, len)
    assert lru.put("a", "aaaa") and lru.put("b", "bbbb") and lru.put("a", "aa")  # replaced, not added twice
    assert (lru.nbytes, len(lru)) == (6, 2)
    assert lru.put("c", "cccccc") and lru.find("b") is None and lru.evicted == 1, "b was the least recently used"
    assert lru.find("a") == "aa" and (lru.hits, lru.misses) == (1, 1)
    assert not lru.put("d", "d" * 11) and lru.nbytes == 8, "larger than the budget: kept out, nothing evicted"


def test_a_template_folder_written_again_in_place_is_not_served_from_stale_entries(tmp_path):
    folder = synthetic.make_templates(tmp_path / "tpl", 2, 200, 160, parsing=False)
    model, cache = Halves(), TemplateCache()
    audio = np.zeros((1, *get_mode("ave").audio_shape), np.float32)

    def render() -> tuple[np.ndarray, np.ndarray]:  # as each farm job opens its templates again
        templates = TemplateSet.from_folder(folder)
        images = crop_template(templates.load(0)).network_input[None]
        return run_network(model, images, audio, cache, templates, [0]), Halves().run(images, audio)

    assert np.array_equal(*render()) and np.array_equal(*render()) and (cache.computed, cache.hits) == (1, 1)
    image = folder / "full_body_img" / "0.jpg"
    cv2.imwrite(str(image), 255 - cv2.imread(str(image)))  # same names, same count, another picture
    served, fresh = render()
    assert cache.computed == 2 and np.array_equal(served, fresh), "the new picture's template half, not the kept one"


def test_a_model_that_does_not_say_what_it_is_never_shares_the_entries_of_one_gone_before():
    class Bare(Halves):
        checkpoint_sha256 = ""  # does not say which checkpoint it is

    cache, audio = TemplateCache(), np.zeros((1, *get_mode("ave").audio_shape), np.float32)
    images = np.random.default_rng(4).random((1, 6, 8, 8), dtype=np.float32)
    for _ in range(3):  # each model collected before the next is made, maybe at the same address
        model = Bare()
        cache.run(model, images, audio, ["template 0"])
        cache.run(model, images, audio, ["template 0"])
        assert model.calls == ["first", "rest"]
        del model
        gc.collect()
    assert cache.computed == 3 and cache.hits == 3
