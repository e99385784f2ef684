"""Where the CPU goes outside the network, per stage, and what each x264 preset costs and gives.

Stages are timed one at a time on one thread (core-ms per frame, thread CPU time): JPEG decode,
crop preparation (crop, resize, mask, network input), compose (to pixels, paste; and with the
feather, alone and with the colour match, at the default width), and the hand-off
to ffmpeg with its encode (our writer's CPU and ffmpeg's, from frames already rendered).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

from frame_generation_pipeline.inputs.templates import TemplateSet
from frame_generation_pipeline.outputs.video import DEFAULT_PRESET, VideoEncoder
from frame_generation_pipeline.render.blend import Blend
from frame_generation_pipeline.render.cropped import compose, crop_template


def _per_frame_ms(action, items) -> tuple[float, list]:
    start = time.thread_time()
    results = [action(item) for item in items]
    return 1000 * (time.thread_time() - start) / len(items), results


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _encode(frames: list[np.ndarray], path: Path, audio: str, preset: str) -> tuple[float, float, float]:
    """(wall s, our core-s, ffmpeg core-s) to encode `frames`."""
    height, width = frames[0].shape[:2]
    wall, own, children = time.perf_counter(), time.process_time(), _children_cpu()
    with VideoEncoder(path, width, height, 25, audio, preset=preset, frame_count=len(frames)) as encoder:
        for frame in frames:
            encoder.write(frame)
    return time.perf_counter() - wall, time.process_time() - own, _children_cpu() - children


def measure_stages(data: dict, workdir: Path, frames: int) -> dict[str, float]:
    """core-ms per frame of decode, crop, compose, and the pipe + encode at the default preset."""
    templates = TemplateSet.from_folder(data["templates"])
    indices = list(range(min(frames, len(templates))))
    decode_ms, decoded = _per_frame_ms(templates.load, indices)
    crop_ms, cropped = _per_frame_ms(crop_template, decoded)
    outputs = np.random.default_rng(0).random((3, 320, 320), dtype=np.float32)
    compose_ms, composed = _per_frame_ms(lambda item: compose(item, outputs), cropped)
    feather_ms, _ = _per_frame_ms(lambda item: compose(item, outputs, Blend("feather")), cropped)
    matched_ms, _ = _per_frame_ms(lambda item: compose(item, outputs, Blend("feather", color_match=True)), cropped)
    _, own, ffmpeg = _encode(composed, workdir / "stages.mp4", data["audio"], DEFAULT_PRESET)
    count = len(indices)
    return {"decode": decode_ms, "crop": crop_ms, "compose": compose_ms, "compose feather": feather_ms,
            "compose feather + colour match": matched_ms,
            "pipe (ours)": 1000 * own / count, f"x264 {DEFAULT_PRESET} (ffmpeg)": 1000 * ffmpeg / count}


def measure_presets(data: dict, workdir: Path, frames: int, presets: tuple[str, ...]) -> list[dict]:
    """x264 presets at crf 20 on the same exactly rendered frames: fps, size, PSNR to the lossless frames."""
    import av

    from frame_generation_pipeline import FrameGenerationPipeline

    pipeline = FrameGenerationPipeline(data["checkpoint"], device="cpu")
    lossless = list(pipeline.generator.iter_frames(data["templates"], data["features"], frame_count=frames))
    rows = []
    for preset in presets:
        path = workdir / f"preset-{preset}.mp4"
        seconds, _, ffmpeg = _encode(lossless, path, data["audio"], preset)
        with av.open(str(path)) as container:
            decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
        mse = np.mean([np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(decoded, lossless)])
        rows.append({"preset": preset, "fps": len(lossless) / seconds, "ffmpeg_cpu_ms": 1000 * ffmpeg / len(lossless),
                     "kbytes": path.stat().st_size / 1024, "psnr_db": 10 * np.log10(255.0**2 / mse)})
    return rows
