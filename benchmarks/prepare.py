"""How fast `frame-gen prepare` is, and how close its crop boxes come to upstream's. `python benchmarks/prepare.py --help`.

Speed: the first --seconds of --video scaled to 1920x1080 (H.264, crf 18) and made into a template
folder by `prepare_templates` in this process: seconds per minute of video, wall and CPU, beside a
plain decode of the same clip at 25 fps.

Boxes: the whole of --video tracked once (raw mesh points), then mapped and smoothed with each
setting in SMOOTHING; each frame's crop box (points 1, 31, 52, as the renderer reads them) beside
the box of upstream's landmarks for that frame (--landmarks, `{k}.lms`): mean IoU over all frames and
over the frames the map's fit held out, the mean offsets of the box's edges, and jitter (the mean
absolute second difference of xmin, ymin and xmax from frame to frame, pixels) of ours and upstream's.
Run it under `flock /tmp/bench.lock`; it records the CPU's flags.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import machine  # noqa: E402  (a sibling script, not a package)

#: (name, min_cutoff Hz, beta); None: unsmoothed.
SMOOTHING = [("raw", None, None), ("one-euro 2 Hz, beta 4 (default)", 2.0, 4.0), ("one-euro 1 Hz, beta 4", 1.0, 4.0),
             ("one-euro 0.5 Hz, beta 4", 0.5, 4.0), ("one-euro 1 Hz, beta 1", 1.0, 1.0)]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(u.ru_utime + u.ru_stime for u in usage)


def speed(video: Path, seconds: float) -> dict:
    """Seconds per minute of 1080p video: the whole command and a plain decode."""
    from frame_generation_pipeline.audio.ffmpeg import ffmpeg_executable
    from frame_generation_pipeline.prepare.run import prepare_templates
    from frame_generation_pipeline.prepare.video import VideoClip, probe_video, read_frames

    with tempfile.TemporaryDirectory(prefix="fgp-prepare-bench-") as tmp:
        clip = Path(tmp) / "clip1080.mp4"
        subprocess.run([ffmpeg_executable(), "-nostdin", "-loglevel", "error", "-i", str(video), "-t", str(seconds), "-vf",
                        "scale=1920:1080", "-c:v", "libx264", "-crf", "18", "-an", str(clip)], check=True)
        started, cpu = time.perf_counter(), _cpu()
        frames = sum(1 for _ in read_frames(VideoClip(clip), probe_video(VideoClip(clip))))
        decode = time.perf_counter() - started, _cpu() - cpu
        started, cpu = time.perf_counter(), _cpu()
        result = prepare_templates(clip, Path(tmp) / "out")
        whole = time.perf_counter() - started, _cpu() - cpu
    per_minute = 60 / (frames / 25)
    return {"frames": frames, "size": "1920x1080", "decode_s_per_min": round(decode[0] * per_minute, 1),
            "decode_cpu_s_per_min": round(decode[1] * per_minute, 1), "prepare_s_per_min": round(whole[0] * per_minute, 1),
            "prepare_cpu_s_per_min": round(whole[1] * per_minute, 1), "detections": result.detections}


def _boxes(landmarks: list[np.ndarray]) -> np.ndarray:
    from frame_generation_pipeline.inputs.landmarks import crop_box, landmark_text, parse_landmarks

    return np.array([list(crop_box(parse_landmarks(landmark_text(points)))) for points in landmarks], dtype=np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (xmin, ymin, xmax, ymax) rows."""
    low, high = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    area = lambda box: np.prod(box[:, 2:] - box[:, :2], axis=1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _jitter(boxes: np.ndarray) -> float:
    return float(np.abs(np.diff(boxes[:, [0, 1, 2]], n=2, axis=0)).mean())


def agreement(video: Path, landmarks: Path) -> dict:
    """Our boxes beside upstream's for each smoothing setting (see the module's docstring)."""
    from frame_generation_pipeline.prepare.face_map import landmark_map, mesh_to_pfld
    from frame_generation_pipeline.prepare.smoothing import OneEuroFilter
    from frame_generation_pipeline.prepare.tracking import FaceTracker
    from frame_generation_pipeline.prepare.video import VideoClip, probe_video, read_frames

    clip = VideoClip(video)
    tracker = FaceTracker()
    meshes = [tracker(k, frame).points for k, frame in enumerate(read_frames(clip, probe_video(clip)))]
    upstream = _boxes([np.loadtxt(landmarks / f"{k}.lms") for k in range(len(meshes))])
    held_out = int(landmark_map()[2]["held_out_frames"].split("..")[0])
    rows = {"upstream": {"jitter_px": round(_jitter(upstream), 2)}}
    for name, cutoff, beta in SMOOTHING:
        smoother = OneEuroFilter(25, cutoff, beta) if cutoff is not None else None
        points = [mesh_to_pfld(mesh) for mesh in meshes]
        if smoother is not None:
            points = [smoother(p, float(p[31, 0] - p[1, 0])) for p in points]
        ours = _boxes(points)
        iou = _iou(ours, upstream)
        offsets = np.abs(ours - upstream).mean(axis=0)
        rows[name] = {"mean_iou": round(float(iou.mean()), 4), "mean_iou_held_out": round(float(iou[held_out:].mean()), 4),
                      "min_iou": round(float(iou.min()), 4), "jitter_px": round(_jitter(ours), 2),
                      "offset_px": dict(zip(("xmin", "ymin", "xmax", "ymax"), np.round(offsets, 2).tolist()))}
    return {"frames": len(meshes), "held_out_from": held_out, "box_side_px": round(float((upstream[:, 2] - upstream[:, 0]).mean()), 1),
            "settings": rows}


def main() -> None:
    """Parse the options, measure, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, required=True, help="real footage at 25 fps with upstream's landmarks")
    parser.add_argument("--landmarks", type=Path, required=True, help="upstream's {k}.lms for the video's frames")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of the video timed at 1080p")
    parser.add_argument("--json", default=str(HERE / "prepare_results.json"), help="where to write results")
    args = parser.parse_args()
    report = {"machine": machine(), "speed": speed(args.video, args.seconds), "boxes": agreement(args.video, args.landmarks)}
    print(json.dumps(report, indent=1))
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
