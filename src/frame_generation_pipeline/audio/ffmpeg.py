"""The ffmpeg binary: finding it, probing an audio file, decoding its audio to float32 samples.

ffmpeg is the one shipped in the imageio-ffmpeg wheel (or one on PATH), so users need no system
ffmpeg. The video encoder (outputs/video.py) runs the same binary.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import missing_file
from ..errors import AudioError, EncoderError

_ERROR_LINES = 5


def ffmpeg_executable() -> str:
    """Path of the ffmpeg binary: imageio-ffmpeg's own, else one on PATH."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found is None:
            raise EncoderError("no ffmpeg found: install imageio-ffmpeg or put ffmpeg on PATH") from None
        return found


def last_lines(text: str, lines: int = _ERROR_LINES) -> str:
    """The last non-empty lines of a tool's output, joined on one line for an error message."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "no message"


@dataclass(frozen=True)
class AudioInfo:
    """What ffmpeg reports of a file's first audio stream."""

    path: Path
    duration: float | None
    sample_rate: int
    channels: int


@functools.lru_cache(maxsize=1)
def _layout_channels() -> dict[str, int]:
    """Channel count of every layout name ffmpeg knows (from `ffmpeg -layouts`)."""
    listing = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-layouts"], capture_output=True, text=True, check=False
    ).stdout
    counts = {}
    for line in listing.splitlines():
        fields = line.split()
        # "stereo  FL+FR": a layout name and its channels; the header reads "NAME DECOMPOSITION".
        if len(fields) == 2 and fields[0] != "NAME" and re.fullmatch(r"[A-Z0-9]+(\+[A-Z0-9]+)*", fields[1]):
            counts[fields[0]] = len(fields[1].split("+"))
    return counts


def _channel_count(layout: str, source: Path) -> int:
    match = re.fullmatch(r"(\d+) channels.*", layout)
    if match:
        return int(match[1])
    count = _layout_channels().get(layout)
    if count is None:
        raise AudioError(source, f"unknown channel layout {layout!r}")
    return count


def probe_audio(path: str | os.PathLike[str]) -> AudioInfo:
    """Check that `path` is a file ffmpeg can decode audio from; raise AudioError if not."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, missing_file(path, "audio file"))
    if path.stat().st_size == 0:
        raise AudioError(path, "holds no samples (the file is empty, 0 bytes)")
    result = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True, text=True, errors="replace", check=False,
    )
    if not re.search(r"Stream #\S+.*: Audio:", result.stderr):
        problem = "has no audio stream" if "Stream #" in result.stderr else f"cannot be decoded ({last_lines(result.stderr, 1)})"
        raise AudioError(path, f"not usable as audio: {problem}")
    match = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", result.stderr)
    duration = None if match is None else int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
    stream = re.search(r"Stream #\S+.*: Audio: [^\n]*?, (\d+) Hz, ([^,\n]+)", result.stderr)
    if stream is None:
        raise AudioError(path, "not usable as audio: no sample rate or channel layout reported")
    return AudioInfo(path, duration, int(stream[1]), _channel_count(stream[2].strip(), path))


def _decode_command(info: AudioInfo) -> list[str]:
    """ffmpeg's command that writes the first audio stream's samples as float32 at their own rate to stdout."""
    return [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(info.path),
            "-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]


def _interleaved(data: bytes, channels: int) -> np.ndarray:
    samples = np.frombuffer(data, dtype=np.float32)
    return samples[: len(samples) // channels * channels].reshape(-1, channels)


def decode_audio(info: AudioInfo) -> np.ndarray:
    """Every sample of the first audio stream at its own rate: float32 (samples, channels)."""
    result = subprocess.run(_decode_command(info), capture_output=True, check=False)
    if result.returncode != 0:
        raise AudioError(info.path, f"cannot be decoded ({last_lines(result.stderr.decode('utf-8', 'replace'), 1)})")
    return _interleaved(result.stdout, info.channels)


def decode_audio_chunks(info: AudioInfo, seconds: float) -> Iterator[np.ndarray]:
    """The first audio stream's samples as they are decoded, `seconds` at a time (the last may be
    shorter): float32 (samples, channels) at its own rate. AudioError when ffmpeg fails midway."""
    frame_bytes = 4 * info.channels
    chunk_bytes = max(1, round(seconds * info.sample_rate)) * frame_bytes
    with subprocess.Popen(_decode_command(info), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None  # both piped
        try:
            while data := process.stdout.read(chunk_bytes):
                yield _interleaved(data, info.channels)
            problem = process.stderr.read().decode("utf-8", "replace")
        finally:
            process.kill()  # a consumer that stops early leaves no ffmpeg behind
        if process.wait() != 0 and problem:
            raise AudioError(info.path, f"cannot be decoded ({last_lines(problem, 1)})")
