"""Reference bundles: exact against the spec transcription, verified, and tampering detected."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from frame_generation_pipeline import FrameGenerationPipeline
from frame_generation_pipeline.app.cli import main
from frame_generation_pipeline.ports.reference import sample_indices

from . import spec_reference


@pytest.fixture(scope="module")
def bundle(checkpoints, features, templates_640, tmp_path_factory):
    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu", batch_size=2)
    path = tmp_path_factory.mktemp("bundles") / "bundle"
    pipeline.generate_reference_outputs(features["ave"], templates_640, path, num_sample_frames=3,
                                        start_frame=1, use_parsing=True)
    return path


def test_sample_indices_spread_with_first_and_last():
    assert sample_indices(100, 5) == [0, 25, 50, 74, 99]
    assert sample_indices(3, 10) == [0, 1, 2]
    assert sample_indices(1, 10) == [0]


def test_bundle_equals_the_spec_and_the_pipeline(bundle, checkpoints, features, templates_640):
    metadata = json.loads((bundle / "metadata.json").read_text())
    rows = np.load(features["ave"])
    keep = []
    naive = list(spec_reference.render(checkpoints["ave"], "ave", str(templates_640), rows, 1, True, keep=keep))
    assert metadata["mode"] == "ave" and metadata["fps"] == 25 and metadata["feature_shape"] == [7, 512]
    assert metadata["blend"] == "none" and "blend_width" not in metadata, "bundles record the exact paste"
    assert metadata["template_count"] == 5 and metadata["template_schedule"] == spec_reference.template_indices(7, 5, 1)
    samples = metadata["samples"]
    assert [s["frame_index"] for s in samples] == [0, 3, 6]
    for sample in samples:
        i, files = sample["frame_index"], sample["files"]
        assert sample["template_index"] == keep[i]["template"] and sample["crop_box"] == keep[i]["box"]
        assert np.array_equal(np.load(bundle / files["input"]), keep[i]["input"])
        assert np.array_equal(np.load(bundle / files["audio"]), keep[i]["audio"])
        assert np.array_equal(np.load(bundle / files["output"]), keep[i]["output"])
        frame = cv2.imread(str(bundle / files["frame"]))
        assert np.array_equal(frame, naive[i])


def test_verify_accepts_the_bundle(bundle, checkpoints, capsys):
    assert main(["verify-reference", str(bundle), "--checkpoint", str(checkpoints["ave"])]) == 0
    out = capsys.readouterr().out
    assert "OK: 5 of 5 stages checked, all match" in out and "not checked" not in out
    assert "(px)" in out and "(levels of 255)" in out and "(files differing)" in out


@pytest.mark.parametrize("stage, file_key", [("input", "input"), ("network", "output"), ("frame", "frame"), ("landmarks", "landmarks")])
def test_one_changed_value_is_rejected_with_its_stage(bundle, checkpoints, tmp_path, capsys, stage, file_key):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    sample = json.loads((copy / "metadata.json").read_text())["samples"][1]
    path = copy / sample["files"][file_key]
    if file_key in ("input", "output"):
        array = np.load(path)
        array[0, 1, 160, 160] += 0.01
        np.save(path, array)
    elif file_key == "frame":
        image = cv2.imread(str(path))
        image[10, 10, 0] ^= 1
        cv2.imwrite(str(path), image)
    else:
        lines = path.read_text().splitlines()
        lines[31] = f"{float(lines[31].split()[0]) + 2:.6f} {lines[31].split()[1]}"
        path.write_text("\n".join(lines) + "\n")
    assert main(["verify-reference", str(copy), "--checkpoint", str(checkpoints["ave"])]) == 1
    out = capsys.readouterr().out
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("MISMATCH") and stage in verdict


def test_verify_without_checkpoint_says_the_network_was_not_checked(bundle, capsys):
    assert main(["verify-reference", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "not checked: network (no checkpoint given)" in out
    assert out.strip().splitlines()[-1] == "OK: 4 of 5 stages checked, all match"


def test_verify_names_a_missing_sample_file(bundle, tmp_path, capsys):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    victim = json.loads((copy / "metadata.json").read_text())["samples"][2]["files"]["output"]
    (copy / victim).unlink()
    assert main(["verify-reference", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {copy / victim}: is listed in metadata.json but missing from the bundle\n"


def test_not_a_bundle_is_a_clean_error(tmp_path, capsys):
    assert main(["verify-reference", str(tmp_path)]) == 2
    assert "metadata.json: not found" in capsys.readouterr().err
