"""Checking a reference bundle: every stage recomputed from the bundle's own files, its largest
difference reported with units, and which stages were checked and which were not."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..audio.mel import log_mel_spectrogram, mel_windows
from ..contract import INPUT_SHAPE, OUTPUT_SHAPE
from ..errors import BundleError
from ..files import file_sha256
from ..inputs.features import AudioFeatures
from ..inputs.images import read_image
from ..inputs.landmarks import crop_box, read_landmarks
from ..inputs.templates import TemplateFrame
from ..render.blend import Blend
from ..render.cropped import compose, crop_template
from ..render.generator import InferenceModel
from .reference import read_metadata

if TYPE_CHECKING:
    from ..models.hubert import HubertEncoder


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
#: The audio path's stages, in bundles made from speech.
SPEECH_STAGES = (
    Stage("mel", "speech PCM -> log-mel", "value", 0.0),
    Stage("encoder_input", "log-mel -> encoder windows", "value", 0.0),
    Stage("encoder", "windows -> encodings", "value", 1e-4),
    Stage("audio_window", "encodings -> network audio input", "value", 0.0),
)
#: The hubert path's stages, in bundles of hubert features made from speech.
HUBERT_STAGES = (
    Stage("normalise", "speech PCM -> the processor's input values", "value", 0.0),
    Stage("hubert", "input values -> hidden states", "value", 1e-4),
    Stage("audio_window", "hidden states -> network audio input", "value", 0.0),
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
    stages: tuple[Stage, ...] = STAGES

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


def encoder_function(path: str | os.PathLike[str]) -> Callable[[np.ndarray], np.ndarray]:
    """The ave audio encoder at `path` as a function of mel windows (B, 1, 80, 16) -> (B, 512): a
    .pth on torch (CPU), or its `.onnx` export on onnxruntime; ModelFileError for an unreadable one."""
    if Path(path).suffix != ".onnx":
        from ..models.audio_encoder import AudioEncoder

        return AudioEncoder(path, device="cpu").encode_windows
    from ..models.onnx_files import onnx_metadata

    onnx_metadata(path)  # a missing or foreign file is named before onnxruntime sees it
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    return lambda windows: session.run(["features"], {"mel": windows})[0]


def verify_bundle(
    bundle: str | os.PathLike[str], model: InferenceModel | None = None, network_tolerance: float = 1e-4,
    encoder: Callable[[np.ndarray], np.ndarray] | None = None, hubert: HubertEncoder | None = None,
) -> VerificationReport:
    """Recompute every sample of a bundle from its own files and measure each stage's difference.

    The network stage runs only when `model` is given (it must be of the bundle's mode); it is
    held to `network_tolerance`, every other stage must match exactly. In a bundle made from
    speech the audio stages are checked too; the encoder stage only with `encoder` (windows ->
    encodings); in one of hubert features the model stages only with `hubert` (the loaded model).
    A file the metadata names but the bundle lacks is a BundleError naming it.
    """
    bundle = Path(bundle)
    metadata = read_metadata(bundle)
    audio_shape = tuple(metadata["audio_shape"])
    speech = metadata.get("speech") or {}
    is_hubert = bool(speech) and speech.get("kind") == "hubert"
    stages = STAGES + (HUBERT_STAGES if is_hubert else SPEECH_STAGES if speech else ())
    limits = {stage.name: stage.limit for stage in stages} | {"network": network_tolerance}
    skipped = {} if model is not None else {"network": "no checkpoint given"}
    blend = Blend.from_settings(metadata)
    if speech and not is_hubert and encoder is None:
        skipped["encoder"] = "no audio encoder given"
    if is_hubert and hubert is None:
        skipped.update(dict.fromkeys(("normalise", "hubert"), "no hubert model given"))
    audio = (_HubertCheck(bundle, speech, metadata["mode"], hubert) if is_hubert
             else _SpeechCheck(bundle, speech) if speech else None)
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
        cropped = crop_template(TemplateFrame(sample["template_index"], read_image(files["template"]), box, parsing))
        network_input = _array(files["input"], (1, *INPUT_SHAPE))
        report.differences["input"] = _difference(cropped.network_input[None], network_input)
        output = _array(files["output"], (1, *OUTPUT_SHAPE))
        window = _array(files["audio"], (1, *audio_shape))
        report.differences["network"] = None if model is None else _difference(model.run(network_input, window), output)
        report.differences["frame"] = _difference(compose(cropped, output[0], blend), read_image(files["frame"]))
        if audio is not None:
            report.differences.update(audio.check(sample, files, window[0], encoder))
        reports.append(report)
    return VerificationReport(bundle, limits, reports, skipped, stages)


class _SpeechCheck:
    """The audio stages of a bundle made from speech: PCM -> mel once, then per sample."""

    def __init__(self, bundle: Path, speech: dict) -> None:
        self.mel = np.load(bundle / speech["mel"], allow_pickle=False)
        self.mel_difference = _difference(log_mel_spectrogram(np.load(bundle / speech["pcm"], allow_pickle=False)), self.mel)
        self.windows = mel_windows(self.mel)

    def check(self, sample: dict, files: dict[str, Path], audio_window: np.ndarray,
              encoder: Callable[[np.ndarray], np.ndarray] | None) -> dict[str, float | None]:
        chosen = sample["encoder_windows"]
        inputs = np.load(files["encoder_input"], allow_pickle=False)
        outputs = np.load(files["encoder_output"], allow_pickle=False)
        expected = np.stack([self.windows[k] if k >= 0 else np.zeros_like(self.windows[0]) for k in chosen])
        used = [row for row, k in enumerate(chosen) if k >= 0]
        return {
            "mel": self.mel_difference,
            "encoder_input": _difference(expected, inputs),
            "encoder": None if encoder is None else _difference(encoder(inputs[used]), outputs[used]),
            "audio_window": _difference(outputs.reshape(audio_window.shape), audio_window),
        }


class _HubertCheck:
    """The hubert stages of a bundle: PCM -> input values -> hidden states once (with the model),
    then per sample the network audio input read from the hidden states."""

    def __init__(self, bundle: Path, speech: dict, mode: str, hubert: HubertEncoder | None) -> None:
        from ..models.hubert import rows_to_features

        arrays = {key: np.load(bundle / speech[key], allow_pickle=False) for key in ("pcm", "input_values", "hidden")}
        self.features = AudioFeatures(rows_to_features(arrays["hidden"]), mode, source=str(bundle / speech["hidden"]))
        self.whole: dict[str, float | None] = {"normalise": None, "hubert": None}
        if hubert is not None:
            self.whole["normalise"] = _difference(hubert.normalise(arrays["pcm"]), arrays["input_values"])
            hidden = hubert.hidden_states(arrays["input_values"], clip_samples=int(speech["clip_samples"]))
            self.whole["hubert"] = _difference(hidden, arrays["hidden"])

    def check(self, sample: dict, files: dict[str, Path], audio_window: np.ndarray,
              encoder: Callable[[np.ndarray], np.ndarray] | None) -> dict[str, float | None]:
        return {**self.whole, "audio_window": _difference(self.features.window(sample["frame_index"]), audio_window)}


def format_report(report: VerificationReport) -> str:
    """A table of the largest difference per sample and stage (with units), what was and was not
    checked, and a verdict line."""
    names = [stage.name for stage in report.stages]
    lines = [
        "frame    " + "".join(f"{stage.name:>16}" for stage in report.stages),
        "         " + "".join(f"{'(' + stage.unit + ')':>16}" for stage in report.stages),
    ]
    for sample in report.samples:
        cells = []
        for name in names:
            value = sample.differences.get(name)
            mark = "" if value is None or value <= report.limits[name] else " !"
            cells.append(f"{'-' if value is None else f'{value:.3g}'}{mark:>2}".rjust(16))
        lines.append(f"{sample.frame_index:<9}" + "".join(cells))
    checked = [stage for stage in report.stages if stage.name not in report.skipped]
    lines.append("checked: " + "; ".join(f"{s.name} ({s.recomputes}, limit {report.limits[s.name]:g})" for s in checked))
    if report.skipped:
        lines.append("not checked: " + "; ".join(f"{name} ({why})" for name, why in report.skipped.items()))
    failed = sorted({stage for _, stage, _ in report.failures}, key=names.index)
    verdict = (f"OK: {len(checked)} of {len(report.stages)} stages checked, all match" if report.ok
               else f"MISMATCH in stage(s): {', '.join(failed)}")
    lines.append(verdict)
    return "\n".join(lines)
