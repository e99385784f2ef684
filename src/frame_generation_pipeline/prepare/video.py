"""Reading a video's frames at the template rate with ffmpeg: checked first, then decoded as a stream.

The binary is imageio-ffmpeg's (audio/ffmpeg.py). ffmpeg's `fps` filter resamples any frame rate,
variable ones included, to the rate asked for (25, or 20 for wenet), and ffmpeg applies rotation
metadata when it decodes, so frames come out upright. `--start` seeks before decoding (exact:
ffmpeg decodes from the key frame before and drops what comes before the start).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..audio.ffmpeg import ffmpeg_executable, last_lines
from ..checks import missing_file
from ..errors import VideoError


@dataclass(frozen=True)
class VideoClip:
    """The part of a video to read: file, start and duration in seconds (None: to the end), frame rate."""

    path: Path
    start: float = 0.0
    duration: float | None = None
    fps: int = 25

    def _input(self) -> list[str]:
        seek = ["-ss", f"{self.start:.6f}"] if self.start else []
        length = ["-t", f"{self.duration:.6f}"] if self.duration is not None else []
        return ["-nostdin", "-hide_banner", "-loglevel", "error", *seek, "-i", str(self.path), *length, "-map", "0:v:0"]


@dataclass(frozen=True)
class VideoInfo:
    """What a first look at a clip found: its upright frame size and how many frames it gives (an estimate)."""

    width: int
    height: int
    duration: float | None
    frames_estimate: int | None


def _duration(stderr: str) -> float | None:
    match = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", stderr)
    return None if match is None else int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])


def _first_frame(clip: VideoClip) -> np.ndarray:
    """The clip's first frame, decoded as the full decode will (upright); VideoError if there is none."""
    result = subprocess.run([ffmpeg_executable(), *clip._input(), "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png",
                             "pipe:1"], capture_output=True, check=False)
    frame = cv2.imdecode(np.frombuffer(result.stdout, np.uint8), cv2.IMREAD_COLOR) if result.stdout else None
    if frame is None:
        stderr = result.stderr.decode("utf-8", "replace")
        problem = f"cannot be decoded ({last_lines(stderr, 1)})" if stderr.strip() else "has no frames"
        if clip.start and not stderr.strip():
            problem = f"has no frames from --start {clip.start:g} seconds on"
        raise VideoError(clip.path, f"not usable as a video: {problem}")
    return frame


def probe_video(clip: VideoClip) -> VideoInfo:
    """Check that the clip opens and has a video frame; its upright size and an estimate of its frame count."""
    path = clip.path
    if not path.is_file():
        raise VideoError(path, missing_file(path, "video file"))
    if path.stat().st_size == 0:
        raise VideoError(path, "not usable as a video: the file is empty (0 bytes)")
    result = subprocess.run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", str(path)],
                            capture_output=True, text=True, errors="replace", check=False)
    if not re.search(r"Stream #\S+.*: Video:", result.stderr):
        problem = "it has no video stream" if "Stream #" in result.stderr else f"cannot be read ({last_lines(result.stderr, 1)})"
        raise VideoError(path, f"not usable as a video: {problem}")
    total = _duration(result.stderr)
    if total is not None and clip.start >= total:
        raise VideoError(path, f"--start {clip.start:g} is past the video's end ({total:g} seconds)")
    height, width = _first_frame(clip).shape[:2]
    seconds = None if total is None else total - clip.start
    if clip.duration is not None:
        seconds = clip.duration if seconds is None else min(seconds, clip.duration)
    return VideoInfo(width, height, total, None if seconds is None else max(1, round(seconds * clip.fps)))


def read_frames(clip: VideoClip, info: VideoInfo) -> Generator[np.ndarray, None, None]:
    """The clip's frames at `clip.fps`, upright, as HxWx3 uint8 BGR, one at a time; VideoError if ffmpeg fails."""
    command = [ffmpeg_executable(), *clip._input(), "-vf", f"fps={clip.fps}", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]
    size = info.width * info.height * 3
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        try:
            while len(data := process.stdout.read(size)) == size:
                yield np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3)
        finally:
            if process.poll() is None:
                process.kill()
            stderr = process.stderr.read().decode("utf-8", "replace")
            process.wait()
    if process.returncode != 0:
        raise VideoError(clip.path, f"decoding stopped ({last_lines(stderr, 1)})")
