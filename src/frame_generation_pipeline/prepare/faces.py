"""One face's 110 landmarks per frame: tracked mesh, mapped to the PFLD layout, smoothed, and checked.

Each frame's landmarks are written as `.lms` text and read back as the renderer reads them (through
float32, truncated), so the crop box checked here is the one every render will use: it must lie
inside the frame and be at least `MIN_CROP_SIDE` pixels wide. Frames that fail are collected by
problem and reported together, as one line naming the frames.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..errors import TemplateError
from ..inputs.landmarks import CropBox, crop_box, landmark_text, parse_landmarks
from .face_map import mesh_to_pfld
from .smoothing import OneEuroFilter
from .tracking import FaceTracker

#: The smallest crop box accepted (pixels across): the renderer scales the box to 328 x 328, and a
#: face smaller than this comes out as a blur.
MIN_CROP_SIDE = 64

NO_FACE, SEVERAL, CUT_OFF, TOO_SMALL = "no face found", "fewer faces than --face asks for", "face cut off by the frame's edge", \
    f"face too small (crop box under {MIN_CROP_SIDE} pixels)"


def frame_ranges(frames: list[int], shown: int = 8) -> str:
    """'3, 7-12, 40' for sorted frame numbers; past `shown` ranges, how many more."""
    ranges: list[list[int]] = []
    for frame in frames:
        if ranges and frame == ranges[-1][1] + 1:
            ranges[-1][1] = frame
        else:
            ranges.append([frame, frame])
    words = [str(a) if a == b else f"{a}-{b}" for a, b in ranges]
    more = f" and {len(words) - shown} more ranges" if len(words) > shown else ""
    return ", ".join(words[:shown]) + more


class FaceLandmarks:
    """The landmarks of frames 0, 1, 2, ... of one video, in order (see the module's docstring)."""

    def __init__(self, rate: float, face: int | None = None) -> None:
        self.tracker = FaceTracker(face)
        self.smoother = OneEuroFilter(rate)
        self.problems: dict[str, list[int]] = defaultdict(list)
        self.detections = 0
        self.sides: list[int] = []

    def __call__(self, frame: int, image: np.ndarray) -> str | None:
        """`.lms` text of frame number `frame`, or None where it has a problem (recorded in `problems`)."""
        found = self.tracker(frame, image)
        self.detections += found.detected
        if found.points is None:
            self.smoother.reset()
            self.problems[SEVERAL if frame in self.tracker.too_few_faces else NO_FACE].append(frame)
            return None
        points = mesh_to_pfld(found.points)
        points = self.smoother(points, float(points[31, 0] - points[1, 0]))
        text = landmark_text(points)
        problem = self._box_problem(text, image.shape[1], image.shape[0])
        if problem:
            self.problems[problem].append(frame)
            return None
        return text

    def _box_problem(self, text: str, width: int, height: int) -> str | None:
        try:
            box = crop_box(parse_landmarks(text))
        except TemplateError:  # a corner left of or above the frame
            return CUT_OFF
        self.sides.append(box.xmax - box.xmin)
        if not _inside(box, width, height):
            return CUT_OFF
        return TOO_SMALL if box.xmax - box.xmin < MIN_CROP_SIDE else None

    def summary(self) -> str | None:
        """One line naming every problem and its frames, or None when every frame was usable."""
        if not self.problems:
            return None
        parts = [f"{problem} in frame{'s' if len(frames) > 1 else ''} {frame_ranges(frames)}"
                 for problem, frames in self.problems.items()]
        return "; ".join(parts)


def _inside(box: CropBox, width: int, height: int) -> bool:
    return box.xmin >= 0 and box.ymin >= 0 and box.xmax <= width and box.ymax <= height
