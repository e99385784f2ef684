"""The shipped face models: a face detector and a 468-point face mesh, run on the CPU with OpenVINO.

Both are MediaPipe's TFLite models (Apache-2.0, `prepare/data/NOTICE`), shipped unchanged:
`face_detection_full_range_sparse.tflite` finds faces (a box and six keypoints, 192 x 192 input)
and `face_landmark.tflite` places 468 points on one face given a square region around it (192 x 192
input). OpenVINO, a core dependency, reads TFLite files itself, so nothing is converted or downloaded.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

DETECTOR_FILE, MESH_FILE = "face_detection_full_range_sparse.tflite", "face_landmark.tflite"
_DETECTOR_SIZE, _MESH_SIZE = 192, 192
_DETECTOR_GRID = 48  # one anchor per cell of a 48 x 48 grid (stride 4)
_MIN_SCORE, _NMS_IOU = 0.6, 0.3
#: Mesh points whose line gives a face's roll: the outer corners of the right and left eye.
_RIGHT_EYE, _LEFT_EYE = 33, 263
#: A region is this many times the face's extent (MediaPipe's own factor for both models).
_REGION_SCALE = 1.5


def data_path(name: str) -> Path:
    """Path of a file shipped in `prepare/data/`."""
    return Path(str(resources.files(__package__).joinpath("data").joinpath(name)))


@functools.lru_cache(maxsize=4)
def _compiled(name: str):  # openvino's CompiledModel, typed loosely: openvino ships no stubs
    import openvino

    core = openvino.Core()
    return core.compile_model(core.read_model(str(data_path(name))), "CPU", {"INFERENCE_NUM_THREADS": 1})


@dataclass(frozen=True)
class Detection:
    """A face found by the detector: its box (x, y, width, height), keypoints (6, 2) and score, in image pixels."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float

    @property
    def area(self) -> float:
        """The box's area in pixels."""
        return self.box[2] * self.box[3]


def _anchors() -> np.ndarray:
    cells = (np.arange(_DETECTOR_GRID) + 0.5) / _DETECTOR_GRID
    xs, ys = np.meshgrid(cells, cells)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x0, y0, x1, y1) box with each row of `boxes`."""
    low, high = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / (np.prod(box[2:] - box[:2]) + areas - inter + 1e-9)


def _weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted suppression: each kept face is the score-weighted mean of the boxes overlapping it."""
    order = np.argsort(-scores)
    kept = []
    while order.size:
        overlap = _iou(boxes[order[0]], boxes[order]) > _NMS_IOU
        group, order = order[overlap], order[~overlap]
        weights = scores[group] / scores[group].sum()
        kept.append((weights @ boxes[group], np.tensordot(weights, keypoints[group], axes=1), float(scores[group[0]])))
    return kept


def detect_faces(image: np.ndarray) -> list[Detection]:
    """Every face the detector finds in a BGR image, largest first."""
    height, width = image.shape[:2]
    side = max(width, height)
    square = np.zeros((side, side, 3), np.uint8)  # letterboxed: the image at the top left, padding after
    square[:height, :width] = image
    tensor = cv2.resize(square, (_DETECTOR_SIZE, _DETECTOR_SIZE), interpolation=cv2.INTER_AREA)
    tensor = cv2.cvtColor(tensor, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 127.5 - 1.0
    raw, logits = _compiled(DETECTOR_FILE)(tensor).values()
    raw, logits = raw[0], logits[0, :, 0]
    found = logits > math.log(_MIN_SCORE / (1 - _MIN_SCORE))
    if not found.any():
        return []
    raw, scores, anchors = raw[found] / _DETECTOR_SIZE, 1 / (1 + np.exp(-logits[found])), _anchors()[found]
    centres, sizes = raw[:, :2] + anchors, raw[:, 2:4]
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) * side
    keypoints = (raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None]) * side
    faces = [Detection((float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])), k, s)
             for b, k, s in _weighted_nms(boxes, keypoints, scores)]
    return sorted(faces, key=lambda face: -face.area)


@dataclass(frozen=True)
class Region:
    """A square region of an image, turned by `angle` radians about its centre, where the mesh looks for a face."""

    centre: tuple[float, float]
    side: float
    angle: float

    def to_image(self) -> np.ndarray:
        """The 2 x 3 affine matrix from the mesh's 192 x 192 input pixels to image pixels."""
        scale = self.side / _MESH_SIZE
        cos, sin = math.cos(self.angle) * scale, math.sin(self.angle) * scale
        half = _MESH_SIZE / 2
        cx, cy = self.centre
        return np.array([[cos, -sin, cx - cos * half + sin * half], [sin, cos, cy - sin * half - cos * half]])


def _roll(right_eye: np.ndarray, left_eye: np.ndarray) -> float:
    dx, dy = left_eye - right_eye
    return math.atan2(dy, dx)


def region_from_detection(face: Detection) -> Region:
    """The mesh's region for a detected face: its box, squared and scaled, turned to level its eyes."""
    x, y, w, h = face.box
    return Region((x + w / 2, y + h / 2), max(w, h) * _REGION_SCALE, _roll(face.keypoints[0], face.keypoints[1]))


def region_from_mesh(points: np.ndarray) -> Region:
    """The next frame's region from this frame's mesh points (how a face is tracked between frames)."""
    angle = _roll(points[_RIGHT_EYE, :2], points[_LEFT_EYE, :2])
    cos, sin = math.cos(angle), math.sin(angle)
    upright = points[:, :2] @ np.array([[cos, -sin], [sin, cos]])  # into the face's own axes
    low, high = upright.min(axis=0), upright.max(axis=0)
    centre = np.array([[cos, sin], [-sin, cos]]).T @ ((low + high) / 2)
    return Region((float(centre[0]), float(centre[1])), float((high - low).max()) * _REGION_SCALE, angle)


def run_mesh(image: np.ndarray, region: Region) -> tuple[np.ndarray, float]:
    """The 468 mesh points (468, 2) in image pixels of the face in `region`, and the model's face score (0..1)."""
    matrix = region.to_image()
    crop = cv2.warpAffine(image, matrix, (_MESH_SIZE, _MESH_SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT)
    tensor = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
    raw, logit = _compiled(MESH_FILE)(tensor).values()
    local = raw.reshape(-1, 3)[:, :2].astype(np.float64)
    points = local @ matrix[:, :2].T + matrix[:, 2]
    return points, float(1 / (1 + np.exp(-float(logit.ravel()[0]))))
