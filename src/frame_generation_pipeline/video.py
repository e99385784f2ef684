"""The video encoder: raw BGR frames into ONE ffmpeg process that writes H.264 + AAC in one pass.

ffmpeg is the binary shipped in the imageio-ffmpeg wheel (or one on PATH). Frames are handed to
a writer thread through a small bounded queue, so rendering goes on while ffmpeg encodes and
memory stays flat. The audio is padded with silence or cut so that the file lasts exactly
frames / fps seconds.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from .errors import AudioError, EncoderError

logger = logging.getLogger(__name__)

#: x264 presets, fastest first.
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
#: The measured choice (README, "Throughput"): medium's PSNR at crf 20, 1.6-1.9x its speed.
DEFAULT_PRESET = "veryfast"
_QUEUE_FRAMES = 8
_ERROR_LINES = 5
#: Pipe buffer asked for on Linux (its default limit for unprivileged users): ffmpeg then wakes a
#: few times per 720p frame instead of ~40 (64 KiB), a third of the context switches.
_PIPE_BYTES = 1 << 20


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


def enlarge_pipe(stream: IO[bytes], size: int = _PIPE_BYTES) -> None:
    """Ask for a larger buffer on a pipe where the OS allows it (Linux); keep the default elsewhere."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, size)
    except (ImportError, AttributeError, OSError) as exc:
        logger.debug("pipe buffer left at its default (%s)", exc)


def last_lines(text: str, lines: int = _ERROR_LINES) -> str:
    """The last non-empty lines of a tool's output, joined on one line for an error message."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "no message"


@dataclass(frozen=True)
class AudioInfo:
    """What ffmpeg reports of an audio file's first audio stream."""

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
        raise AudioError(path, "audio file not found")
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
    return AudioInfo(duration, int(stream[1]), _channel_count(stream[2].strip(), path))


class VideoEncoder:
    """Encodes a stream of equal-size HxWx3 uint8 BGR frames into an H.264 (yuv420p) video.

    Args:
        output_path: the file to write (its suffix picks the container, e.g. .mp4).
        width, height: frame size; odd sizes are padded by one black row/column (yuv420p).
        fps: frame rate.
        audio_path: speech to mux as AAC.
        crf: x264 quality (lower is better; 20 is upstream's).
        preset: x264 speed preset.
        frame_count: frames that will be written; with audio, the audio is padded with silence
            or cut to frame_count / fps seconds (without it, it is padded to the video's end).

    Use as a context manager: leaving it with an exception kills ffmpeg.
    """

    def __init__(
        self,
        output_path: str | os.PathLike[str],
        width: int,
        height: int,
        fps: float,
        audio_path: str | os.PathLike[str] | None = None,
        crf: int = 20,
        preset: str = DEFAULT_PRESET,
        frame_count: int | None = None,
    ) -> None:
        self.output_path = Path(output_path)
        self.size = (width, height)
        self.fps = fps
        self.frames_written = 0
        command = [
            ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", f"{fps}", "-i", "pipe:0",
        ]
        if audio_path is not None:
            command += ["-i", str(audio_path), "-map", "0:v:0", "-map", "1:a:0", "-af", "apad"]
            command += ["-shortest"] if frame_count is None else ["-t", f"{frame_count / fps:.6f}"]
        if width % 2 or height % 2:
            command += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        command += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p"]
        # swscale converts with BT.601 (limited range); say so, or players assume BT.709 for HD.
        command += ["-color_range", "tv", "-colorspace", "smpte170m", "-color_primaries", "smpte170m", "-color_trc", "smpte170m"]
        if audio_path is not None:
            # 48 kHz: AAC frames of 21 ms keep the audio within one video frame of frames / fps.
            command += ["-c:a", "aac", "-b:a", "128k", "-ar", "48000"]
        command += ["-movflags", "+faststart", str(self.output_path)]
        logger.debug("ffmpeg: %s", " ".join(command))
        self._stderr = tempfile.TemporaryFile()
        # A session of its own: Ctrl-C reaches us, and we end ffmpeg ourselves.
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True
        )
        enlarge_pipe(self._process.stdin)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_FRAMES)
        self._failure: BaseException | None = None
        self._writer = threading.Thread(target=self._write_frames, name="ffmpeg-writer", daemon=True)
        self._writer.start()

    def _write_frames(self) -> None:
        stdin = self._process.stdin
        try:
            while (data := self._queue.get()) is not None:
                stdin.write(data)
        except (BrokenPipeError, OSError) as exc:
            self._failure = exc
            while self._queue.get() is not None:  # keep draining so that write() never blocks
                pass
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _error(self, what: str) -> EncoderError:
        self._stderr.seek(0)
        message = last_lines(self._stderr.read().decode("utf-8", "replace"))
        return EncoderError(f"ffmpeg {what} while writing {self.output_path}: {message}")

    def write(self, frame: np.ndarray) -> None:
        """Queue one frame for encoding (blocks only when the encoder is far behind)."""
        if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
            raise EncoderError(
                f"frame {self.frames_written} is {frame.shape} {frame.dtype}, "
                f"expected ({self.size[1]}, {self.size[0]}, 3) uint8"
            )
        if self._failure is not None or self._process.poll() is not None:
            self.abort()
            raise self._error("stopped")
        self._queue.put(np.ascontiguousarray(frame).tobytes())
        self.frames_written += 1

    def close(self) -> None:
        """Finish the stream and wait for ffmpeg; raise EncoderError with ffmpeg's message on failure."""
        self._queue.put(None)
        self._writer.join()
        code = self._process.wait()
        if code != 0 or self._failure is not None:
            raise self._error(f"failed (exit status {code})")
        self._stderr.close()

    def abort(self) -> None:
        """Kill ffmpeg and stop the writer; the output file is incomplete afterwards."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
