"""Time to the first frame with a warm cache: `python benchmarks/startup.py --help`.

`frame-gen video --max-frames 1` as a user runs it (its own process, the export cache warm: the
checkpoint's graphs exported and OpenVINO's compiled model kept by an earlier run), from the
moment the process is started until it has exited with the video written, side by side in turns
with `python -c "import torch"` and `python -c pass` on the same machine. The best of --repeat
rounds counts (all are kept in the JSON). Then where the warm start's time goes:

  breakdown   the same command in a process that stamps its steps: the interpreter's start, the
              imports of the command line, the plan (every input opened and checked), the
              checkpoint's sha256, loading (OpenVINO: from its cache) the graph, the first batch
              out of the network and pasted, the video written, the exit;
  imports     `python -X importtime` of the same command, summed per top-level package.

Generated data as benchmarks/run.py makes it (drawn templates, a random-weight checkpoint, speech-
like audio). The first run (the export and the compile, cold) is timed too. The report starts with
the CPU's flags; $FRAME_GEN_HIDE_CPU_FLAGS="avx512_bf16 amx_bf16 amx_tile" measures a CPU without bf16.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import machine, make_data  # noqa: E402  (a sibling script, not a package)

#: Runs `frame-gen` (argv after the spawn time) and prints when each step ended, in seconds since the spawn.
STAMPED = """
import json, sys, time
spawned, stamps = float(sys.argv[1]), {"interpreter": time.time()}
from frame_generation_pipeline.app.cli import main, render_commands
from frame_generation_pipeline import pipeline
from frame_generation_pipeline.models.backends import exported, onnxruntime_backend, openvino_backend
from frame_generation_pipeline.render.generator import FrameRenderer
stamps["imports"] = time.time()

def stamped(name, function):
    def call(*args, **kwargs):
        result = function(*args, **kwargs)
        stamps.setdefault(name, time.time())
        return result
    return call

def first_frame(frames):
    for frame in frames:
        stamps.setdefault("first frame", time.time())
        yield frame

render_commands.plan_from = stamped("plan", render_commands.plan_from)
exported.checkpoint_digest = stamped("checkpoint sha256", exported.checkpoint_digest)
for backend in (openvino_backend.OpenVinoBackend, onnxruntime_backend.OnnxRuntimeBackend):
    backend.compile_graph = stamped("graph loaded", backend.compile_graph)
iter_frames = FrameRenderer.iter_frames
FrameRenderer.iter_frames = lambda *args, **kwargs: first_frame(iter_frames(*args, **kwargs))
pipeline.encode_frames = stamped("video written", pipeline.encode_frames)
status = main(sys.argv[2:])
stamps["command done"] = time.time()
print(json.dumps({name: stamp - spawned for name, stamp in stamps.items()}))
sys.exit(status)
"""


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Seconds from starting `command` to its exit, and its standard output; SystemExit if it fails."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{result.stderr[-3000:]}")
    return seconds, result.stdout


def video_argv(data: dict, output: Path, backend: str) -> list[str]:
    """The arguments of `frame-gen video --max-frames 1` on the generated data."""
    return ["video", "--quiet", "--checkpoint", data["checkpoint"], "--backend", backend, "--template-dir", data["templates"],
            "--audio-features", data["features"], "--audio", data["audio"], "--output", str(output), "--max-frames", "1"]


def breakdown(argv: list[str]) -> dict[str, float]:
    """Seconds from the spawn to the end of each step of a warm `frame-gen` run (STAMPED)."""
    spawned = time.time()
    _, out = timed([sys.executable, "-c", STAMPED, repr(spawned), *argv])
    stamps = json.loads(out.strip().splitlines()[-1])
    stamps["exit"] = time.time() - spawned
    return dict(sorted(stamps.items(), key=lambda item: item[1]))


def import_times(argv: list[str]) -> dict[str, float]:
    """Seconds of `python -X importtime` per top-level package (its modules' own times summed), largest first."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "frame_generation_pipeline", *argv],
                            capture_output=True, text=True, check=True)
    totals: dict[str, float] = defaultdict(float)
    for line in result.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[0].strip().isdigit():
            totals[fields[2].strip().split(".")[0]] += int(fields[0]) / 1e6
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def main() -> None:
    """Parse the options, measure in turns, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720", help="WxH of the templates")
    parser.add_argument("--backend", default="auto", help="--backend of the command (auto: what a user gets)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of every measurement; the best counts")
    parser.add_argument("--json", default=str(HERE / "startup_results.json"), help="where to write results")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    frame_gen = [sys.executable, "-m", "frame_generation_pipeline"]
    with tempfile.TemporaryDirectory(prefix="fgp-startup-") as tmp:
        os.environ["FRAME_GEN_CACHE_DIR"] = str(Path(tmp) / "cache")
        data = make_data(Path(tmp) / "data", width, height, 25, 10)
        argv = video_argv(data, Path(tmp) / "one.mp4", args.backend)
        cold, _ = timed([*frame_gen, *argv])
        rows: dict[str, list[float]] = {"frame-gen video --max-frames 1": [], 'python -c "import torch"': [],
                                        "python -c pass": []}
        commands = [[*frame_gen, *argv], [sys.executable, "-c", "import torch"], [sys.executable, "-c", "pass"]]
        for round_ in range(args.repeat):
            for name, command in zip(rows, commands, strict=True):
                rows[name].append(timed(command)[0])
                print(f"round {round_ + 1}/{args.repeat} {name}: {rows[name][-1]:.2f} s", flush=True)
        steps = min((breakdown(argv) for _ in range(args.repeat)), key=lambda stamps: stamps["exit"])
        imports = import_times(argv)
    report = {"machine": machine(), "hidden_flags": os.environ.get("FRAME_GEN_HIDE_CPU_FLAGS", ""), "size": args.size,
              "backend": args.backend, "cold_first_run_s": cold, "best_s": {name: min(times) for name, times in rows.items()},
              "rounds_s": rows, "breakdown_s": steps, "imports_s": imports}
    Path(args.json).write_text(json.dumps(report, indent=1))
    print_report(report, args.json)


def print_report(report: dict, json_path: str) -> None:
    """The report's lines."""
    flags = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in report["machine"]["flags"].items())
    flags += f"; hidden: {report['hidden_flags']}" if report["hidden_flags"] else ""
    print(f"\n{report['machine']['cpus']} CPUs ({report['machine']['cpu']}; {flags}); templates {report['size']}, "
          f"--backend {report['backend']}")
    print(f"the first run, cold (export, compile): {report['cold_first_run_s']:.2f} s")
    for name, seconds in report["best_s"].items():
        print(f"{name:<36}{seconds:>7.2f} s (best of {len(report['rounds_s'][name])})")
    print("\nwarm start, seconds since the spawn at the end of each step (best round):")
    previous = 0.0
    for name, seconds in report["breakdown_s"].items():
        print(f"  {name:<22}{seconds:>7.3f}  (+{seconds - previous:.3f})")
        previous = seconds
    print("\nimports (python -X importtime, own time summed per top-level package, > 10 ms):")
    print("  " + ", ".join(f"{name} {seconds:.3f}" for name, seconds in report["imports_s"].items() if seconds > 0.01))
    print(f"\nwritten to {json_path}")


if __name__ == "__main__":
    main()
