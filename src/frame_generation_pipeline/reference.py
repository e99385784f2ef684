"""Reference bundles: exact, lossless intermediate results a Go or Swift port can test itself against.

A bundle is a folder with `metadata.json` and, per sample frame i (spread over the video, first
and last included):

- `f{i:06d}_template.png`: the decoded template frame (lossless; ports need not match JPEG decoders)
- `f{i:06d}_landmarks.lms`: the template's landmark file as it was
- `f{i:06d}_parsing.png`: the parsing image (only when parsing is used)
- `f{i:06d}_input.npy`: the network input, float32 (1, 6, 320, 320)
- `f{i:06d}_audio.npy`: the audio window, float32 (1, *audio_shape)
- `f{i:06d}_output.npy`: the raw network output, float32 (1, 3, 320, 320)
- `f{i:06d}_frame.png`: the finished frame (lossless)

`verify_bundle` recomputes each stage from the bundle's own files: landmarks -> crop box,
template + box -> input, input + audio -> output (needs the checkpoint), template + box + output
(+ parsing) -> frame, and reports the largest difference of each.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from .audio_features import AudioFeatures
from .errors import InputFileError
from .frame_generator import FrameGenerator, InferenceModel, compose, prepare
from .image_processor import crop_box, read_image, read_landmarks
from .outputs import atomic_directory
from .templates import TemplateFrame, TemplateSet
from .version import __version__

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
STAGES = ("sha256", "landmarks", "input", "network", "frame")
#: Largest accepted difference per stage; the network stage's is a parameter of verify_bundle.
EXACT_STAGES = {"sha256": 0.0, "landmarks": 0.0, "input": 0.0, "frame": 0.0}


class BundleError(InputFileError):
    """A reference bundle is incomplete or malformed."""


def sample_indices(frame_count: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over 0..frame_count-1, first and last always included."""
    count = max(1, min(count, frame_count))
    return sorted({int(round(x)) for x in np.linspace(0, frame_count - 1, count)})


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise BundleError(path, "PNG encoding failed")
    encoded.tofile(path)


def write_bundle(
    generator: FrameGenerator,
    templates: TemplateSet,
    features: AudioFeatures,
    output_dir: str | os.PathLike[str],
    num_sample_frames: int = 10,
    start_frame: int = 0,
    checkpoint_sha256: str = "",
) -> Path:
    """Render the whole video (streamed) and write a reference bundle of its sample frames."""
    frame_count = len(features)
    samples = sample_indices(frame_count, num_sample_frames)
    schedule = templates.schedule(frame_count, start_frame)
    records = []
    with atomic_directory(output_dir) as staging:
        for rendered in generator.render(templates, features, start_frame, keep_tensors=set(samples)):
            if rendered.network_input is None:
                continue
            stem = f"f{rendered.index:06d}"
            files = {
                "template": f"{stem}_template.png", "landmarks": f"{stem}_landmarks.lms",
                "input": f"{stem}_input.npy", "audio": f"{stem}_audio.npy",
                "output": f"{stem}_output.npy", "frame": f"{stem}_frame.png",
            }
            template = templates.load(rendered.template_index)
            _write_png(staging / files["template"], template.image)
            shutil.copyfile(templates.landmark_path(rendered.template_index), staging / files["landmarks"])
            if template.parsing is not None:
                files["parsing"] = f"{stem}_parsing.png"
                _write_png(staging / files["parsing"], template.parsing)
            np.save(staging / files["input"], rendered.network_input[None])
            np.save(staging / files["audio"], rendered.audio[None])
            np.save(staging / files["output"], rendered.network_output[None])
            _write_png(staging / files["frame"], rendered.image)
            records.append({
                "frame_index": rendered.index,
                "template_index": rendered.template_index,
                "crop_box": list(rendered.box),
                "files": files,
                "sha256": {key: _sha256(staging / name) for key, name in files.items()},
            })
        metadata = {
            "format_version": FORMAT_VERSION,
            "producer": f"frame-generation-pipeline {__version__}",
            "versions": {"torch": torch.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
            "mode": generator.mode.name,
            "fps": generator.mode.fps,
            "audio_shape": list(generator.mode.audio_shape),
            "feature_shape": [frame_count, *features.row_shape],
            "frame_count": frame_count,
            "template_count": len(templates),
            "start_frame": start_frame,
            "use_parsing": templates.parsing_dir is not None,
            "template_schedule": schedule,
            "checkpoint_sha256": checkpoint_sha256,
            "samples": records,
        }
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=1))
    logger.info("wrote a reference bundle of %d samples to %s", len(records), output_dir)
    return Path(output_dir)


@dataclass
class SampleReport:
    """Largest difference per stage for one sample (None: stage not checked)."""

    frame_index: int
    differences: dict[str, float | None] = field(default_factory=dict)


@dataclass
class VerificationReport:
    """The result of verify_bundle: per-sample differences and the limits they were held to."""

    bundle: Path
    limits: dict[str, float]
    samples: list[SampleReport]

    @property
    def failures(self) -> list[tuple[int, str, float]]:
        """(frame_index, stage, difference) of every stage over its limit."""
        return [
            (sample.frame_index, stage, value)
            for sample in self.samples
            for stage, value in sample.differences.items()
            if value is not None and value > self.limits[stage]
        ]

    @property
    def ok(self) -> bool:
        """True when every checked stage of every sample is within its limit."""
        return not self.failures


def read_metadata(bundle: str | os.PathLike[str]) -> dict:
    """The parsed `metadata.json` of a bundle; BundleError if it is missing or malformed."""
    path = Path(bundle) / "metadata.json"
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(path, "not found: not a reference bundle") from None
    except (OSError, ValueError) as exc:
        raise BundleError(path, f"unreadable ({exc})") from None
    if metadata.get("format_version") != FORMAT_VERSION or not isinstance(metadata.get("samples"), list):
        raise BundleError(path, f"expected format_version {FORMAT_VERSION} with a list of samples")
    return metadata


def _array(bundle: Path, name: str, shape: tuple[int, ...]) -> np.ndarray:
    path = bundle / name
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(path, f"unreadable array ({exc})") from None
    if array.shape != shape or array.dtype != np.float32:
        raise BundleError(path, f"expected float32 {shape}, found {array.dtype} {array.shape}")
    return array


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max(initial=0.0))


def verify_bundle(
    bundle: str | os.PathLike[str], model: InferenceModel | None = None, network_tolerance: float = 1e-4
) -> VerificationReport:
    """Recompute every sample of a bundle from its own files and measure each stage's difference.

    The network stage runs only when `model` is given (it must be of the bundle's mode); it is
    held to `network_tolerance`, every other stage must match exactly.
    """
    bundle = Path(bundle)
    metadata = read_metadata(bundle)
    audio_shape = tuple(metadata["audio_shape"])
    limits = {**EXACT_STAGES, "network": network_tolerance}
    reports = []
    for sample in metadata["samples"]:
        files = sample["files"]
        report = SampleReport(sample["frame_index"])
        report.differences["sha256"] = float(
            sum(_sha256(bundle / name) != sample["sha256"][key] for key, name in files.items())
        )
        box = crop_box(read_landmarks(bundle / files["landmarks"]), str(bundle / files["landmarks"]))
        report.differences["landmarks"] = _difference(np.array(box), np.array(sample["crop_box"]))
        parsing = read_image(bundle / files["parsing"]) if "parsing" in files else None
        template = TemplateFrame(sample["template_index"], read_image(bundle / files["template"]), box, parsing)
        prepared = prepare(template)
        network_input = _array(bundle, files["input"], (1, 6, 320, 320))
        report.differences["input"] = _difference(prepared.network_input[None], network_input)
        output = _array(bundle, files["output"], (1, 3, 320, 320))
        audio = _array(bundle, files["audio"], (1, *audio_shape))
        report.differences["network"] = (
            None if model is None else _difference(model.run(network_input, audio), output)
        )
        report.differences["frame"] = _difference(compose(prepared, output[0]), read_image(bundle / files["frame"]))
        reports.append(report)
    return VerificationReport(bundle, limits, reports)


def format_report(report: VerificationReport, stages: Iterable[str] = STAGES) -> str:
    """A table of the largest difference per sample and stage, and a verdict line."""
    stages = list(stages)
    lines = ["frame    " + "".join(f"{stage:>12}" for stage in stages)]
    for sample in report.samples:
        cells = []
        for stage in stages:
            value = sample.differences.get(stage)
            mark = "" if value is None or value <= report.limits[stage] else " !"
            cells.append(f"{'skipped' if value is None else f'{value:.3g}'}{mark:>2}".rjust(12))
        lines.append(f"{sample.frame_index:<9}" + "".join(cells))
    failed = sorted({stage for _, stage, _ in report.failures}, key=stages.index)
    lines.append("OK: every stage matches" if report.ok else f"MISMATCH in stage(s): {', '.join(failed)}")
    return "\n".join(lines)
