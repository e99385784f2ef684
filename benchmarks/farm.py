"""Farm benchmark: `python benchmarks/farm.py` (part of `make bench`).

The same N jobs (generated templates and features, a random-weight checkpoint) rendered on a local
Ray instance with 1 worker and with 2, side by side in one run: wall time, frames/s, and per job its
seconds. A job's time is its model load (once per worker and checkpoint), its frames at the
worker's rate, and its encode; from those a cluster can be sized (docs/farm.md, "Sizing a cluster").
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Measure the batch on 1 and 2 workers and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--frames", type=int, default=50, help="frames per job")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--json", default=str(HERE / "farm_results.json"))
    args = parser.parse_args()
    import numpy as np
    import ray

    from frame_generation_pipeline.app.demo import synthetic
    from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
    from frame_generation_pipeline.app.farm.runner import render_batch
    from frame_generation_pipeline.devices import cpu_summary, usable_cpus

    width, height = map(int, args.size.split("x"))
    runs = []
    with tempfile.TemporaryDirectory(prefix="fgp-farm-") as tmp:
        root = Path(tmp)
        os.environ["FRAME_GEN_CACHE_DIR"] = str(root / "cache")
        checkpoint = synthetic.save_random_checkpoint(root / "ave.pth", "ave")
        templates = synthetic.make_templates(root / "tpl", 30, width, height, parsing=False)
        np.save(root / "f.npy", synthetic.random_features("ave", args.frames, seed=1))
        audio = write_speech_like_wav(root / "a.wav", args.frames / 25)
        for workers in (1, 2):
            jobs = [{"checkpoint": str(checkpoint), "template_dir": str(templates), "audio": str(audio),
                     "audio_features": str(root / "f.npy"), "output": str(root / f"w{workers}-{n}.mp4")}
                    for n in range(args.jobs)]
            ray.init(num_cpus=usable_cpus(), include_dashboard=False, _node_ip_address="127.0.0.1",
                     configure_logging=False, log_to_driver=False)
            started = time.perf_counter()
            rows = render_batch(jobs, workers=workers)
            seconds = time.perf_counter() - started
            ray.shutdown()
            frames = sum(row["frames"] for row in rows)
            runs.append({"workers": workers, "seconds": seconds, "frames": frames, "fps": frames / seconds,
                         "job_seconds": [row["seconds"] for row in rows], "ok": sum(row["status"] == "ok" for row in rows)})
            print(json.dumps(runs[-1]), flush=True)
    report = {"cpus": usable_cpus(), "cpu": cpu_summary(), "size": args.size, "jobs": args.jobs, "frames_per_job": args.frames,
              "runs": runs}
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\n{args.jobs} jobs of {args.frames} frames at {args.size}, {report['cpus']} CPUs {report['cpu']}")
    print(f"{'workers':>8}{'wall s':>9}{'frames/s':>10}{'mean job s':>12}")
    for run in runs:
        print(f"{run['workers']:>8}{run['seconds']:>9.1f}{run['fps']:>10.2f}{sum(run['job_seconds']) / len(run['job_seconds']):>12.1f}")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
