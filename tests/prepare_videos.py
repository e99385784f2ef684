"""Short generated videos of drawn faces for the prepare tests: encoded with ffmpeg as a camera's would be."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np

from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.audio.ffmpeg import ffmpeg_executable

WIDTH, HEIGHT = 256, 192


def face_frame(k: int, faces: tuple[tuple[float, float, float], ...] = ((0.5, 0.3, 0.5),), size=(WIDTH, HEIGHT)) -> np.ndarray:
    """Drawn frame k (BGR) with a face per (centre x, top y, size) in shares of the frame's height; the mouth moves."""
    width, height = size
    image = synthetic.draw_frame(width, height, k, np.zeros((0, 2)), (0, 0, 0), (0.0, 0.5))
    for x, y, side in faces:
        box = (x * width - side * height / 2, y * height, side * height)
        face = synthetic.draw_frame(width, height, k, np.zeros((0, 2)), box, (0.5 * abs(np.sin(k / 3)), 0.5))
        mask = np.zeros((height, width), np.uint8)
        cv2.ellipse(mask, (int(box[0] + box[2] / 2), int(box[1] + box[2] * 0.9)), (int(box[2] * 0.95), int(box[2] * 0.95)),
                    0, 0, 360, 255, -1)
        image[mask > 0] = face[mask > 0]
    return image


def encode(frames: list[np.ndarray], path: Path, rate: float = 30, extra: tuple[str, ...] = ()) -> Path:
    """`frames` as an H.264 video at `rate` frames per second (ffmpeg options `extra` before the output)."""
    height, width = frames[0].shape[:2]
    command = [ffmpeg_executable(), "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s",
               f"{width}x{height}", "-r", str(rate), "-i", "pipe:0", "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p",
               *extra, str(path)]
    subprocess.run(command, input=b"".join(f.tobytes() for f in frames), check=True)
    return path


def decode(path: Path, rate: int = 25) -> list[np.ndarray]:
    """Every frame of `path` as a direct ffmpeg decode at `rate` fps gives it, BGR."""
    first = subprocess.run([ffmpeg_executable(), "-nostdin", "-loglevel", "error", "-i", str(path), "-frames:v", "1", "-f",
                            "image2pipe", "-vcodec", "png", "pipe:1"], capture_output=True, check=True).stdout
    height, width = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    raw = subprocess.run([ffmpeg_executable(), "-nostdin", "-loglevel", "error", "-i", str(path), "-vf", f"fps={rate}", "-f",
                          "rawvideo", "-pix_fmt", "bgr24", "pipe:1"], capture_output=True, check=True).stdout
    return list(np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3))
