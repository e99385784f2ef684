"""Making a template folder from a video: checked first, then frames and landmarks written, prepare.json beside them.

The folder holds `full_body_img/{k}.jpg` and `landmarks/{k}.lms` for k = 0..N-1 (docs/prepare.md) and
is written as every folder output is (files.atomic_directory): into a temporary folder moved into
place only when every frame had a usable face, so a refused video leaves no folder behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

from ..errors import ConfigurationError, VideoError
from ..files import atomic_directory, check_output, write_bytes
from ..inputs.templates import IMAGE_DIR, LANDMARK_DIR
from ..version import __version__
from .face_map import landmark_map
from .face_models import DETECTOR_FILE, MESH_FILE
from .faces import MIN_CROP_SIDE, FaceLandmarks
from .smoothing import BETA, MIN_CUTOFF
from .video import VideoClip, VideoInfo, probe_video, read_frames

logger = logging.getLogger(__name__)

RATES = (25, 20)
#: JPEG quality of the frames (OpenCV's default, which upstream's data preparation uses).
JPEG_QUALITY = 95
SETTINGS_FILE = "prepare.json"


@dataclass(frozen=True)
class PrepareResult:
    """What `prepare_templates` made: the folder, its frame count and size, and the seconds it took."""

    output: Path
    frames: int
    size: tuple[int, int]
    seconds: float
    detections: int

    def summary(self) -> str:
        """One line for the user."""
        return (f"wrote {self.frames} templates ({self.size[0]}x{self.size[1]}) to {self.output} in {self.seconds:.1f} s "
                f"(face detector ran on {self.detections} frames, tracked on the rest)")


def check_prepare(video: str | os.PathLike[str], output: str | os.PathLike[str], clip: VideoClip, face: int | None) -> VideoInfo:
    """Every check that needs no frame decoded past the first: arguments, the output folder, the video."""
    if clip.fps not in RATES:
        raise ConfigurationError(f"--fps {clip.fps}: templates are made at 25 fps (ave, hubert) or 20 (wenet)")
    if clip.start < 0 or (clip.duration is not None and clip.duration <= 0):
        raise ConfigurationError("--start must be at least 0 and --duration above 0 seconds")
    if face is not None and face < 1:
        raise ConfigurationError(f"--face {face}: faces are counted from 1, from the left")
    check_output(output, "--output", {"VIDEO": video}, folder=True)
    return probe_video(clip)


def _settings(clip: VideoClip, info: VideoInfo, frames: int, face: int | None, faces: FaceLandmarks) -> dict:
    _, _, fitted_on = landmark_map()
    return {
        "writer": f"frame-gen {__version__} prepare",
        "source": {"path": os.path.abspath(clip.path), "bytes": clip.path.stat().st_size, "duration": info.duration},
        "frames": frames, "size": [info.width, info.height], "fps": clip.fps,
        "settings": {"start": clip.start, "duration": clip.duration, "face": face or "largest", "jpeg_quality": JPEG_QUALITY,
                     "min_crop_side": MIN_CROP_SIDE},
        "model": {"detector": DETECTOR_FILE, "mesh": MESH_FILE, "license": "Apache-2.0 (MediaPipe)",
                  "landmark_map": {"fitted_on": fitted_on["source"], "held_out": fitted_on["held_out"]},
                  "smoothing": {"filter": "one-euro", "min_cutoff_hz": MIN_CUTOFF, "beta": BETA}},
        "detections": faces.detections,
        "crop_side": {"min": min(faces.sides), "max": max(faces.sides)} if faces.sides else None,
        "several_faces_in_frames": faces.tracker.several_faces[:100],
    }


def _write_frames(clip: VideoClip, info: VideoInfo, folder: Path, faces: FaceLandmarks, show_progress: bool) -> int:
    """Decode, find the landmarks and write every frame; the frame count."""
    (folder / IMAGE_DIR).mkdir()
    (folder / LANDMARK_DIR).mkdir()
    count = 0
    with contextlib.closing(read_frames(clip, info)) as decoded:  # ffmpeg stopped at once on any error
        for k, image in enumerate(tqdm(decoded, total=info.frames_estimate, unit="frame",
                                       disable=None if show_progress else True, dynamic_ncols=True)):
            text = faces(k, image)
            if text is not None:
                _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                write_bytes(folder / IMAGE_DIR / f"{k}.jpg", encoded.tobytes())
                write_bytes(folder / LANDMARK_DIR / f"{k}.lms", text.encode())
            count += 1
    return count


def prepare_templates(
    video: str | os.PathLike[str], output: str | os.PathLike[str], start: float = 0.0, duration: float | None = None,
    fps: int = 25, face: int | None = None, show_progress: bool = False,
) -> PrepareResult:
    """Make template folder `output` from `video` (see the module's docstring).

    Raises:
        ConfigurationError: a bad --fps, --start, --duration or --face.
        OutputError: `output` is not a new, empty or earlier frame-gen folder, or meets the video.
        VideoError: the video cannot be read, or frames have no usable face (named, with the reason).
    """
    began = time.perf_counter()
    clip = VideoClip(Path(video), float(start), None if duration is None else float(duration), int(fps))
    info = check_prepare(video, output, clip, face)
    faces = FaceLandmarks(clip.fps, face)
    with atomic_directory(output, "prepare") as folder:
        count = _write_frames(clip, info, folder, faces, show_progress)
        problems = faces.summary()
        if problems:
            raise VideoError(clip.path, f"{problems}: no template folder written (--start and --duration take a part of "
                                        "the video, --face N another face)")
        if count == 0:
            raise VideoError(clip.path, "not usable as a video: no frames decoded")
        settings = _settings(clip, info, count, face, faces)
        write_bytes(folder / SETTINGS_FILE, json.dumps(settings, indent=1).encode() + b"\n")
    if faces.tracker.several_faces:
        logger.info("several faces were seen in %d frames; the landmarks follow one face throughout", len(faces.tracker.several_faces))
    return PrepareResult(Path(output), count, (info.width, info.height), time.perf_counter() - began, faces.detections)
