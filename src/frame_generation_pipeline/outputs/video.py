"""The video encoder: raw BGR frames into ONE ffmpeg process that writes H.264 + AAC in one pass.

Frames are handed to a writer thread through a small bounded queue, so rendering goes on while
ffmpeg encodes and memory stays flat. The audio is padded with silence or cut so that the file
lasts exactly frames / fps seconds.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from ..audio.ffmpeg import ffmpeg_executable, last_lines
from ..errors import EncoderError, OutputError

logger = logging.getLogger(__name__)

#: x264 presets, fastest first.
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
#: The measured choice (docs/performance.md): medium's PSNR at crf 20, 1.6-1.9x its speed.
DEFAULT_PRESET = "veryfast"
DEFAULT_CRF = 20
#: Containers that hold H.264 + AAC, by file suffix; the mp4 family gets +faststart.
CONTAINERS = {".mp4": True, ".m4v": True, ".mov": True, ".mkv": False}
_QUEUE_FRAMES = 8
#: How often the writer thread looks at the stop flag while it waits for a frame: an abort never depends
#: on a frame or the end of the stream reaching it (a stop signal raised in the main thread mid-queue
#: operation once left a writer waiting for a wake-up that never came, and the abort waiting on it).
_POLL_SECONDS = 0.1
#: Pipe buffer asked for on Linux (its default limit for unprivileged users): ffmpeg then wakes a
#: few times per 720p frame instead of ~40 (64 KiB), a third of the context switches.
_PIPE_BYTES = 1 << 20


def check_container(path: str | os.PathLike[str]) -> None:
    """Refuse an output name whose suffix is not a container this encoder writes (before any work)."""
    suffix = Path(path).suffix.lower()
    if suffix not in CONTAINERS:
        found = f"suffix {suffix!r}" if suffix else "no suffix"
        raise OutputError(path, f"has {found}: expected a video file ending in {', '.join(CONTAINERS)}")


def enlarge_pipe(stream: IO[bytes], size: int = _PIPE_BYTES) -> None:
    """Ask for a larger buffer on a pipe where the OS allows it (Linux); keep the default elsewhere."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, size)
    except (ImportError, AttributeError, OSError) as exc:
        logger.debug("pipe buffer left at its default (%s)", exc)


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
        name: the file to name in error messages, when `output_path` is a temporary stand-in for it.

    Use as a context manager: leaving it with an exception kills ffmpeg.
    """

    def __init__(
        self,
        output_path: str | os.PathLike[str],
        width: int,
        height: int,
        fps: float,
        audio_path: str | os.PathLike[str] | None = None,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        frame_count: int | None = None,
        name: str | os.PathLike[str] | None = None,
    ) -> None:
        self.output_path = Path(output_path)
        self.name = os.fspath(name if name is not None else output_path)
        self.size = (width, height)
        self.fps = fps
        self.frames_written = 0
        command = [
            ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            # BT.601's primaries and transfer ride on the frames to the encoder (as output options they reached
            # the stream unspecified); its matrix and range are the output's, below
            "-color_primaries", "smpte170m", "-color_trc", "smpte170m",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", f"{fps}", "-i", "pipe:0",
        ]
        if audio_path is not None:
            command += ["-i", str(audio_path), "-map", "0:v:0", "-map", "1:a:0", "-af", "apad"]
            command += ["-shortest"] if frame_count is None else ["-t", f"{frame_count / fps:.6f}"]
        if width % 2 or height % 2:
            command += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        command += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p"]
        # swscale converts with BT.601 (limited range); say so, or players assume BT.709 for HD.
        command += ["-color_range", "tv", "-colorspace", "smpte170m"]
        if audio_path is not None:
            # 48 kHz: AAC frames of 21 ms keep the audio within one video frame of frames / fps.
            command += ["-c:a", "aac", "-b:a", "128k", "-ar", "48000"]
        if CONTAINERS.get(self.output_path.suffix.lower(), False):
            command += ["-movflags", "+faststart"]
        command += [str(self.output_path)]
        logger.debug("ffmpeg: %s", " ".join(command))
        self._stderr = tempfile.TemporaryFile()
        # A session of its own: Ctrl-C reaches us, and we end ffmpeg ourselves.
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True
        )
        assert self._process.stdin is not None  # stdin=PIPE
        enlarge_pipe(self._process.stdin)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_FRAMES)
        self._failure: BaseException | None = None
        self._stopped = threading.Event()
        self._writer = threading.Thread(target=self._write_frames, name="ffmpeg-writer", daemon=True)
        self._writer.start()

    def _write_frames(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None  # stdin=PIPE
        try:
            while (data := self._next()) is not None:
                stdin.write(data)
        except (BrokenPipeError, OSError) as exc:
            self._failure = exc
            while self._next() is not None:  # keep draining so that write() never blocks
                pass
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _next(self) -> bytes | None:
        """The next frame's bytes for the writer thread; None at the end of the stream or once aborted."""
        while not self._stopped.is_set():
            try:
                return self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
        return None

    def _error(self, what: str) -> EncoderError:
        self._stderr.seek(0)
        message = last_lines(self._stderr.read().decode("utf-8", "replace")).replace(str(self.output_path), self.name)
        return EncoderError(f"ffmpeg {what} while writing {self.name}: {message}")

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
        self._stopped.set()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
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


def encode_frames(
    frames: Iterable[np.ndarray],
    output_path: str | os.PathLike[str],
    fps: float,
    audio_path: str | os.PathLike[str] | None = None,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
    frame_count: int | None = None,
    name: str | os.PathLike[str] | None = None,
) -> int:
    """Encode `frames` into `output_path` with a VideoEncoder sized by the first frame (arguments as
    for it); the number of frames written.

    Frames are taken one at a time. If taking or writing one fails (an exception, Ctrl-C), ffmpeg is
    killed before the error goes on and `output_path` is left incomplete: write to a temporary.
    EncoderError when there is no frame at all.
    """
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise EncoderError(f"no frames to write to {os.fspath(name if name is not None else output_path)}")
    height, width = first.shape[:2]
    with VideoEncoder(output_path, width, height, fps, audio_path, crf, preset, frame_count, name) as encoder:
        encoder.write(first)
        for frame in stream:
            encoder.write(frame)
    return encoder.frames_written


def mux_audio(video: Path, audio: Path, output: Path, seconds: float) -> None:
    """Copy `video`'s stream and encode `audio` as AAC into `output`, both `seconds` long (no re-encode
    of the video)."""
    _mux(["-i", str(video)], audio, output, seconds)


def join_segments(segments: list[Path], audio: Path, output: Path, seconds: float) -> None:
    """Join H.264 segments (each starting with a keyframe, same settings) by stream copy, with
    `audio` encoded once over the whole, into `output`, `seconds` long."""
    listing = output.with_name(output.name + ".segments.txt")
    listing.write_text("".join(f"file '{segment.resolve()}'\n" for segment in segments))
    try:
        _mux(["-f", "concat", "-safe", "0", "-i", str(listing)], audio, output, seconds)
    finally:
        listing.unlink(missing_ok=True)


def _mux(video_input: list[str], audio: Path, output: Path, seconds: float) -> None:
    command = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *video_input,
               "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-af", "apad", "-t", f"{seconds:.6f}",
               "-c:a", "aac", "-b:a", "128k", "-ar", "48000"]
    if CONTAINERS.get(output.suffix.lower(), False):
        command += ["-movflags", "+faststart"]
    result = subprocess.run([*command, str(output)], capture_output=True, text=True, errors="replace", check=False)
    if result.returncode != 0:
        raise EncoderError(f"ffmpeg failed (exit status {result.returncode}) while adding the audio: {last_lines(result.stderr)}")
