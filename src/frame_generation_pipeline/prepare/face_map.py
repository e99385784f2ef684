"""The map from the face mesh's 468 points to the 110-point PFLD layout that upstream's templates use.

Each of the 110 points is a fixed weighted mean of a few mesh points (its 3 nearest, weights
summing to 1), so the map moves, turns and scales with the face exactly. The indices and weights in
`prepare/data/mesh_to_pfld110.json` were fitted by `tools/fit_landmark_map.py` on real footage beside
the landmarks upstream's detector gave it (docs/prepare.md says which, and how close they come).
"""

from __future__ import annotations

import functools
import json

import numpy as np

from .face_models import data_path

MAP_FILE = "mesh_to_pfld110.json"
POINTS = 110


@functools.lru_cache(maxsize=1)
def landmark_map() -> tuple[np.ndarray, np.ndarray, dict]:
    """(indices (110, K) int, weights (110, K) float64, what the map was fitted on) from the shipped file."""
    data = json.loads(data_path(MAP_FILE).read_text())
    indices, weights = np.array(data["indices"], dtype=np.int64), np.array(data["weights"], dtype=np.float64)
    return indices, weights, data["fitted_on"]


def mesh_to_pfld(mesh: np.ndarray) -> np.ndarray:
    """The 110 PFLD points (110, 2) of one face's 468 mesh points (468, 2)."""
    indices, weights, _ = landmark_map()
    return np.einsum("pk,pkc->pc", weights, mesh[indices])
