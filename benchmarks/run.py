"""Throughput benchmark: `make bench` (or `python benchmarks/run.py --help`).

Measured side by side in one run, on generated data (drawn templates, random-weight checkpoint in
the real layout, speech-like audio), for each frame size:

  (a) upstream: a straight transcription of upstream's loop (torch eager, one frame per forward
      pass, an MJPG temporary video, then a second encode with libx264 crf 20 + AAC);
  (b) pipeline: FrameGenerationPipeline.generate_video end to end, per backend, default settings;
  (c) network: the backend's network alone at the batch size the pipeline uses.

Each measurement runs in a fresh subprocess, so its peak RSS is its own. Model loading and the
one-time ONNX export are outside the timings of (a), (b) and (c) alike. Also measured: x264
presets at crf 20 on the same frames (speed, file size, PSNR against the lossless frames).
Results are printed as a table and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "medium")


def make_data(folder: Path, width: int, height: int, frames: int) -> dict[str, str]:
    """Templates, checkpoint, features and speech for one frame size."""
    import numpy as np

    from frame_generation_pipeline import synthetic
    from frame_generation_pipeline.demo import write_speech_like_wav

    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "templates": str(synthetic.make_templates(folder / "templates", 60, width, height, parsing=False)),
        "checkpoint": str(folder / "ave.pth"),
        "features": str(folder / "features.npy"),
        "audio": str(write_speech_like_wav(folder / "speech.wav", frames / 25 + 0.5)),
    }
    if not Path(data["checkpoint"]).exists():
        synthetic.save_random_checkpoint(data["checkpoint"], "ave", seed=0)
    np.save(data["features"], synthetic.random_features("ave", frames, seed=0))
    return data


def measure_upstream(data: dict[str, str], out: Path) -> float:
    """(a): the upstream loop, MJPG temporary file, second encode. Returns seconds."""
    import cv2

    sys.path.insert(0, str(ROOT))
    from frame_generation_pipeline.video import ffmpeg_executable
    from tests.spec_reference import render

    import numpy as np

    features = np.load(data["features"])
    start = time.perf_counter()
    writer = None
    temporary = out.with_suffix(".tmp.avi")
    for frame in render(data["checkpoint"], "ave", data["templates"], features):
        if writer is None:
            writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"MJPG"), 25, (frame.shape[1], frame.shape[0]))
        writer.write(frame)
    writer.release()
    subprocess.run([ffmpeg_executable(), "-loglevel", "error", "-y", "-i", str(temporary), "-i", data["audio"],
                    "-c:v", "libx264", "-c:a", "aac", "-crf", "20", str(out)], check=True)
    elapsed = time.perf_counter() - start
    temporary.unlink()
    return elapsed


def measure_pipeline(data: dict[str, str], out: Path, backend: str, preset: str) -> tuple[float, int]:
    """(b): generate_video end to end. Returns (seconds, batch size)."""
    from frame_generation_pipeline import FrameGenerationPipeline

    pipeline = FrameGenerationPipeline(data["checkpoint"], mode="ave", device="cpu", backend=backend)
    start = time.perf_counter()
    pipeline.generate_video(data["features"], data["templates"], data["audio"], out, preset=preset)
    return time.perf_counter() - start, pipeline.generator.batch_size


def measure_network(data: dict[str, str], backend: str, frames: int) -> tuple[float, int]:
    """(c): the backend's network alone on `frames` inputs at the pipeline's batch size."""
    import numpy as np

    from frame_generation_pipeline import FrameGenerationPipeline

    pipeline = FrameGenerationPipeline(data["checkpoint"], mode="ave", device="cpu", backend=backend)
    batch = pipeline.generator.batch_size
    model = pipeline.generator.model
    rng = np.random.default_rng(0)
    images = rng.random((batch, 6, 320, 320), dtype=np.float32)
    audio = rng.standard_normal((batch, 32, 16, 16), dtype=np.float32)
    model.run(images, audio)
    start = time.perf_counter()
    for _ in range(max(1, frames // batch)):
        model.run(images, audio)
    return (time.perf_counter() - start) / (max(1, frames // batch) * batch) * frames, batch


def measure_presets(data: dict[str, str], folder: Path, frames: int) -> list[dict]:
    """x264 presets at crf 20 on the same rendered frames: fps, size, PSNR to the lossless frames."""
    import av
    import numpy as np

    from frame_generation_pipeline import AudioFeatures, FrameGenerationPipeline, TemplateSet
    from frame_generation_pipeline.video import VideoEncoder

    pipeline = FrameGenerationPipeline(data["checkpoint"], device="cpu", backend="onnxruntime")
    lossless = list(pipeline.generator.iter_frames(TemplateSet.from_folder(data["templates"]),
                                                   AudioFeatures.load(data["features"], "ave")))[:frames]
    height, width = lossless[0].shape[:2]
    rows = []
    for preset in PRESETS:
        path = folder / f"preset-{preset}.mp4"
        start = time.perf_counter()
        with VideoEncoder(path, width, height, 25, data["audio"], crf=20, preset=preset, frame_count=len(lossless)) as encoder:
            for frame in lossless:
                encoder.write(frame)
        seconds = time.perf_counter() - start
        with av.open(str(path)) as container:
            decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
        mse = np.mean([np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(decoded, lossless)])
        rows.append({"preset": preset, "fps": len(lossless) / seconds, "kbytes": path.stat().st_size / 1024,
                     "psnr_db": 10 * np.log10(255.0**2 / mse)})
    return rows


def child(args: argparse.Namespace) -> None:
    """Run one measurement and print it as JSON with this process's peak RSS."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    data = json.loads(args.data)
    out = Path(args.workdir) / f"{args.measure}-{args.backend}.mp4"
    result: dict = {}
    if args.measure == "upstream":
        result["seconds"] = measure_upstream(data, out)
    elif args.measure == "pipeline":
        result["seconds"], result["batch"] = measure_pipeline(data, out, args.backend, args.preset)
    elif args.measure == "network":
        result["seconds"], result["batch"] = measure_network(data, args.backend, args.frames)
    elif args.measure == "presets":
        result["presets"] = measure_presets(data, Path(args.workdir), args.frames)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(measure: str, data: dict, workdir: Path, frames: int, backend: str = "", preset: str = "") -> dict:
    command = [sys.executable, __file__, "--child", "--measure", measure, "--data", json.dumps(data), "--workdir",
               str(workdir), "--frames", str(frames), "--backend", backend, "--preset", preset]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{measure} {backend} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1280x720,1920x1080", help="comma-separated WxH")
    parser.add_argument("--frames", type=int, default=96, help="frames per measurement (fixed costs amortise over ~100)")
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--preset", default=None, help="x264 preset for (b) (default: the pipeline's)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"), help="where to write results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from frame_generation_pipeline.video import DEFAULT_PRESET

    preset = args.preset or DEFAULT_PRESET
    backends = args.backends.split(",")
    report = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version()}, "frames": args.frames, "preset": preset, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="fgp-bench-") as tmp:
        os.environ.setdefault("FRAME_GEN_CACHE_DIR", str(Path(tmp) / "cache"))
        for size in args.sizes.split(","):
            width, height = map(int, size.split("x"))
            workdir = Path(tmp) / size
            data = make_data(workdir, width, height, args.frames)
            for backend in backends:  # export and cache the ONNX graph outside the timings
                run_child("network", data, workdir, 2, backend)
            rows = {"upstream": run_child("upstream", data, workdir, args.frames)}
            for backend in backends:
                rows[f"pipeline-{backend}"] = run_child("pipeline", data, workdir, args.frames, backend, preset)
                rows[f"network-{backend}"] = run_child("network", data, workdir, args.frames, backend)
            for row in rows.values():
                row["fps"] = args.frames / row["seconds"]
            for backend in backends:
                pipe = rows[f"pipeline-{backend}"]
                pipe["vs_upstream"] = pipe["fps"] / rows["upstream"]["fps"]
                pipe["efficiency"] = pipe["fps"] / rows[f"network-{backend}"]["fps"]
            report["sizes"][size] = rows
            if size == args.sizes.split(",")[0]:
                report["presets"] = run_child("presets", data, workdir, min(args.frames, 48))["presets"]
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"{report['machine']['cpu_count']} CPUs, {args.frames} frames per run, x264 preset {preset}, crf 20")
    print(f"{'size':<10}{'run':<22}{'batch':>6}{'frames/s':>10}{'x upstream':>12}{'of network':>12}{'peak MB':>9}")
    for size, rows in report["sizes"].items():
        for name, row in rows.items():
            ratio = f"{row['vs_upstream']:.2f}x" if "vs_upstream" in row else ""
            efficiency = f"{row['efficiency']:.0%}" if "efficiency" in row else ""
            print(f"{size:<10}{name:<22}{row.get('batch', 1):>6}{row['fps']:>10.2f}{ratio:>12}{efficiency:>12}{row['peak_rss_mb']:>9.0f}")
    print(f"\nx264 presets at crf 20, {report['sizes'] and next(iter(report['sizes']))}:")
    print(f"{'preset':<12}{'encode fps':>11}{'kB':>9}{'PSNR dB':>9}")
    for row in report["presets"]:
        print(f"{row['preset']:<12}{row['fps']:>11.1f}{row['kbytes']:>9.0f}{row['psnr_db']:>9.2f}")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
