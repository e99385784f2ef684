"""Where a bigger --batch-size stops buying speed: `python benchmarks/batch_size.py`.

The network alone (as the pipeline runs it: the backend's concurrent calls, random inputs) at batch
sizes 1, 2, 4, ... per backend and precision, each in a fresh subprocess so that its peak memory is
its own, the sizes taking turns for --repeat rounds (frames/s: each one's best round). The report
starts with the CPU and its flags; the JSON keeps every round. The cap in plan.py (MAX_BATCH) is
where frames/s stops growing here; what a batch costs is in the peak MB column.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import machine, network_rate, peak_rss_mb  # noqa: E402 (benchmarks/run.py, beside this file)


def child(spec: dict) -> None:
    """Load the backend of `spec` and print the network's rate at its batch, with the peak memory."""
    from frame_generation_pipeline.models.backends import load_backend

    model = load_backend(spec["checkpoint"], "ave", device="cpu", backend=spec["backend"], precision=spec["precision"])
    result = network_rate(model, spec["batch"], max(spec["frames"], 2 * spec["batch"] * model.streams))
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))


def run_child(spec: dict) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{spec} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,2,4,8,16,32", help="batch sizes, comma-separated")
    parser.add_argument("--backends", default="openvino:bf16,onnxruntime:fp32", help="backend:precision, comma-separated")
    parser.add_argument("--frames", type=int, default=48, help="frames per measurement (at least two batches per stream)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds")
    parser.add_argument("--json", default=str(HERE / "batch_size_results.json"), help="where the results go")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    from frame_generation_pipeline.app.demo import synthetic

    os.environ.setdefault("FRAME_GEN_CACHE_DIR", tempfile.mkdtemp(prefix="fgp-batch-cache-"))
    checkpoint = str(synthetic.save_random_checkpoint(Path(tempfile.mkdtemp(prefix="fgp-batch-")) / "ave.pth", "ave", seed=0))
    specs = [{"checkpoint": checkpoint, "backend": backend, "precision": precision, "batch": int(batch), "frames": args.frames}
             for backend, precision in (item.split(":") for item in args.backends.split(","))
             for batch in args.batches.split(",")]
    for spec in {(s["backend"], s["precision"]): s for s in specs}.values():  # exports and compile caches, untimed
        run_child({**spec, "batch": 1, "frames": 2})
    rounds: dict[str, list[dict]] = {}
    for round_ in range(args.repeat):
        for spec in specs:
            name = f"{spec['backend']} {spec['precision']} batch {spec['batch']}"
            rounds.setdefault(name, []).append(run_child(spec))
            print(f"round {round_ + 1}/{args.repeat} {name}: {rounds[name][-1]['fps']:.2f} frames/s", flush=True)
    rows = {name: {**max(found, key=lambda row: row["fps"]), "fps_rounds": [row["fps"] for row in found],
                   "peak_rss_mb": max(row["peak_rss_mb"] for row in found)} for name, found in rounds.items()}
    report = {"machine": machine(), "rows": rows}
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{report['machine']}\n{'run':<34} {'frames/s':>9} {'core-ms/frame':>14} {'peak MB':>8}")
    for name, row in rows.items():
        print(f"{name:<34} {row['fps']:>9.2f} {row['cpu_ms']:>14.1f} {row['peak_rss_mb']:>8.0f}")


if __name__ == "__main__":
    main()
