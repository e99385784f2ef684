"""For port authors: the audio encoder's ONNX export and the frame-by-frame compare command."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from frame_generation_pipeline.models.audio_encoder import AudioEncoder

from .helpers import cli_status


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
    from frame_generation_pipeline import FrameGenerationPipeline

    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="torch")
    pipeline.generate_reference_outputs(features["ave"], templates_640, tmp_path / "bundle", num_sample_frames=3)
    pipeline.generate_frames_only(features["ave"], templates_640, tmp_path / "frames")
    assert cli_status(["compare", tmp_path / "frames", tmp_path / "bundle", "--max-diff", "0"]) == 0
    assert "frames: 7 and 7, 3 compared" in capsys.readouterr().out
    assert cli_status(["compare", tmp_path / "nothing", tmp_path / "bundle"]) == 2
    assert "not found" in capsys.readouterr().err
