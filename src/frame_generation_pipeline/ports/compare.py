"""Comparing two renders frame by frame: folders of frames, videos, or a folder against a bundle.

What a port team runs on its output against ours: PSNR, the largest difference, the share of
differing values, and the worst frames.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigurationError, InputFileError
from ..inputs.images import read_image

_FRAME_NAME = re.compile(r"(\d+)\.(png|jpg|jpeg|bmp)$", re.IGNORECASE)


@dataclass
class FrameDifference:
    """How one pair of frames differs."""

    frame: int
    psnr_db: float
    max_difference: int
    differing: float  # share of values that differ, 0..1


@dataclass
class Comparison:
    """Per-frame differences of two renders, and the frame counts of each side."""

    counts: tuple[int, int]
    frames: list[FrameDifference] = field(default_factory=list)
    sampled: bool = False  # one side is a bundle: only its sample frames can be compared

    @property
    def min_psnr_db(self) -> float:
        """The lowest PSNR over the frames compared (inf when all are equal)."""
        return min((frame.psnr_db for frame in self.frames), default=math.inf)

    @property
    def max_difference(self) -> int:
        """The largest per-value difference over the frames compared."""
        return max((frame.max_difference for frame in self.frames), default=0)

    def worst(self, count: int = 5) -> list[FrameDifference]:
        """The `count` frames with the lowest PSNR."""
        return sorted(self.frames, key=lambda frame: frame.psnr_db)[:count]


def is_bundle(source: Path) -> bool:
    """True for a reference bundle folder."""
    return source.is_dir() and (source / "metadata.json").is_file()


def _frames_of(source: Path) -> tuple[int, Iterator[tuple[int, np.ndarray]]]:
    """(frame count, (index, BGR frame) pairs) of a frame folder, a bundle or a video."""
    if is_bundle(source):
        from .reference import read_metadata

        metadata = read_metadata(source)
        samples = metadata["samples"]
        return metadata["frame_count"], ((s["frame_index"], read_image(source / s["files"]["frame"])) for s in samples)
    if source.is_dir():
        numbered = sorted((int(m[1]), path) for path in source.iterdir() if (m := _FRAME_NAME.fullmatch(path.name)))
        if not numbered:
            raise InputFileError(source, "holds no numbered frame images (000000.png, ...)")
        return len(numbered), ((index, read_image(path)) for index, path in numbered)
    if source.is_file():
        import av

        try:
            container = av.open(str(source))
            count = container.streams.video[0].frames
        except (av.error.FFmpegError, IndexError) as exc:
            raise InputFileError(source, f"not a video with a video stream ({exc})") from None

        def decoded() -> Iterator[tuple[int, np.ndarray]]:
            with container:
                for index, frame in enumerate(container.decode(video=0)):
                    yield index, frame.to_ndarray(format="bgr24")

        return count, decoded()
    raise InputFileError(source, "not found: expected a folder of frames, a reference bundle or a video")


def compare_frames(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> Comparison:
    """Compare two renders frame by frame (frames matched by index; a bundle's sample frames only)."""
    count_a, frames_a = _frames_of(Path(a))
    count_b, frames_b = _frames_of(Path(b))
    second = dict(frames_b)
    comparison = Comparison((count_a, count_b), sampled=is_bundle(Path(a)) or is_bundle(Path(b)))
    for index, frame in frames_a:
        other = second.get(index)
        if other is None:
            continue
        if other.shape != frame.shape:
            raise ConfigurationError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]} in {os.fspath(a)} but "
                                     f"{other.shape[1]}x{other.shape[0]} in {os.fspath(b)}")
        difference = np.abs(frame.astype(np.int16) - other.astype(np.int16))
        mse = float(np.mean(difference.astype(np.float64) ** 2))
        psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
        comparison.frames.append(FrameDifference(index, psnr, int(difference.max()), float(np.mean(difference > 0))))
    if not comparison.frames:
        raise ConfigurationError(f"{os.fspath(a)} and {os.fspath(b)} have no frame index in common")
    return comparison


def format_comparison(comparison: Comparison, max_diff: int | None, min_psnr: float | None) -> tuple[str, bool]:
    """The report lines and whether the renders are within the thresholds."""
    ok = (max_diff is None or comparison.max_difference <= max_diff) and (min_psnr is None or comparison.min_psnr_db >= min_psnr)
    lines = [f"frames: {comparison.counts[0]} and {comparison.counts[1]}, {len(comparison.frames)} compared",
             f"lowest PSNR {comparison.min_psnr_db:.2f} dB, largest difference {comparison.max_difference} levels, "
             f"at most {max(f.differing for f in comparison.frames):.3g} of a frame's values differ",
             "worst frames: " + ", ".join(f"{f.frame} ({f.psnr_db:.2f} dB, max {f.max_difference})" for f in comparison.worst())]
    if comparison.counts[0] != comparison.counts[1]:
        lines.append(f"frame counts differ: {comparison.counts[0]} against {comparison.counts[1]}")
        ok = False
    limits = ", ".join(part for part in (f"max difference {max_diff}" if max_diff is not None else "",
                                         f"min PSNR {min_psnr:g} dB" if min_psnr is not None else "") if part)
    lines.append(("OK" if ok else "DIFFERENT") + (f" (limits: {limits})" if limits else ""))
    return "\n".join(lines), ok
