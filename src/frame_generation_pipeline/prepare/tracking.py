"""Following one face through a video: detected once, then tracked by the mesh, detected again when lost.

Frame t's mesh points give frame t+1's region (`region_from_mesh`), as MediaPipe's own face-mesh
graph does, so the detector runs only on the first frame and after the face was lost (the mesh's
face score fell below `MIN_FACE_SCORE`). Where the detector sees several faces, the one asked for
(`face`, counted from the left from 1) or else the largest is followed, and after a loss the face
nearest to where it was last seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .face_models import Detection, detect_faces, region_from_detection, region_from_mesh, run_mesh

logger = logging.getLogger(__name__)

#: Below this face score (0..1) the mesh has lost the face and the detector runs again.
MIN_FACE_SCORE = 0.5


@dataclass(frozen=True)
class TrackedFace:
    """One frame's result: the 468 mesh points (None when no face was found), whether the detector
    ran, and how many faces it saw (0 when it did not run)."""

    points: np.ndarray | None
    detected: bool
    faces_seen: int


class FaceTracker:
    """Follows one face from frame to frame (see the module's docstring); `face` picks among several."""

    def __init__(self, face: int | None = None) -> None:
        self.face = face
        self._points: np.ndarray | None = None
        self._last_centre: np.ndarray | None = None
        self.several_faces: list[int] = []
        self.too_few_faces: set[int] = set()

    def __call__(self, frame: int, image: np.ndarray) -> TrackedFace:
        """Find the face in frame number `frame` (BGR image)."""
        if self._points is not None:
            points, score = run_mesh(image, region_from_mesh(self._points))
            if score >= MIN_FACE_SCORE:
                return self._keep(points, detected=False, seen=0)
        faces = detect_faces(image)
        chosen = self._choose(frame, faces)
        if chosen is None:
            self._points = None
            return TrackedFace(None, True, len(faces))
        points, score = run_mesh(image, region_from_detection(chosen))
        if score < MIN_FACE_SCORE:
            self._points = None
            return TrackedFace(None, True, len(faces))
        return self._keep(points, detected=True, seen=len(faces))

    def _keep(self, points: np.ndarray, detected: bool, seen: int) -> TrackedFace:
        self._points, self._last_centre = points, points.mean(axis=0)
        return TrackedFace(points, detected, seen)

    def _choose(self, frame: int, faces: list[Detection]) -> Detection | None:
        """The face to follow among the detector's `faces` (largest first), or None."""
        if len(faces) > 1:
            self.several_faces.append(frame)
        if not faces:
            return None
        if self._last_centre is not None:  # found again after a loss: the face nearest to where it was
            centres = [np.array([f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2]) for f in faces]
            return faces[int(np.argmin([np.linalg.norm(c - self._last_centre) for c in centres]))]
        left_to_right = sorted(faces, key=lambda f: f.box[0] + f.box[2] / 2)
        if self.face is None:
            if len(faces) > 1:
                number = left_to_right.index(faces[0]) + 1
                logger.warning("frame %d shows %d faces: following the largest (face %d from the left); --face N "
                               "picks another", frame, len(faces), number)
            return faces[0]
        if self.face > len(faces):
            self.too_few_faces.add(frame)
            return None
        return left_to_right[self.face - 1]
