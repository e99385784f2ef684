"""A self-contained package for a port or an app, and its verification without torch.

A package folder holds `unet.onnx`, `audio_encoder.onnx` (when an encoder was given), the template
frames and landmarks (`templates/`), per-template crop boxes (`crop_rectangles.json`:
`{"0": {"rect": [x1, y1, x2, y2]}, ...}`, x2 and y2 exclusive), a reference bundle (`bundle/`), the
features it was rendered from (`features.bin` + `features.bin.json`) and `manifest.json` (format,
mode, fps, opset, the schedule rule, every file's sha256 and size, library versions).
`verify_package` needs nothing but the package, onnxruntime, NumPy and OpenCV.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..contract import ModeSpec
from ..errors import BundleError
from ..files import atomic_directory, file_sha256
from ..inputs.features import AudioFeatures, write_feature_array
from ..inputs.templates import IMAGE_DIR, LANDMARK_DIR, PARSING_DIR, TemplateSet
from ..models.backends.base import InferenceBackend
from ..render.generator import FrameRenderer
from ..version import __version__
from .reference import library_versions, read_metadata, write_bundle

logger = logging.getLogger(__name__)

PACKAGE_FORMAT = 1
MANIFEST = "manifest.json"
SCHEDULE_RULE = ("frame i uses template ping-pong position i over templates start_frame..N-1: 1, 2, ..., N-1, N-2, "
                 "..., 0, 1, ... (docs/contract.md step 1)")
#: Frames rendered from the package may differ from the bundle's (torch) frames by this much per value.
RENDER_TOLERANCE = 2


class ExactPipeline(Protocol):
    """What writing a package needs of a loaded pipeline (FrameGenerationPipeline with the torch backend)."""

    mode: ModeSpec
    generator: FrameRenderer
    model: InferenceBackend

    def features(self, features: Any = None, audio: Any = None, audio_encoder: Any = None) -> AudioFeatures:
        """The features to render."""
        ...

    def export_model_to_onnx(self, output_path: str | os.PathLike[str], opset_version: int = 17) -> object:
        """Export the U-Net."""
        ...


def write_package(
    pipeline: ExactPipeline, template_dir: str | os.PathLike[str], output: str | os.PathLike[str],
    audio_encoder: str | os.PathLike[str] | None = None, audio: str | os.PathLike[str] | None = None,
    features: str | os.PathLike[str] | None = None, use_parsing: bool = False, samples: int = 5, opset: int = 17,
) -> Path:
    """Write a package folder from a pipeline on the exact backend (replaced as a whole; a folder of
    other files is refused)."""
    spec = pipeline.mode
    templates = TemplateSet.from_folder(template_dir, use_parsing)
    rows = pipeline.features(features, audio, audio_encoder)
    with atomic_directory(output, "package") as staging:
        logger.info("writing the package in %s, renamed to %s when complete", staging, output)
        pipeline.export_model_to_onnx(staging / "unet.onnx", opset)
        if audio_encoder is not None:
            from ..models.audio_encoder import AudioEncoder

            AudioEncoder(audio_encoder, device="cpu").export_to_onnx(staging / "audio_encoder.onnx", opset)
        _copy_templates(templates, staging / "templates")
        boxes = {str(k): {"rect": list(templates.box(k))} for k in range(len(templates))}
        (staging / "crop_rectangles.json").write_text(json.dumps(boxes, indent=1) + "\n")
        write_feature_array(rows.rows(), staging / "features.bin", "bin")
        write_bundle(pipeline.generator, templates, rows, staging / "bundle", samples, 0, pipeline.model.checkpoint_sha256)
        manifest = {
            "format_version": PACKAGE_FORMAT, "producer": f"frame-generation-pipeline {__version__}",
            "mode": spec.name, "fps": spec.fps, "opset": opset, "audio_shape": list(spec.audio_shape),
            "template_count": len(templates), "template_size": list(templates.size), "use_parsing": use_parsing,
            "schedule": SCHEDULE_RULE, "unet": {"file": "unet.onnx", "inputs": ["input", "audio"], "outputs": ["output"]},
            "audio_encoder": {"file": "audio_encoder.onnx", "inputs": ["mel"], "outputs": ["features"]}
            if audio_encoder is not None else None,
            "checkpoint_sha256": pipeline.model.checkpoint_sha256, "versions": library_versions(),
            "files": {str(path.relative_to(staging)): {"sha256": file_sha256(path), "bytes": path.stat().st_size}
                      for path in sorted(staging.rglob("*")) if path.is_file()},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return Path(output)


def _copy_templates(templates: TemplateSet, folder: Path) -> None:
    for name, source in ((IMAGE_DIR, templates.image_dir), (LANDMARK_DIR, templates.landmark_dir),
                         (PARSING_DIR, templates.parsing_dir)):
        if source is not None:
            shutil.copytree(source, folder / name)


@dataclass
class PackageReport:
    """What verify_package found: files whose hash or size differ, and the rendered samples."""

    package: Path
    bad_files: list[str] = field(default_factory=list)
    box_mismatches: list[int] = field(default_factory=list)
    frame_differences: dict[int, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every file is intact and every sample renders within RENDER_TOLERANCE."""
        return not self.bad_files and not self.box_mismatches and all(
            value <= RENDER_TOLERANCE for value in self.frame_differences.values())


def verify_package(package: str | os.PathLike[str]) -> PackageReport:
    """Check every file's hash, the crop boxes, and render the bundle's samples from the package
    alone (onnxruntime, NumPy, OpenCV: no torch, no checkpoint), comparing them with the bundle."""
    from ..inputs.images import read_image
    from ..inputs.templates import TemplateFrame
    from ..models.backends.onnxruntime_backend import OnnxRuntimeBackend
    from ..render.blend import Blend
    from ..render.cropped import compose, crop_template

    package = Path(package)
    try:
        manifest = json.loads((package / MANIFEST).read_text())
    except FileNotFoundError:
        raise BundleError(package / MANIFEST, "not found: not a package") from None
    except (OSError, ValueError) as exc:
        raise BundleError(package / MANIFEST, f"unreadable ({exc})") from None
    report = PackageReport(package)
    for name, expected in manifest["files"].items():
        path = package / name
        if not path.is_file() or path.stat().st_size != expected["bytes"] or file_sha256(path) != expected["sha256"]:
            report.bad_files.append(name)
    templates = TemplateSet.from_folder(package / "templates", manifest["use_parsing"])
    boxes = json.loads((package / "crop_rectangles.json").read_text())
    report.box_mismatches = [k for k in range(len(templates)) if list(templates.box(k)) != boxes[str(k)]["rect"]]
    model = OnnxRuntimeBackend(mode=manifest["mode"], model_file=package / manifest["unet"]["file"], streams=1)
    bundle = package / "bundle"
    metadata = read_metadata(bundle)
    blend = Blend.from_settings(metadata)
    for sample in metadata["samples"]:
        files = sample["files"]
        template = templates.load(sample["template_index"])
        cropped = crop_template(TemplateFrame(template.index, template.image, template.box, template.parsing))
        audio = np.load(bundle / files["audio"], allow_pickle=False)
        frame = compose(cropped, model.run(cropped.network_input[None], audio)[0], blend)
        expected = read_image(bundle / files["frame"])
        report.frame_differences[sample["frame_index"]] = int(np.abs(frame.astype(np.int16) - expected.astype(np.int16)).max())
    return report


def format_package_report(report: PackageReport) -> str:
    """The verification as lines, ending with a verdict."""
    lines = [f"files: {'all intact' if not report.bad_files else 'CHANGED or missing: ' + ', '.join(report.bad_files)}",
             f"crop boxes: {'match the landmarks' if not report.box_mismatches else f'differ for templates {report.box_mismatches}'}",
             "rendered from the package alone (onnxruntime), largest difference to the bundle per sample: "
             + ", ".join(f"frame {i}: {d}" for i, d in report.frame_differences.items()) + f" (limit {RENDER_TOLERANCE})",
             "OK: the package is complete and renders its reference" if report.ok else "MISMATCH"]
    return "\n".join(lines)
