"""Throughput benchmark: `make bench` (or `python benchmarks/run.py --help`).

Measured side by side in one run, on generated data (drawn templates, random-weight checkpoint in
the real layout, speech-like audio), for each frame size:

  (a) upstream: a straight transcription of upstream's loop (torch eager, one frame per forward
      pass, an MJPG temporary video, then a second encode with libx264 crf 20 + AAC);
  (b) pipeline: FrameGenerationPipeline.generate_video end to end, per backend, default settings;
  (c) network: the backend's network alone at the batch size the pipeline uses, with as many
      calls at once as the pipeline makes (the model's `streams`).

There are as many templates as frames, so every frame decodes its template (as with a real
template video longer than the clip). Each measurement runs in a fresh subprocess, so its peak RSS
and CPU time are its own, and the measurements take turns for `--repeat` rounds: on a shared
machine a neighbour's load comes and goes, so frames/s is each one's best round (all rounds are
kept in the JSON). Model loading and the one-time ONNX export are outside the timings of (a), (b)
and (c) alike; (c) is a steady rate, measured on at most 64 frames. Also measured: x264 presets
at crf 20 on the same frames (speed, file size, PSNR against the lossless frames). Results are
printed as a table and written as JSON.
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
NETWORK_FRAMES = 64


def make_data(folder: Path, width: int, height: int, frames: int) -> dict[str, str]:
    """Templates, checkpoint, features and speech for one frame size."""
    import numpy as np

    from frame_generation_pipeline import synthetic
    from frame_generation_pipeline.demo import write_speech_like_wav

    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "templates": str(synthetic.make_templates(folder / "templates", frames, width, height, parsing=False)),
        "checkpoint": str(folder / "ave.pth"),
        "features": str(folder / "features.npy"),
        "audio": str(write_speech_like_wav(folder / "speech.wav", frames / 25 + 0.5)),
    }
    if not Path(data["checkpoint"]).exists():
        synthetic.save_random_checkpoint(data["checkpoint"], "ave", seed=0)
    np.save(data["features"], synthetic.random_features("ave", frames, seed=0))
    return data


class Clock:
    """Wall time and CPU time (this process, and its finished children: ffmpeg) over a block."""

    def __enter__(self) -> "Clock":
        self._start = (time.perf_counter(), _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN))
        return self

    def __exit__(self, *exc: object) -> None:
        wall, own, children = self._start
        self.seconds = time.perf_counter() - wall
        self.cpu_s = _cpu(resource.RUSAGE_SELF) - own
        self.ffmpeg_cpu_s = _cpu(resource.RUSAGE_CHILDREN) - children

    def result(self, frames: int, **extra: object) -> dict:
        """frames/s and core-ms per frame for `frames` frames timed by this clock."""
        return {"fps": frames / self.seconds, "cpu_ms": 1000 * self.cpu_s / frames,
                "ffmpeg_cpu_ms": 1000 * self.ffmpeg_cpu_s / frames, **extra}


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure_upstream(data: dict[str, str], out: Path, frames: int) -> dict:
    """(a): the upstream loop, MJPG temporary file, second encode."""
    import cv2

    sys.path.insert(0, str(ROOT))
    from frame_generation_pipeline.video import ffmpeg_executable
    from tests.spec_reference import render

    import numpy as np

    features = np.load(data["features"])
    writer = None
    temporary = out.with_suffix(".tmp.avi")
    with Clock() as clock:
        for frame in render(data["checkpoint"], "ave", data["templates"], features):
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
            writer.write(frame)
        writer.release()
        subprocess.run([ffmpeg_executable(), "-loglevel", "error", "-y", "-i", str(temporary), "-i", data["audio"],
                        "-c:v", "libx264", "-c:a", "aac", "-crf", "20", str(out)], check=True)
    temporary.unlink()
    return clock.result(frames, batch=1, streams=1)


def measure_pipeline(data: dict[str, str], out: Path, backend: str, preset: str, frames: int) -> dict:
    """(b): generate_video end to end."""
    from frame_generation_pipeline import FrameGenerationPipeline

    pipeline = FrameGenerationPipeline(data["checkpoint"], mode="ave", device="cpu", backend=backend)
    with Clock() as clock:
        pipeline.generate_video(data["features"], data["templates"], data["audio"], out, preset=preset)
    return clock.result(frames, batch=pipeline.generator.batch_size, streams=pipeline.generator.model.streams)


def measure_network(data: dict[str, str], backend: str, frames: int) -> dict:
    """(c): the backend's network alone as the pipeline runs it (batch size, calls at once)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from frame_generation_pipeline import FrameGenerationPipeline

    pipeline = FrameGenerationPipeline(data["checkpoint"], mode="ave", device="cpu", backend=backend)
    batch = pipeline.generator.batch_size
    model = pipeline.generator.model
    rng = np.random.default_rng(0)
    images = rng.random((batch, 6, 320, 320), dtype=np.float32)
    audio = rng.standard_normal((batch, 32, 16, 16), dtype=np.float32)
    calls = max(model.streams, frames // batch)
    with ThreadPoolExecutor(model.streams) as pool:
        list(pool.map(lambda _: model.run(images, audio), range(model.streams)))
        with Clock() as clock:
            list(pool.map(lambda _: model.run(images, audio), range(calls)))
    return clock.result(calls * batch, batch=batch, streams=model.streams)


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
    if args.measure == "upstream":
        result = measure_upstream(data, out, args.frames)
    elif args.measure == "pipeline":
        result = measure_pipeline(data, out, args.backend, args.preset, args.frames)
    elif args.measure == "network":
        result = measure_network(data, args.backend, args.frames)
    else:
        result = {"presets": measure_presets(data, Path(args.workdir), args.frames)}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(measure: str, data: dict, workdir: Path, frames: int, backend: str = "", preset: str = "") -> dict:
    command = [sys.executable, __file__, "--child", "--measure", measure, "--data", json.dumps(data), "--workdir",
               str(workdir), "--frames", str(frames), "--backend", backend, "--preset", preset]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{measure} {backend} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def best_of(rounds: list[dict]) -> dict:
    """The round with the highest frames/s, with every round's frames/s and the peak memory of all."""
    best = dict(max(rounds, key=lambda row: row["fps"]))
    best["fps_rounds"] = [row["fps"] for row in rounds]
    best["peak_rss_mb"] = max(row["peak_rss_mb"] for row in rounds)
    return best


def measure_size(size: str, data: dict, args: argparse.Namespace, preset: str, workdir: Path) -> dict:
    """(a), (b) and (c) for one frame size, taking turns for `args.repeat` rounds."""
    backends = args.backends.split(",")
    for backend in backends:  # export and cache the ONNX graph outside the timings
        run_child("network", data, workdir, 2, backend)
    runs = {"upstream": ("upstream", "", args.frames)}
    for backend in backends:
        runs[f"pipeline-{backend}"] = ("pipeline", backend, args.frames)
        runs[f"network-{backend}"] = ("network", backend, min(args.frames, NETWORK_FRAMES))
    rounds: dict[str, list[dict]] = {name: [] for name in runs}
    for round_ in range(args.repeat):
        for name, (measure, backend, frames) in runs.items():
            rounds[name].append(run_child(measure, data, workdir, frames, backend, preset))
            print(f"{size} round {round_ + 1}/{args.repeat} {name}: {rounds[name][-1]['fps']:.2f} frames/s", flush=True)
    rows = {name: best_of(found) for name, found in rounds.items()}
    for backend in backends:
        pipe = rows[f"pipeline-{backend}"]
        pipe["vs_upstream"] = pipe["fps"] / rows["upstream"]["fps"]
        pipe["efficiency"] = pipe["fps"] / rows[f"network-{backend}"]["fps"]
    return rows


def print_report(report: dict, json_path: str) -> None:
    print(f"\n{report['machine']['cpu_count']} CPUs, {report['frames']} frames per run, best of {report['repeat']} "
          f"rounds, x264 preset {report['preset']}, crf 20")
    print(f"{'size':<10}{'run':<22}{'batch':>6}{'streams':>8}{'frames/s':>10}{'x upstream':>12}{'of network':>12}"
          f"{'core-ms/f':>11}{'ffmpeg':>8}{'peak MB':>9}")
    for size, rows in report["sizes"].items():
        for name, row in rows.items():
            ratio = f"{row['vs_upstream']:.2f}x" if "vs_upstream" in row else ""
            efficiency = f"{row['efficiency']:.0%}" if "efficiency" in row else ""
            print(f"{size:<10}{name:<22}{row['batch']:>6}{row['streams']:>8}{row['fps']:>10.2f}{ratio:>12}{efficiency:>12}"
                  f"{row['cpu_ms']:>11.0f}{row['ffmpeg_cpu_ms']:>8.0f}{row['peak_rss_mb']:>9.0f}")
    print(f"\nx264 presets at crf 20, {next(iter(report['sizes']))}:")
    print(f"{'preset':<12}{'encode fps':>11}{'kB':>9}{'PSNR dB':>9}")
    for row in report["presets"]:
        print(f"{row['preset']:<12}{row['fps']:>11.1f}{row['kbytes']:>9.0f}{row['psnr_db']:>9.2f}")
    print(f"\nwritten to {json_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1280x720,1920x1080", help="comma-separated WxH")
    parser.add_argument("--frames", type=int, default=200, help="frames per end-to-end run (an 8 s clip)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every measurement; the best counts")
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
    report = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version()},
              "frames": args.frames, "repeat": args.repeat, "preset": preset, "sizes": {}}
    sizes = args.sizes.split(",")
    with tempfile.TemporaryDirectory(prefix="fgp-bench-") as tmp:
        os.environ.setdefault("FRAME_GEN_CACHE_DIR", str(Path(tmp) / "cache"))
        for size in sizes:
            workdir = Path(tmp) / size
            width, height = map(int, size.split("x"))
            data = make_data(workdir, width, height, args.frames)
            report["sizes"][size] = measure_size(size, data, args, preset, workdir)
            if size == sizes[0]:
                report["presets"] = run_child("presets", data, workdir, min(args.frames, 48))["presets"]
    Path(args.json).write_text(json.dumps(report, indent=1))
    print_report(report, args.json)


if __name__ == "__main__":
    main()
