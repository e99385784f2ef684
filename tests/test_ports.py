"""For port authors: the audio encoder's ONNX export and the frame-by-frame compare command."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from frame_generation_pipeline.models.audio_encoder import AudioEncoder

from .helpers import WITHOUT_TORCH, cli_status


@pytest.mark.parametrize("opset", [11, 17])
def test_audio_encoder_export_matches_torch(encoder_path, tmp_path, opset, capsys):
    assert cli_status(["export-onnx", "--quiet", "--audio-encoder", encoder_path, "--output", tmp_path / "enc.onnx",
                       "--opset", opset]) == 0
    graph = onnx.load(str(tmp_path / "enc.onnx"))
    assert graph.opset_import[0].version == opset
    assert [i.name for i in graph.graph.input] == ["mel"] and [o.name for o in graph.graph.output] == ["features"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in graph.metadata_props}
    assert '"n_mels": 80' in meta["mel"] and '"hop": 200' in meta["mel"] and len(meta["checkpoint_sha256"]) == 64
    windows = np.random.default_rng(opset).uniform(-4, 4, (5, 1, 80, 16)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "enc.onnx"), providers=["CPUExecutionProvider"])
    ours = session.run(["features"], {"mel": windows})[0]
    with torch.inference_mode():
        expected = AudioEncoder(encoder_path, device="cpu").network(torch.from_numpy(windows)).numpy()
    assert ours.shape == (5, 512) and np.abs(ours - expected).max() <= 1e-5 * max(1.0, float(np.abs(expected).max()))


def test_an_export_keeps_the_callers_model_as_it_was(encoder_path, tmp_path):
    """The export runs a model that is on the CPU in eval mode as it is, and a copy of any other: the
    caller's model keeps its mode and weights, and both exports are the same graph."""
    from frame_generation_pipeline.models.export import export_audio_encoder

    network = AudioEncoder(encoder_path, device="cpu").network
    weights = {name: value.clone() for name, value in network.state_dict().items()}
    export_audio_encoder(network, tmp_path / "eval.onnx")
    network.train()
    export_audio_encoder(network, tmp_path / "train.onnx")
    assert all(module.training for module in network.modules()), "the caller's training mode was changed"
    assert all(torch.equal(value, weights[name]) for name, value in network.state_dict().items())
    assert (tmp_path / "eval.onnx").read_bytes() == (tmp_path / "train.onnx").read_bytes()


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(4)]
    for name, change in (("a", None), ("same", None), ("near", 1), ("far", 90)):
        (root / name).mkdir()
        for i, frame in enumerate(frames):
            frame = frame.copy()
            if change is not None and i == 2:
                frame[10:20, 10:20] = np.clip(frame[10:20, 10:20].astype(int) + change, 0, 255)
            cv2.imwrite(str(root / name / f"{i:06d}.png"), frame)
    return root


@pytest.mark.parametrize("other, status, words", [("same", 0, "OK"), ("near", 0, "largest difference 1 levels"),
                                                   ("far", 1, "worst frames: 2 (")])
def test_compare_reports_psnr_and_the_worst_frames(renders, capsys, other, status, words):
    assert cli_status(["compare", renders / "a", renders / other, "--max-diff", "2"]) == status
    out = capsys.readouterr().out
    assert words in out and out.strip().splitlines()[-1].startswith("OK" if status == 0 else "DIFFERENT")


def test_compare_a_folder_against_a_bundle_and_videos(renders, checkpoints, features, templates_640, tmp_path, capsys):
    from frame_generation_pipeline import FrameGenerationPipeline, RenderOptions
    from frame_generation_pipeline.render.blend import NO_BLEND

    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="torch")
    pipeline.generate_reference_outputs(features["ave"], templates_640, tmp_path / "bundle", num_sample_frames=3)
    pipeline.frames(tmp_path / "frames", templates_640, features["ave"], options=RenderOptions(blend=NO_BLEND))  # upstream's paste
    assert cli_status(["compare", tmp_path / "frames", tmp_path / "bundle", "--max-diff", "0"]) == 0
    assert "frames: 7 and 7, 3 compared" in capsys.readouterr().out
    assert cli_status(["compare", tmp_path / "nothing", tmp_path / "bundle"]) == 2
    assert "not found" in capsys.readouterr().err


NO_TORCH = WITHOUT_TORCH + """
from frame_generation_pipeline.app.cli import main
sys.exit(main(["verify-package", sys.argv[1]]))
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory, checkpoints, encoder_path, templates_640, speech):
    root = tmp_path_factory.mktemp("package")
    assert cli_status(["package", "--quiet", "--checkpoint", checkpoints["ave"], "--template-dir", templates_640,
                       "--audio-encoder", encoder_path, "--audio", speech["half"], "--samples", "3",
                       "--output", root / "pkg"]) == 0
    return root / "pkg"


def test_a_package_holds_what_a_port_needs(package, templates_640):
    import json

    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["mode"] == "ave" and manifest["fps"] == 25 and manifest["opset"] == 17 and "ping-pong" in manifest["schedule"]
    for name in ("unet.onnx", "audio_encoder.onnx", "crop_rectangles.json", "features.bin", "features.bin.json",
                 "templates/full_body_img/0.jpg", "templates/landmarks/4.lms", "bundle/metadata.json"):
        assert name in manifest["files"] and manifest["files"][name]["bytes"] == (package / name).stat().st_size
    boxes = json.loads((package / "crop_rectangles.json").read_text())
    assert sorted(boxes, key=int) == [str(k) for k in range(5)] and len(boxes["0"]["rect"]) == 4


def test_a_package_verifies_without_torch_and_a_changed_file_is_caught(package, tmp_path, capsys):
    import shutil
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", NO_TORCH, str(package)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "files: all intact" in result.stdout and result.stdout.strip().endswith("renders its reference")
    differences = [int(part.split(": ")[1]) for part in result.stdout.split("per sample: ")[1].split(" (limit")[0].split(", ")]
    assert len(differences) == 3 and max(differences) <= 2
    copy = tmp_path / "pkg"
    shutil.copytree(package, copy)
    with open(copy / "templates" / "landmarks" / "2.lms", "a") as handle:
        handle.write("\n")
    assert cli_status(["verify-package", copy]) == 1
    out = capsys.readouterr().out
    assert "CHANGED or missing: templates/landmarks/2.lms" in out and out.strip().endswith("MISMATCH")


@pytest.fixture(scope="module")
def speech_bundle(tmp_path_factory, checkpoints, encoder_path, templates_640, speech):
    root = tmp_path_factory.mktemp("speech_bundle")
    assert cli_status(["reference", "--quiet", "--checkpoint", checkpoints["ave"], "--template-dir", templates_640,
                       "--audio-encoder", encoder_path, "--audio", speech["half"], "--samples", "2",
                       "--output-dir", root / "bundle"]) == 0
    return root / "bundle"


def test_an_unreadable_encoder_export_is_one_clear_line(speech_bundle, tmp_path, capsys):
    (tmp_path / "junk.onnx").write_text("not a model")
    for name, message in (("none.onnx", "model file not found"), ("junk.onnx", "not a readable ONNX model")):
        assert cli_status(["verify-reference", speech_bundle, "--audio-encoder", tmp_path / name]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {tmp_path / name}: {message}") and err.count("\n") == 1, err


def test_a_bundle_from_speech_verifies_every_audio_stage(speech_bundle, checkpoints, encoder_path, tmp_path, capsys):
    assert cli_status(["export-onnx", "--quiet", "--audio-encoder", encoder_path, "--output", tmp_path / "enc.onnx"]) == 0
    for encoder in (encoder_path, tmp_path / "enc.onnx"):
        assert cli_status(["verify-reference", speech_bundle, "--checkpoint", checkpoints["ave"],
                           "--audio-encoder", encoder]) == 0
        out = capsys.readouterr().out
        assert out.strip().splitlines()[-1] == "OK: 9 of 9 stages checked, all match"
        for stage in ("mel", "encoder_input", "encoder", "audio_window"):
            assert stage in out.splitlines()[0]
    assert cli_status(["verify-reference", speech_bundle]) == 0
    assert "not checked: network (no checkpoint given); encoder (no audio encoder given)" in capsys.readouterr().out


@pytest.mark.parametrize("victim, stage", [("speech_pcm.npy", "mel"), ("speech_mel.npy", "mel"),
                                           ("encoder_output", "audio_window")])
def test_a_changed_audio_stage_is_named(speech_bundle, encoder_path, tmp_path, capsys, victim, stage):
    import json
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(speech_bundle, copy)
    path = copy / victim if victim.endswith(".npy") else copy / json.loads((copy / "metadata.json").read_text())["samples"][1]["files"][victim]
    array = np.load(path)
    array.flat[array.size // 2] += 0.5
    np.save(path, array)
    assert cli_status(["verify-reference", copy, "--audio-encoder", encoder_path]) == 1
    verdict = capsys.readouterr().out.strip().splitlines()[-1]
    assert verdict.startswith("MISMATCH") and stage in verdict
