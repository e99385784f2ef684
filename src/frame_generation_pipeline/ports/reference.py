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

ports/verify.py recomputes each stage from the bundle's own files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from ..audio.mel import SpeechStages
from ..contract import AUDIO_WINDOW, SAMPLE_RATE
from ..errors import BundleError, ConfigurationError
from ..files import atomic_directory, file_sha256, write_bytes
from ..inputs.features import AudioFeatures
from ..inputs.templates import TemplateSet
from ..models.hubert import HubertStages
from ..outputs.frames import encode_image
from ..render.blend import NO_BLEND, Blend
from ..render.generator import FrameRenderer, RenderedFrame
from ..version import __version__

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


#: The whole utterance's stages in a bundle made from speech.
SPEECH_FILES = {"pcm": "speech_pcm.npy", "mel": "speech_mel.npy"}
#: The same for hubert features: the decoded speech, the processor's input values, the hidden states.
HUBERT_FILES = {"pcm": "speech_pcm.npy", "input_values": "hubert_input.npy", "hidden": "hubert_hidden.npy"}


def _speech_sample(staging: Path, stem: str, files: dict, frame: int, speech: SpeechStages) -> dict:
    """Write sample `frame`'s encoder inputs and outputs for rows frame-8..frame+7 (zeros outside)."""
    count = len(speech.windows)
    chosen = [SpeechStages.window_of_row(row, count) for row in range(frame - AUDIO_WINDOW // 2, frame + AUDIO_WINDOW // 2)]
    windows = np.stack([speech.windows[k] if k >= 0 else np.zeros_like(speech.windows[0]) for k in chosen])
    encodings = np.stack([speech.encodings[k] if k >= 0 else np.zeros(512, np.float32) for k in chosen])
    files["encoder_input"], files["encoder_output"] = f"{stem}_encoder_input.npy", f"{stem}_encoder_output.npy"
    np.save(staging / files["encoder_input"], windows)
    np.save(staging / files["encoder_output"], encodings)
    return {"encoder_windows": chosen}


def read_metadata(bundle: str | os.PathLike[str]) -> dict:
    """The parsed `metadata.json` of a bundle; BundleError if it is missing or malformed (its blend
    settings included)."""
    path = Path(bundle) / "metadata.json"
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(path, "not found: not a reference bundle") from None
    except (OSError, ValueError) as exc:
        raise BundleError(path, f"unreadable ({exc})") from None
    if metadata.get("format_version") != FORMAT_VERSION or not isinstance(metadata.get("samples"), list):
        raise BundleError(path, f"expected format_version {FORMAT_VERSION} with a list of samples")
    try:
        Blend.from_settings(metadata)
    except (ConfigurationError, TypeError) as exc:
        raise BundleError(path, f"unusable blend settings ({exc})") from None
    return metadata


def sample_indices(frame_count: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over 0..frame_count-1, first and last always included."""
    count = max(1, min(count, frame_count))
    return sorted({int(round(x)) for x in np.linspace(0, frame_count - 1, count)})


def _write_png(path: Path, image: np.ndarray) -> None:
    write_bytes(path, encode_image(image, path))


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose arithmetic a bundle depends on (those loaded in this process)."""
    versions = {"frame-generation-pipeline": __version__, "opencv": cv2.__version__, "numpy": np.__version__}
    for module in ("torch", "onnxruntime", "openvino"):
        if module in sys.modules:
            versions[module] = str(getattr(sys.modules[module], "__version__", "unknown"))
    return versions


def write_bundle(
    generator: FrameRenderer,
    templates: TemplateSet,
    features: AudioFeatures,
    output_dir: str | os.PathLike[str],
    num_sample_frames: int = 10,
    start_frame: int = 0,
    checkpoint_sha256: str = "",
    frame_count: int | None = None,
    speech: SpeechStages | HubertStages | None = None,
    blend: Blend = NO_BLEND,
) -> Path:
    """Render the video (its first `frame_count` frames; streamed) and write a reference bundle of
    its sample frames; with `speech` (features made from speech) also the audio path's stages
    (ave: per sample the encoder windows and encodings; hubert: the hidden states once).
    The frames are pasted as `blend` says, and the metadata records it (`"blend": "none"` by default)."""
    frame_count = len(features) if frame_count is None else frame_count
    samples = sample_indices(frame_count, num_sample_frames)
    schedule = templates.schedule(frame_count, start_frame)
    records = []
    with atomic_directory(output_dir, "reference bundle") as staging:
        for rendered in generator.render(templates, features, start_frame, set(samples), frame_count, blend=blend):
            if rendered.network_input is not None:
                records.append(_write_sample(staging, templates, rendered, speech))
        metadata = {
            "format_version": FORMAT_VERSION,
            "producer": f"frame-generation-pipeline {__version__}",
            "versions": library_versions(),
            "mode": generator.mode.name,
            "fps": generator.mode.fps,
            "audio_shape": list(generator.mode.audio_shape),
            "feature_shape": [frame_count, *features.row_shape],
            "frame_count": frame_count,
            "template_count": len(templates),
            "start_frame": start_frame,
            "use_parsing": templates.parsing_dir is not None,
            **blend.record(),
            "template_schedule": schedule,
            "checkpoint_sha256": checkpoint_sha256,
            "samples": records,
        }
        if speech is not None:
            metadata["speech"] = _write_speech(staging, speech)
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=1))
    logger.info("wrote a reference bundle of %d samples to %s", len(records), output_dir)
    return Path(output_dir)


def _write_sample(staging: Path, templates: TemplateSet, rendered: RenderedFrame,
                  speech: SpeechStages | HubertStages | None) -> dict:
    """Write one sample frame's files (with its ave encoder stages when made from speech); its metadata record."""
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
    assert rendered.network_input is not None and rendered.audio is not None and rendered.network_output is not None
    np.save(staging / files["input"], rendered.network_input[None])
    np.save(staging / files["audio"], rendered.audio[None])
    np.save(staging / files["output"], rendered.network_output[None])
    _write_png(staging / files["frame"], rendered.image)
    extra = _speech_sample(staging, stem, files, rendered.index, speech) if isinstance(speech, SpeechStages) else {}
    return {**extra,
            "frame_index": rendered.index,
            "template_index": rendered.template_index,
            "crop_box": list(rendered.box),
            "files": files,
            "sha256": {key: file_sha256(staging / name) for key, name in files.items()}}


def _write_speech(staging: Path, speech: SpeechStages | HubertStages) -> dict:
    """Write the whole utterance's audio stages; their metadata entry."""
    if isinstance(speech, HubertStages):
        for key, name in HUBERT_FILES.items():
            np.save(staging / name, getattr(speech, "samples" if key == "pcm" else key))
        return {**HUBERT_FILES, "kind": "hubert", "sample_rate": SAMPLE_RATE, "rows": len(speech.hidden),
                "clip_samples": speech.clip_samples}
    np.save(staging / SPEECH_FILES["pcm"], speech.pcm)
    np.save(staging / SPEECH_FILES["mel"], speech.mel)
    return {**SPEECH_FILES, "sample_rate": SAMPLE_RATE, "mel_frames": len(speech.mel), "windows": len(speech.windows)}
