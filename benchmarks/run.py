"""Throughput benchmark: `make bench` (or `python benchmarks/run.py --help`).

Measured side by side in one run, on generated data (drawn templates, a random-weight checkpoint
in the real layout, speech-like audio), for each frame size:

  upstream    upstream's loop (benchmarks/upstream.py: torch eager, one frame per forward pass, an
              MJPG temporary video, then a second encode with libx264 crf 20 + AAC);
  whole process  what a user waits for, from starting the process to its exit: upstream's script
              as its own process (python, import torch, the load, the loop, both encodes) against
              `frame-gen video` with the default options (the export cache warm: the checkpoint's
              graphs exported and compiled by an earlier run), both from the same feature file;
  default     what `frame-gen video` does with no options (backend auto, default batch and preset,
              the template cache on); "no template cache" the same with --template-cache-mb 0;
  pipeline    `video` end to end per backend (and precision), default settings otherwise; the
              onnxruntime row with a given --onnx file loads no torch weights (see its peak MB);
              "no template cache" rows run the whole network for every frame;
  network     each backend's network alone, at the pipeline's batch size and concurrent calls:
              the whole network, the rest with the template half cached, a first visit (whole, keeping the skips);
  stages      core-ms per frame of each stage outside the network (stages.py).

There are --templates templates (default 50, a 2 s template video), so the ping-pong schedule
returns to each template several times in a clip, as in any video longer than its templates
(--templates equal to --frames: every frame decodes its template, and the template cache never
hits). Each measurement runs in a fresh subprocess, so its peak RSS
and CPU time are its own, and the measurements take turns for `--repeat` rounds: on a shared
machine a neighbour's load comes and goes, so frames/s is each one's best round (all rounds are
kept in the JSON). Model loading and one-time exports are outside every timing but the whole processes'. The report starts
with the CPU's flags (AVX2, AVX-512, bf16, AMX): numbers from different machines differ by them.
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

HERE = Path(__file__).resolve().parent
NETWORK_FRAMES = 64
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "medium")


def make_data(folder: Path, width: int, height: int, frames: int, templates: int, checkpoint: str | None = None) -> dict[str, str]:
    """Templates, checkpoint (a random one unless `checkpoint` is given), features, speech and the
    checkpoint's ONNX export for one frame size."""
    import numpy as np

    from frame_generation_pipeline import UNetModel
    from frame_generation_pipeline.app.demo import synthetic
    from frame_generation_pipeline.app.demo.speech import write_speech_like_wav

    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "templates": str(synthetic.make_templates(folder / "templates", templates, width, height, parsing=False)),
        "checkpoint": str(folder / "ave.pth"),
        "features": str(folder / "features.npy"),
        "audio": str(write_speech_like_wav(folder / "speech.wav", frames / 25)),
        "onnx": str(folder / "ave.onnx"),
    }
    if checkpoint is None:
        synthetic.save_random_checkpoint(data["checkpoint"], "ave", seed=0)
    else:
        data["checkpoint"] = checkpoint
    np.save(data["features"], synthetic.random_features("ave", frames, seed=0))
    UNetModel(data["checkpoint"], "ave", device="cpu").export_to_onnx(data["onnx"])
    return data


class Clock:
    """Wall time and CPU time (this process, and its finished children: ffmpeg) over a block."""

    def __enter__(self) -> Clock:
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


def _pipeline(data: dict, spec: dict):
    from frame_generation_pipeline import FrameGenerationPipeline
    from frame_generation_pipeline.render.template_cache import TemplateCache

    cache = TemplateCache(0) if spec.get("no_template_cache") else None
    if spec["kind"] == "default":
        return FrameGenerationPipeline(data["checkpoint"], template_cache=cache)
    return FrameGenerationPipeline(data["checkpoint"], device="cpu", backend=spec["backend"],
                                   precision=spec.get("precision", "auto"),
                                   onnx_path=data["onnx"] if spec.get("given_onnx") else None, template_cache=cache)


def measure(spec: dict, data: dict, workdir: Path, frames: int) -> dict:
    """One measurement of `spec` (see RUNS) in this process."""
    out = workdir / f"{spec['name'].replace(':', '-')}.mp4"
    if spec["kind"] == "upstream":
        from upstream import render_video

        with Clock() as clock:
            render_video(data["checkpoint"], "ave", data["templates"], data["features"], data["audio"], str(out))
        return clock.result(frames, backend="torch", precision="fp32", batch=1, streams=1)
    if spec["kind"] == "stages":
        from stages import measure_stages

        return {"stages": measure_stages(data, workdir, min(frames, 48))}
    pipeline = _pipeline(data, spec)
    from frame_generation_pipeline.inputs.templates import TemplateSet

    model = pipeline.model_for(TemplateSet.from_folder(data["templates"]))  # precision auto's check, untimed
    if model.splits and not spec.get("no_template_cache"):  # the split graphs' one-time export and loading, untimed
        import numpy as np

        model.first_visit(np.zeros((1, 6, 320, 320), np.float32), np.zeros((1, *model.mode.audio_shape), np.float32))
    if spec["kind"] == "network":
        return network_rate(model, pipeline.batch_size, min(frames, NETWORK_FRAMES), spec.get("part", "full"))
    with Clock() as clock:
        result = pipeline.video(out, data["templates"], data["audio"], data["features"])
    return clock.result(frames, backend=result.backend, precision=result.precision, fidelity_db=result.fidelity_db,
                        batch=result.batch_size, streams=model.streams,
                        split=bool(model.splits) and not spec.get("no_template_cache"))


#: What a network row runs: the whole network, the rest after a cached template half, a template's first visit.
PARTS = {"full": "", "rest": ", template cached", "first": ", first visit"}


def network_rate(model, batch: int, frames: int, part: str = "full") -> dict:
    """frames/s of the network alone (`part` of it) at `batch`, with `model.streams` calls at once."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.random((batch, 6, 320, 320), dtype=np.float32)
    audio = rng.standard_normal((batch, 32, 16, 16), dtype=np.float32)
    skips = model.first_visit(images, audio)[1] if part == "rest" else None
    call = {"full": lambda: model.run(images, audio), "rest": lambda: model.rest(images, skips, audio),
            "first": lambda: model.first_visit(images, audio)}[part]
    calls = max(model.streams, frames // batch)
    with ThreadPoolExecutor(model.streams) as pool:
        list(pool.map(lambda _: call(), range(model.streams)))
        with Clock() as clock:
            list(pool.map(lambda _: call(), range(calls)))
    return clock.result(calls * batch, backend=model.name, precision=model.precision, batch=batch, streams=model.streams)


def runs(backends: list[str]) -> list[dict]:
    """The measurements of one frame size, each {"name", "kind", "backend", "precision", "given_onnx"}."""
    from frame_generation_pipeline.devices import cpu_summary
    from frame_generation_pipeline.models.backends import backend_class

    found = [{"name": "upstream", "kind": "upstream"}, {"name": "default", "kind": "default"},
             {"name": "default, no template cache", "kind": "default", "no_template_cache": True},
             {"name": f"upstream{WHOLE}", "kind": "process"}, {"name": f"default{WHOLE}", "kind": "process"}]
    for backend in backends:
        if not backend_class(backend).installed():
            continue
        precisions = ["fp32", "bf16"] if backend == "openvino" and cpu_summary()["bf16"] else ["fp32"]
        for precision in precisions:
            label = _label(backend, precision)
            found.append({"name": f"pipeline, {label}", "kind": "pipeline", "backend": backend, "precision": precision})
            found.append({"name": f"pipeline, {label}, no template cache", "kind": "pipeline", "backend": backend,
                          "precision": precision, "no_template_cache": True})
            for part, suffix in PARTS.items():
                found.append({"name": f"network, {label}{suffix}", "kind": "network", "backend": backend,
                              "precision": precision, "part": part})
        if backend == "onnxruntime":
            found.append({"name": "pipeline, onnxruntime --onnx", "kind": "pipeline", "backend": backend, "given_onnx": True})
    return found


def child(args: argparse.Namespace) -> None:
    """Run one measurement and print it as JSON with this process's peak RSS."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    sys.path.insert(0, str(HERE))
    result = measure(json.loads(args.spec), json.loads(args.data), Path(args.workdir), args.frames)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def peak_rss_mb() -> float:
    """This process's peak resident memory since its exec (VmHWM; ru_maxrss would count the parent's
    memory at fork time too)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(spec: dict, data: dict, workdir: Path, frames: int) -> dict:
    """Measure `spec` in a fresh subprocess."""
    command = [sys.executable, __file__, "--child", "--spec", json.dumps(spec), "--data", json.dumps(data),
               "--workdir", str(workdir), "--frames", str(frames)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{spec['name']} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


#: The suffix of the rows that time a whole process, from its start to its exit.
WHOLE = ", whole process"


def run_process(spec: dict, data: dict, workdir: Path, frames: int) -> dict:
    """Time `spec`'s whole process (upstream's script, or `frame-gen video` with the default options)
    from its start to its exit, with its CPU time (its own and its children's: ffmpeg). No peak memory:
    a child's ru_maxrss starts from this process's at the fork."""
    output = str(workdir / f"{spec['name'].split(',')[0]}-process.mp4")
    if spec["name"].startswith("upstream"):
        command = [sys.executable, str(HERE / "upstream.py"), data["checkpoint"], data["templates"], data["features"],
                   data["audio"], output]
    else:
        command = [sys.executable, "-m", "frame_generation_pipeline", "video", "--quiet", "--checkpoint", data["checkpoint"],
                   "--template-dir", data["templates"], "--audio-features", data["features"], "--audio", data["audio"],
                   "--output", output]
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)  # the rusage of this child and of its children
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        errors.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{spec['name']} failed:\n{errors.read().decode()[-3000:]}")
    return {"fps": frames / seconds, "seconds": seconds, "cpu_ms": 1000 * (usage.ru_utime + usage.ru_stime) / frames,
            "ffmpeg_cpu_ms": float("nan"), "peak_rss_mb": float("nan")}


def best_of(rounds: list[dict]) -> dict:
    """The round with the highest frames/s, with every round's frames/s and the peak memory of all."""
    best = dict(max(rounds, key=lambda row: row["fps"]))
    best["fps_rounds"] = [row["fps"] for row in rounds]
    best["peak_rss_mb"] = max(row["peak_rss_mb"] for row in rounds)
    return best


def measure_size(size: str, data: dict, args: argparse.Namespace, workdir: Path) -> dict:
    """Every run for one frame size, taking turns for `args.repeat` rounds; ratios added."""
    specs = runs([name for name in args.backends.split(",") if name])
    for spec in specs:  # compile caches (OpenVINO) and warm files outside the timings
        if spec["kind"] == "network":
            run_child(spec, data, workdir, 2)
    rounds: dict[str, list[dict]] = {spec["name"]: [] for spec in specs}
    for round_ in range(args.repeat):
        for spec in specs:
            measure_one = run_process if spec["kind"] == "process" else run_child
            rounds[spec["name"]].append(measure_one(spec, data, workdir, args.frames))
            print(f"{size} round {round_ + 1}/{args.repeat} {spec['name']}: {rounds[spec['name']][-1]['fps']:.2f} frames/s",
                  flush=True)
    rows = {name: best_of(found) for name, found in rounds.items()}
    for side in ("upstream", "default"):  # what the whole processes ran, as the same runs in-process
        rows[f"{side}{WHOLE}"].update({key: rows[side][key] for key in ("backend", "precision", "batch", "streams")})
    for name, row in rows.items():
        if not name.startswith(("upstream", "network")):
            row["vs_upstream"] = row["fps"] / rows[f"upstream{WHOLE}" if name.endswith(WHOLE) else "upstream"]["fps"]
            network = None if name.endswith(WHOLE) else rows.get(f"network, {_label(row['backend'], row['precision'])}"
                               f"{'' if name.endswith('no template cache') else PARTS['rest']}")
            if network is not None:
                row["efficiency"] = row["fps"] / network["fps"]
    return rows


def _label(backend: str, precision: str) -> str:
    return f"openvino {precision}" if backend == "openvino" else backend


def machine() -> dict:
    """What the numbers depend on: CPUs, their flags, the libraries."""
    from frame_generation_pipeline.devices import cpu_flags, cpu_summary, usable_cpus

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpus": usable_cpus(), "cpu": model, "flags": cpu_summary(), "amx_bf16": "amx_bf16" in cpu_flags(),
            "python": platform.python_version()}


def print_report(report: dict, json_path: str) -> None:
    """The tables of the report."""
    flags = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in report["machine"]["flags"].items())
    print(f"\n{report['machine']['cpus']} CPUs ({report['machine']['cpu']}; {flags}), {report['frames']} frames per run over "
          f"{report.get('templates', report['frames'])} templates, "
          f"best of {report['repeat']} rounds")
    print(f"checkpoint: {report.get('checkpoint', 'random')}")
    print(f"{'size':<10}{'run':<46}{'ran as':<24}{'batch':>6}{'streams':>8}{'frames/s':>10}{'x upstream':>12}{'of network':>12}"
          f"{'core-ms/f':>11}{'ffmpeg':>8}{'peak MB':>9}")
    for size, rows in report["sizes"].items():
        for name, row in rows.items():
            if name == "stages":
                continue
            ratio = f"{row['vs_upstream']:.2f}x" if "vs_upstream" in row else ""
            efficiency = f"{row['efficiency']:.0%}" if "efficiency" in row else ""
            checked = f" {row['fidelity_db']:.1f} dB" if row.get("fidelity_db") is not None else ""
            ran = f"{row['backend']} {row['precision']}{checked}{', split' if row.get('split') else ''}"
            print(f"{size:<10}{name:<46}{ran:<24}{row['batch']:>6}{row['streams']:>8}{row['fps']:>10.2f}{ratio:>12}{efficiency:>12}"
                  f"{row['cpu_ms']:>11.0f}{row['ffmpeg_cpu_ms']:>8.0f}{row['peak_rss_mb']:>9.0f}")
    print("\ncore-ms per frame of the stages around the network:")
    for size, rows in report["sizes"].items():
        print(f"{size}: " + ", ".join(f"{stage} {ms:.1f}" for stage, ms in rows["stages"].items()))
    if report.get("presets"):
        print(f"\nx264 presets at crf 20, {next(iter(report['sizes']))}:")
        print(f"{'preset':<12}{'encode fps':>11}{'kB':>9}{'PSNR dB':>9}")
        for row in report["presets"]:
            print(f"{row['preset']:<12}{row['fps']:>11.1f}{row['kbytes']:>9.0f}{row['psnr_db']:>9.2f}")
    print(f"\nwritten to {json_path}")


def main() -> None:
    """Parse the options, measure every size, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1280x720,1920x1080", help="comma-separated WxH")
    parser.add_argument("--frames", type=int, default=200, help="frames per end-to-end run (an 8 s clip)")
    parser.add_argument("--templates", type=int, default=50, help="template frames (the schedule ping-pongs over them)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every measurement; the best counts")
    parser.add_argument("--backends", default="torch,onnxruntime,openvino", help="\"\": the default path and upstream only")
    parser.add_argument("--checkpoint", default=None,
                        help="measure this ave checkpoint (e.g. a trained one: precision auto's check depends on it); "
                             "default: a random one")
    parser.add_argument("--presets", action=argparse.BooleanOptionalAction, default=True, help="the x264 preset table")
    parser.add_argument("--json", default=str(HERE / "results.json"), help="where to write results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    report = {"machine": machine(), "frames": args.frames, "templates": args.templates, "repeat": args.repeat,
              "checkpoint": args.checkpoint or "random", "sizes": {}}
    sizes = args.sizes.split(",")
    with tempfile.TemporaryDirectory(prefix="fgp-bench-") as tmp:
        os.environ["FRAME_GEN_CACHE_DIR"] = str(Path(tmp) / "cache")
        for size in sizes:
            workdir = Path(tmp) / size
            width, height = map(int, size.split("x"))
            data = make_data(workdir, width, height, args.frames, args.templates, args.checkpoint)
            report["sizes"][size] = measure_size(size, data, args, workdir)
            report["sizes"][size]["stages"] = run_child({"name": "stages", "kind": "stages"}, data, workdir, args.frames)["stages"]
            if size == sizes[0] and args.presets:
                from stages import measure_presets

                report["presets"] = measure_presets(data, workdir, min(args.frames, 48), PRESETS)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print_report(report, args.json)


if __name__ == "__main__":
    main()
