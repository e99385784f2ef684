"""Fit the map from the face mesh's 468 points to upstream's 110-point PFLD layout (prepare/data/mesh_to_pfld110.json).

Input: a video at 25 fps and the folder of `.lms` files upstream's detector wrote for its frames
(`{k}.lms` for frame k). The mesh is tracked through the video as `frame-gen prepare` tracks it
(unsmoothed); the first `--train` share of the frames fits the map, the rest is held out and
measured. For each PFLD point: its `--neighbours` nearest mesh points (in the mean face, scaled to
the face's size) and weights summing to 1 that minimise the squared distance to upstream's point over
the training frames (x and y together, each frame scaled by its face size), with a small ridge
pulling the weights toward equal ones. The held-out frames' mesh and PFLD points are also written
(`--heldout`, every 6th, numbers only) for tests/test_prepare_map.py.

    python tools/fit_landmark_map.py VIDEO LMS_DIR --source "WHERE THE FOOTAGE COMES FROM"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from frame_generation_pipeline.prepare.face_map import MAP_FILE
from frame_generation_pipeline.prepare.face_models import data_path
from frame_generation_pipeline.prepare.tracking import FaceTracker
from frame_generation_pipeline.prepare.video import VideoClip, probe_video, read_frames

RIDGE = 1e-3
HELDOUT_EVERY = 6
TEST_DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "prepare_heldout.npz"


def tracked_pairs(video: Path, landmarks: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mesh (F, 468, 2), pfld (F, 110, 2)) for every frame where the mesh found the face and a `.lms` exists."""
    clip = VideoClip(video)
    tracker, meshes, targets = FaceTracker(), [], []
    for k, frame in enumerate(read_frames(clip, probe_video(clip))):
        found = tracker(k, frame)
        lms = landmarks / f"{k}.lms"
        if found.points is not None and lms.is_file():
            meshes.append(found.points)
            targets.append(np.loadtxt(lms))
    return np.array(meshes), np.array(targets)


def _normalised(points: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """`points` (F, P, 2) relative to each frame's mesh centre, in units of its mesh size."""
    centre = mesh.mean(axis=1, keepdims=True)
    size = np.ptp(mesh[..., 0], axis=1)[:, None, None]
    return (points - centre) / size


def fit(mesh: np.ndarray, pfld: np.ndarray, neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices (110, K), weights (110, K)) fitted as the module's docstring says."""
    mean_mesh, mean_pfld = _normalised(mesh, mesh).mean(axis=0), _normalised(pfld, mesh).mean(axis=0)
    scale = np.ptp(mesh[..., 0], axis=1)[:, None]
    indices, weights = [], []
    for target in range(pfld.shape[1]):
        chosen = np.argsort(np.linalg.norm(mean_mesh - mean_pfld[target], axis=1))[:neighbours]
        a = np.concatenate([mesh[:, chosen, 0] / scale, mesh[:, chosen, 1] / scale])  # (2F, K)
        b = np.concatenate([pfld[:, target, 0] / scale[:, 0], pfld[:, target, 1] / scale[:, 0]])
        ridge = RIDGE * np.trace(a.T @ a) / neighbours
        kkt = np.zeros((neighbours + 1, neighbours + 1))
        kkt[:neighbours, :neighbours] = a.T @ a + ridge * np.eye(neighbours)
        kkt[:neighbours, neighbours] = kkt[neighbours, :neighbours] = 1.0
        rhs = np.concatenate([a.T @ b + ridge / neighbours, [1.0]])
        indices.append(chosen)
        weights.append(np.linalg.solve(kkt, rhs)[:neighbours])
    return np.array(indices), np.array(weights)


def report(name: str, mesh: np.ndarray, pfld: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> dict:
    """Errors of the map on frames (pixels): every point's mean, and points 1, 31, 52 (mean and max)."""
    mapped = np.einsum("pk,fpkc->fpc", weights, mesh[:, indices])
    error = np.linalg.norm(mapped - pfld, axis=2)
    side = pfld[:, 31, 0] - pfld[:, 1, 0]
    result = {"frames": len(mesh), "mean_px_all_points": round(float(error.mean()), 2), "box_side_px": round(float(side.mean()), 1)}
    for point, axis in ((1, 0), (31, 0), (52, 1)):
        along = np.abs(mapped[:, point, axis] - pfld[:, point, axis])
        result[f"point_{point}_{'xy'[axis]}"] = {"mean_px": round(float(along.mean()), 2), "max_px": round(float(along.max()), 2)}
    print(name, json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("landmarks", type=Path)
    parser.add_argument("--source", required=True, help="where the footage and landmarks come from (recorded in the map)")
    parser.add_argument("--train", type=float, default=2 / 3)
    parser.add_argument("--neighbours", type=int, default=3)
    parser.add_argument("--heldout", type=Path, default=TEST_DATA)
    args = parser.parse_args()
    mesh, pfld = tracked_pairs(args.video, args.landmarks)
    split = int(len(mesh) * args.train)
    indices, weights = fit(mesh[:split], pfld[:split], args.neighbours)
    fitted = report("train", mesh[:split], pfld[:split], indices, weights)
    held = report("held-out", mesh[split:], pfld[split:], indices, weights)
    data = {"fitted_on": {"source": args.source, "train_frames": f"0..{split - 1}", "held_out_frames": f"{split}..{len(mesh) - 1}",
                          "neighbours": args.neighbours, "ridge": RIDGE, "train": fitted, "held_out": held},
            "indices": indices.tolist(), "weights": np.round(weights, 6).tolist()}
    data_path(MAP_FILE).write_text(json.dumps(data, indent=None) + "\n")
    every = slice(split, None, HELDOUT_EVERY)  # a sample of the held-out frames keeps the test's data small
    np.savez_compressed(args.heldout, mesh=mesh[every].astype(np.float32), pfld=pfld[every].astype(np.float32))


if __name__ == "__main__":
    main()
