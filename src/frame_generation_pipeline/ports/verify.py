"""Checking a reference bundle: every stage recomputed from the bundle's own files, its largest
difference reported with units, and which stages were checked and which were not."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..contract import INPUT_SHAPE, OUTPUT_SHAPE
from ..errors import BundleError
from ..files import file_sha256
from ..inputs.images import read_image
from ..inputs.landmarks import crop_box, read_landmarks
from ..inputs.templates import TemplateFrame
from ..render.generator import InferenceModel
from ..render.prepared import compose, prepare
from .reference import read_metadata


@dataclass(frozen=True)
class Stage:
    """One checked stage: what it recomputes, the unit of its difference, and its default limit."""

    name: str
    recomputes: str
    unit: str
    limit: float


STAGES = (
    Stage("sha256", "every file's hash", "files differing", 0.0),
    Stage("landmarks", "landmarks -> crop box", "px", 0.0),
    Stage("input", "template + box -> network input", "value", 0.0),
    Stage("network", "input + audio -> output", "value", 1e-4),
    Stage("frame", "template + output -> frame", "levels of 255", 0.0),
)


@dataclass
class SampleReport:
    """Largest difference per stage for one sample (None: stage not checked)."""

    frame_index: int
    differences: dict[str, float | None] = field(default_factory=dict)


@dataclass
class VerificationReport:
    """The result of verify_bundle: per-sample differences, the limits, and stages left unchecked (why)."""

    bundle: Path
    limits: dict[str, float]
    samples: list[SampleReport]
    skipped: dict[str, str] = field(default_factory=dict)

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


def _array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
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
    held to `network_tolerance`, every other stage must match exactly. A file the metadata names
    but the bundle lacks is a BundleError naming it.
    """
    bundle = Path(bundle)
    metadata = read_metadata(bundle)
    audio_shape = tuple(metadata["audio_shape"])
    limits = {stage.name: stage.limit for stage in STAGES} | {"network": network_tolerance}
    skipped = {} if model is not None else {"network": "no checkpoint given"}
    reports = []
    for sample in metadata["samples"]:
        files = {key: bundle / name for key, name in sample["files"].items()}
        missing = next((path for path in files.values() if not path.is_file()), None)
        if missing is not None:
            raise BundleError(missing, "is listed in metadata.json but missing from the bundle")
        report = SampleReport(sample["frame_index"])
        report.differences["sha256"] = float(sum(file_sha256(path) != sample["sha256"][key] for key, path in files.items()))
        box = crop_box(read_landmarks(files["landmarks"]), str(files["landmarks"]))
        report.differences["landmarks"] = _difference(np.array(box), np.array(sample["crop_box"]))
        parsing = read_image(files["parsing"]) if "parsing" in files else None
        prepared = prepare(TemplateFrame(sample["template_index"], read_image(files["template"]), box, parsing))
        network_input = _array(files["input"], (1, *INPUT_SHAPE))
        report.differences["input"] = _difference(prepared.network_input[None], network_input)
        output = _array(files["output"], (1, *OUTPUT_SHAPE))
        audio = _array(files["audio"], (1, *audio_shape))
        report.differences["network"] = None if model is None else _difference(model.run(network_input, audio), output)
        report.differences["frame"] = _difference(compose(prepared, output[0]), read_image(files["frame"]))
        reports.append(report)
    return VerificationReport(bundle, limits, reports, skipped)


def format_report(report: VerificationReport) -> str:
    """A table of the largest difference per sample and stage (with units), what was and was not
    checked, and a verdict line."""
    names = [stage.name for stage in STAGES]
    lines = [
        "frame    " + "".join(f"{stage.name:>16}" for stage in STAGES),
        "         " + "".join(f"{'(' + stage.unit + ')':>16}" for stage in STAGES),
    ]
    for sample in report.samples:
        cells = []
        for name in names:
            value = sample.differences.get(name)
            mark = "" if value is None or value <= report.limits[name] else " !"
            cells.append(f"{'-' if value is None else f'{value:.3g}'}{mark:>2}".rjust(16))
        lines.append(f"{sample.frame_index:<9}" + "".join(cells))
    checked = [stage for stage in STAGES if stage.name not in report.skipped]
    lines.append("checked: " + "; ".join(f"{s.name} ({s.recomputes}, limit {report.limits[s.name]:g})" for s in checked))
    if report.skipped:
        lines.append("not checked: " + "; ".join(f"{name} ({why})" for name, why in report.skipped.items()))
    failed = sorted({stage for _, stage, _ in report.failures}, key=names.index)
    verdict = f"OK: {len(checked)} of {len(STAGES)} stages checked, all match" if report.ok else f"MISMATCH in stage(s): {', '.join(failed)}"
    lines.append(verdict)
    return "\n".join(lines)
