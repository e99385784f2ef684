"""Upstream's render loop as `inference_328.py` runs it, for the benchmark's baseline row.

Written from the facts of docs/contract.md, in upstream's shape: the network in torch eager, one
frame per forward pass, every template read from disk each frame, frames into an MJPG temporary
video, then a second encode with libx264 and the speech. Nothing from the package but the network
module (the same module upstream's checkpoints load into) and the path of the ffmpeg binary.

Run as a script it is upstream's whole process (the interpreter, `import torch`, the load, the loop,
both encodes): `python benchmarks/upstream.py CHECKPOINT TEMPLATE_DIR FEATURES.npy SPEECH OUTPUT.mp4`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import torch

from frame_generation_pipeline.audio.ffmpeg import ffmpeg_executable
from frame_generation_pipeline.models.network import SyncTalkUNet

AUDIO_SHAPE = {"ave": (32, 16, 16), "hubert": (32, 32, 32), "wenet": (256, 16, 32)}


def _window(features: np.ndarray, index: int, mode: str) -> torch.Tensor:
    half = 8
    left, right = max(index - half, 0), min(index + half, len(features))
    rows = features[left:right]
    if index - half < 0:
        rows = np.concatenate([np.zeros((half - index, features.shape[1]), np.float32), rows])
    if index + half > len(features):
        rows = np.concatenate([rows, np.zeros((index + half - len(features), features.shape[1]), np.float32)])
    return torch.from_numpy(rows.reshape(AUDIO_SHAPE[mode]).astype(np.float32))[None]


def render_video(checkpoint: str, mode: str, template_dir: str, features_path: str, audio: str, output: str) -> int:
    """Render like upstream (torch eager, batch 1, MJPG temporary, second encode); return the frame count."""
    net = SyncTalkUNet(mode)
    net.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    net.eval()
    features = np.load(features_path).astype(np.float32)
    features = features.reshape(len(features), -1)
    images = os.path.join(template_dir, "full_body_img")
    count = len([name for name in os.listdir(images) if name.endswith(".jpg")])
    temporary = output + ".tmp.avi"
    writer = None
    index, step = 0, 0
    for i in range(len(features)):
        if index > count - 2:
            step = -1
        if index < 1:
            step = 1
        index += step
        image = cv2.imread(os.path.join(images, f"{index}.jpg"))
        with open(os.path.join(template_dir, "landmarks", f"{index}.lms")) as handle:
            points = np.array([np.array(line.split(" "), dtype=np.float32) for line in handle.read().splitlines()],
                              dtype=np.int32)
        xmin, ymin, xmax = points[1][0], points[52][1], points[31][0]
        ymax = ymin + (xmax - xmin)
        crop = image[ymin:ymax, xmin:xmax]
        height, width = crop.shape[:2]
        crop = cv2.resize(crop, (328, 328), interpolation=cv2.INTER_CUBIC)
        canvas = crop.copy()
        real = crop[4:324, 4:324].copy()
        masked = cv2.rectangle(real.copy(), (5, 5, 310, 305), (0, 0, 0), -1)
        real_t = torch.from_numpy(real.transpose(2, 0, 1).astype(np.float32) / 255.0)
        masked_t = torch.from_numpy(masked.transpose(2, 0, 1).astype(np.float32) / 255.0)
        with torch.no_grad():
            prediction = net(torch.cat([real_t, masked_t])[None], _window(features, i, mode))[0]
        canvas[4:324, 4:324] = np.array(prediction.numpy().transpose(1, 2, 0) * 255, dtype=np.uint8)
        image[ymin:ymax, xmin:xmax] = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_CUBIC)
        if writer is None:
            writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*"MJPG"), 25, (image.shape[1], image.shape[0]))
        writer.write(image)
    writer.release()
    subprocess.run([ffmpeg_executable(), "-loglevel", "error", "-y", "-i", temporary, "-i", audio,
                    "-c:v", "libx264", "-c:a", "aac", "-crf", "20", output], check=True)
    os.remove(temporary)
    return len(features)


if __name__ == "__main__":
    render_video(sys.argv[1], "ave", *sys.argv[2:6])
