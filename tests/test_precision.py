"""Precision auto: one ladder of (backend, precision) steps, fastest first by the speeds the backends
declare, walked per template set with the fidelity check (on real speech through the session's
audio model where there is one) until a step passes or the baseline is reached: bf16 where the CPU
has it natively unless it measures below 45 dB against the exact path, fp32 on other CPUs. The
ladder and the check are tested on any CPU with stand-in models; the real bf16 path where the CPU has it."""

from __future__ import annotations

import argparse
import json
import logging
import math

import numpy as np
import pytest
import torch

from frame_generation_pipeline import FrameGenerationPipeline, TemplateSet
from frame_generation_pipeline.app.cli.arguments import add_model
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.contract import get_mode
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.models.audio_encoder import AudioEncoder
from frame_generation_pipeline.models.audio_models import AudioModels
from frame_generation_pipeline.models.backends import BACKENDS, backend_class
from frame_generation_pipeline.models.backends.base import InferenceBackend, InferenceModel, Speed, Step, steps
from frame_generation_pipeline.options import describe_precision
from frame_generation_pipeline.precisions import BASELINE, PRECISION_CHOICES, PRECISIONS, Precision, get_precision
from frame_generation_pipeline.render import fidelity
from frame_generation_pipeline.render import ladder as precision_ladder
from frame_generation_pipeline.render.ladder import PrecisionLadder


def test_psnr_against_a_transcription_of_its_definition():
    exact = np.arange(300, dtype=np.uint8).reshape(10, 10, 3)
    ours = exact.copy()
    assert fidelity.psnr(ours, exact) == math.inf
    ours[0, 0, 0] += 3  # one value off by 3 in 300: mse 9 / 300
    assert fidelity.psnr(ours, exact) == pytest.approx(10 * math.log10(255**2 / (9 / 300)))


class Shifted(InferenceModel):
    """A stand-in network of `checkpoint` in `precision` whose output is the exact one's plus `shift` (in [0, 1] units)."""

    name = "shifted"

    def __init__(self, precision, shift, checkpoint="cd" * 32):
        super().__init__(get_mode("ave"), precision=precision, checkpoint_sha256=checkpoint)
        self.shift = shift

    def run(self, images, audio):
        return np.clip(images[:, :3] * 0.5 + self.shift, 0, 1).astype(np.float32)


@pytest.fixture
def three_templates(tmp_path, monkeypatch):
    """A private cache and a set of three small templates."""
    monkeypatch.setenv("FRAME_GEN_CACHE_DIR", str(tmp_path / "cache"))
    return TemplateSet.from_folder(synthetic.make_templates(tmp_path / "tpl", 3, 200, 160, parsing=False))


def test_the_check_decides_on_any_cpu_with_stand_in_models(three_templates, caplog):
    """What the pipeline decides on bf16 hardware, decided here with stand-ins: a checked precision that
    measures below its threshold renders in the baseline (loaded once, said once), one above keeps its
    model; nothing is checked without auto or for an unchecked precision; a record is measured once."""
    templates, exact_loads, fallback_loads = three_templates, [], []

    def check(model, auto=True):
        def exact():
            exact_loads.append(model)
            return Shifted(BASELINE, 0.0)

        def fallback():
            fallback_loads.append(model)
            return Shifted(BASELINE, 0.0)

        return PrecisionLadder([lambda: model, fallback], exact, auto)

    far = check(Shifted("bf16", 0.1))  # 25.5 levels off: about 20 dB
    with caplog.at_level(logging.WARNING, logger="frame_generation_pipeline.render"):
        chosen = [far.model_for(templates) for _ in range(2)]
    assert far.fidelity_db(templates) < get_precision("bf16").min_fidelity_db
    assert chosen[0] is chosen[1] is not far.model and chosen[0].precision == BASELINE and len(fallback_loads) == 1
    assert len([r for r in caplog.records if "rendering in fp32" in r.getMessage()]) == 1
    near = check(Shifted("bf16", 0.0, checkpoint="ef" * 32))  # another checkpoint: a record of its own
    assert near.model_for(templates) is near.model and near.fidelity_db(templates) >= 45 and len(fallback_loads) == 1
    assert len(exact_loads) == 2
    again = check(Shifted("bf16", 0.1))
    assert again.fidelity_db(templates) == far.fidelity_db(templates) and len(exact_loads) == 2, "read from its record"
    assert again.model_for(templates).precision == BASELINE and len(fallback_loads) == 2
    for unchecked in (check(Shifted("bf16", 0.1), auto=False), check(Shifted(BASELINE, 0.1))):
        assert unchecked.fidelity_db(templates) is None and unchecked.model_for(templates) is unchecked.model
    assert len(exact_loads) == 2 and len(fallback_loads) == 2


class Fake(InferenceBackend):
    """A stand-in backend whose output is the exact one's plus `shift`; it runs whole."""

    name = "fake"
    shift = 0.0

    def __init__(self, precision):
        super().__init__(get_mode("ave"), precision=precision, checkpoint_sha256="cd" * 32)

    def run(self, images, audio):
        return np.clip(images[:, :3] * 0.5 + self.shift, 0, 1).astype(np.float32)

    def first_visit(self, images, audio):
        raise NotImplementedError

    def rest(self, images, skips, audio):
        raise NotImplementedError


class Fast(Fake):
    name, shift = "fast", 0.1  # about 20 dB
    speeds = {("cpu", "int8"): Speed(60.0, "stand-in"), ("cuda", BASELINE): Speed(5.0, "stand-in")}


class Middle(Fake):
    name, shift = "middle", 0.01  # 2.55 values off: about 40 dB
    speeds = {("cpu", "int8"): Speed(30.0, "stand-in"), ("cuda", "fp16"): None}


class Slow(Fake):
    name = "slow"
    speeds = {("cpu", BASELINE): Speed(10.0, "stand-in"), ("cpu", "int8"): Speed(5.0, "stand-in")}


def test_a_ladder_of_three_falls_back_step_by_step(three_templates, monkeypatch, caplog):
    """A precision registered once (int8, checked at 38 dB) and three backends that declare it: the
    ladder runs fastest first down to the baseline, the failing top is left for the middle step that
    passes, and the baseline is never loaded."""
    monkeypatch.setitem(PRECISIONS, "int8", Precision("int8", "", "", "stand-ins", min_fidelity_db=38.0))
    assert Fast.precisions == ("int8", BASELINE) and Middle.precisions == ("int8", "fp16")
    found = steps([Fast, Middle, Slow], "cpu", "auto")
    assert [(step.backend, step.precision) for step in found] == [("fast", "int8"), ("middle", "int8"), ("slow", BASELINE)]
    assert [step.checked for step in found] == [True, True, False], "the slow int8 step is past the baseline: left out"
    assert steps([Fast, Middle, Slow], "cuda", "auto") == [Step("fast", BASELINE, Speed(5.0, "stand-in"))]
    assert steps([Fast, Middle, Slow], "cuda", "fp16") == [Step("middle", "fp16", None)], "a named precision, unmeasured"
    assert steps([Fast, Middle, Slow], "cpu", "fp16") == [], "fp16 runs on CUDA only"
    loaded, classes = [], {cls.name: cls for cls in (Fast, Middle, Slow)}

    def load(step):
        def make():
            loaded.append(step.backend)
            return classes[step.backend](step.precision)
        return make

    ladder = PrecisionLadder([load(step) for step in found], lambda: Slow(BASELINE), auto=True)
    with caplog.at_level(logging.INFO, logger="frame_generation_pipeline.render"):
        chosen = ladder.model_for(three_templates)
    assert (chosen.name, chosen.precision) == ("middle", "int8") and loaded == ["fast", "middle"]
    assert 38 <= ladder.fidelity_db(three_templates) < 45
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2 and "trying int8 with middle" in said[0] and "precision auto: middle int8" in said[1], said
    assert all("seeded random audio windows" in line for line in said), "they say what the check fed"


def test_the_check_feeds_real_speech_through_the_audio_model_and_keeps_a_record_per_input(three_templates, encoder_path):
    """With the session's audio model the check's windows are the package's speech through it (and a
    record of their own); without one, seeded windows, said so in the record."""
    encoder, mode = AudioEncoder(encoder_path, device="cpu"), get_mode("ave")
    heard, seeded = fidelity.check_inputs(three_templates, mode, encoder), fidelity.check_inputs(three_templates, mode)
    rows = AudioFeatures(encoder.features_from_samples(fidelity.shipped_speech()), mode)  # 49 rows: a quarter, half, three quarters in
    assert heard.kind == "speech" and "real speech" in heard.source and np.array_equal(heard.audio, rows.windows([12, 24, 37]))
    assert seeded.kind == "seeded" and np.array_equal(heard.images, seeded.images)
    assert fidelity.check_inputs(three_templates, get_mode("hubert"), encoder).kind == "seeded", "a model of another mode"
    model, exact_loads = Shifted("bf16", 0.01), []

    def exact():
        exact_loads.append(1)
        return Shifted(BASELINE, 0.0)

    paths = [fidelity.record_path(model, inputs) for inputs in (heard, seeded)]
    assert paths[0] != paths[1] and "-speech-" in paths[0].name and "-seeded-" in paths[1].name
    values = [fidelity.measured_fidelity(model, exact, inputs) for inputs in (seeded, heard, heard)]
    assert len(exact_loads) == 2, "a seeded record is not read for speech, a speech record is"
    assert values[1] == values[2] and json.loads(paths[0].read_text())["inputs"] == heard.source
    held = AudioModels()
    assert held.latest() is None and held.describe(encoder) is not None and held.latest() is encoder, "what a pipeline passes"
    walked = PrecisionLadder([lambda: model, lambda: Shifted(BASELINE, 0.0)], exact, auto=True)
    assert walked.model_for(three_templates, encoder).precision == BASELINE and walked.fidelity_db(three_templates) == values[1]
    assert len(exact_loads) == 2, "the ladder fed the speech windows: their record was read"
def test_precisions_are_declared_once():
    """The CLI offers what the registry declares, and every backend runs only declared precisions."""
    parser = argparse.ArgumentParser()
    add_model(parser, required=False)
    for name in PRECISION_CHOICES:
        assert parser.parse_args(["--precision", name]).precision == name
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "int8"])  # not declared
    assert PRECISION_CHOICES == ("auto", *PRECISIONS) and BASELINE in PRECISIONS
    assert all(set(backend_class(name).precisions) <= set(PRECISIONS) for name in BACKENDS)


def test_a_cpu_without_bf16_runs_fp32_unchecked(checkpoints, exports, templates_640, monkeypatch):
    monkeypatch.setattr(precision_ladder, "exact_model", lambda *args: pytest.fail("nothing to check in fp32"))
    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu")
    templates = TemplateSet.from_folder(templates_640)
    assert (pipeline.backend, pipeline.model.precision) == ("onnxruntime", "fp32")
    assert pipeline.model_for(templates) is pipeline.model and pipeline.fidelity_db(templates) is None


@pytest.fixture(scope="module")
def hurt_checkpoint(tmp_path_factory):
    """A random checkpoint whose output layer is 2.5x as steep: bf16's rounding moves its frames by tens
    of values (4x as steep measured 27.5 dB over the generated square on a 2-core EPYC with AVX-512 BF16;
    steeper ones fail the export's own check against torch)."""
    state = synthetic.random_unet_state("ave", 1)
    state["outc.conv.weight"] = state["outc.conv.weight"] * 2.5
    path = tmp_path_factory.mktemp("hurt") / "steep.pth"
    torch.save(state, path)
    return path


def test_the_fidelity_check_sends_auto_to_fp32_below_45_db_once_per_avatar(native_bf16, hurt_checkpoint, templates_640,
                                                                            features, tmp_path, caplog, monkeypatch):
    templates = TemplateSet.from_folder(templates_640)
    pipeline = FrameGenerationPipeline(hurt_checkpoint, device="cpu")
    assert (pipeline.backend, pipeline.model.precision) == ("openvino", "bf16"), "auto takes bf16 where the CPU has it"
    assert not pipeline.model.splits, "OpenVINO's halves do not pay: the whole network runs"
    with caplog.at_level(logging.INFO, logger="frame_generation_pipeline"):
        result = pipeline.frames(tmp_path / "f", templates, features["ave"])
    below = [r for r in caplog.records if "rendering in fp32" in r.getMessage()]
    assert len(below) == 1 and below[0].levelno == logging.WARNING, [r.getMessage() for r in caplog.records]
    assert result.precision == "fp32" and result.backend == "onnxruntime" and result.fidelity_db < get_precision("bf16").min_fidelity_db
    assert "onnxruntime fp32 (bf16 measured" in result.summary()
    kept = fidelity.record_path(pipeline.model, fidelity.check_inputs(templates, pipeline.mode))
    assert kept.is_file() and kept.parent.name.startswith(pipeline.model.checkpoint_sha256[:24]), "kept beside the export"

    # a second start reads the kept check: the exact path is not loaded again
    monkeypatch.setattr(precision_ladder, "exact_model", lambda *args: pytest.fail("the check ran again"))
    again = FrameGenerationPipeline(hurt_checkpoint, device="cpu")
    assert again.fidelity_db(templates) == result.fidelity_db and again.model_for(templates).precision == "fp32"


def test_a_checkpoint_that_passes_keeps_bf16_and_says_its_db(native_bf16, checkpoints, exports, templates_640, features,
                                                             tmp_path):
    templates = TemplateSet.from_folder(templates_640)
    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu")
    model = pipeline.model
    # the random checkpoint's own measure varies with the CPU (40 dB on an EPYC, more with AMX): a kept
    # record of 50 dB stands for a checkpoint that passes, and is what the pipeline reads
    path = fidelity.record_path(model, fidelity.check_inputs(templates, model.mode))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"psnr_db": 50.0}\n')
    result = pipeline.frames(tmp_path / "f", templates, features["ave"])
    assert (result.backend, result.precision, result.fidelity_db) == ("openvino", "bf16", 50.0)
    assert describe_precision("openvino", "bf16", 50.0) in result.summary()


def test_the_video_command_gives_the_check_the_audio_model_it_loaded(checkpoints, exports, templates_640, encoder_path, speech,
                                                                    tmp_path, monkeypatch):
    """`frame-gen video --audio-encoder` loads the encoder before the U-Net for the features; the pipeline then
    holds it, so precision auto's check feeds real speech through it (as the API's renders and serve do)."""
    from frame_generation_pipeline.app.cli import main

    fed, decide = [], PrecisionLadder.model_for

    def model_for(ladder, templates, speech=None):
        fed.append(speech)
        return decide(ladder, templates, speech)

    monkeypatch.setattr(PrecisionLadder, "model_for", model_for)
    assert main(["video", "--checkpoint", str(checkpoints["ave"]), "--template-dir", str(templates_640), "--audio-encoder",
                 str(encoder_path), "--audio", str(speech["half"]), "--max-frames", "2", "--quiet",
                 "--output", str(tmp_path / "v.mp4")]) == 0
    assert fed and all(isinstance(given, AudioEncoder) and given.checkpoint_path == encoder_path for given in fed), fed
