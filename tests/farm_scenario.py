"""The render farm on a local Ray instance (2 CPUs), run by test_farm.py inside a network namespace
with only loopback. Prints one JSON object of findings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np
import ray

from frame_generation_pipeline.app.farm.jobs import job_from
from frame_generation_pipeline.app.farm.runner import render_batch
from frame_generation_pipeline.app.farm.worker import load_pipeline, plan, render_segment
from frame_generation_pipeline.outputs.video import join_segments

#: Frames per chunk of the long job (30 frames: 12, 12 and 6).
CHUNK = 12


def decoded(path: str) -> list[np.ndarray]:
    with av.open(path) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def audio_seconds(path: str) -> float:
    with av.open(path) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(audio=0)) / stream.rate


def listening() -> list[str]:
    lines = subprocess.run(["ss", "-ltnuH"], capture_output=True, text=True).stdout.splitlines()
    return sorted({line.split()[4].rsplit(":", 1)[0] for line in lines if line.strip()})


def killer(pattern: str, found: dict) -> None:
    """Kill -9 the first worker process seen rendering (its title names the method)."""
    for _ in range(1200):
        pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        if pids:
            time.sleep(1.0)  # well into the job
            os.kill(int(pids[0]), signal.SIGKILL)
            found["killed"] = int(pids[0])
            return
        time.sleep(0.05)


def main(args: dict) -> dict:
    out = Path(args["out"])
    base = {"checkpoint": args["checkpoint"], "onnx": args["onnx"], "backend": "onnxruntime", "template_dir": args["templates"],
            "audio": args["clip"], "audio_features": args["features"]}
    ray_files = tempfile.mkdtemp(prefix="fgp-ray-")  # short (socket paths), and removed afterwards
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=ray_files,
             configure_logging=False, log_to_driver=False)
    found = {"listening": listening()}
    # One batch (one pair of workers, each loading the model once) for three short jobs, one of them
    # bad, and a long one cut in chunks of CHUNK frames, the last one shorter (the short ones fit in one chunk each).
    long = {**base, "output": str(out / "long.mp4"), "max_frames": 30}
    jobs = [{**base, "output": str(out / "a.mp4"), "max_frames": 6},
            {**base, "output": str(out / "bad.mp4"), "template_dir": str(out / "no-such-folder")},
            {**base, "output": str(out / "c.mp4"), "max_frames": 8}, long]
    rows = render_batch(jobs, workers=2, chunk_frames=CHUNK, report=str(out / "report.jsonl"))
    found["three"] = [row for row in rows if row["output"] != long["output"]]  # rows come in the order jobs finish
    found["chunked"] = [row for row in rows if row["output"] == long["output"]]
    found["report_lines"] = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    found["frames_a"] = len(decoded(str(out / "a.mp4")))

    watcher = threading.Thread(target=killer, args=("RenderWorker.render", found))
    watcher.start()
    found["killed_run"] = render_batch([{**base, "output": str(out / "retried.mp4"), "max_frames": 20}], workers=1, retries=2)
    watcher.join()
    found["frames_retried"] = len(decoded(str(out / "retried.mp4")))

    ray.shutdown()
    shutil.rmtree(ray_files, ignore_errors=True)

    job = job_from({**long, "output": str(out / "serial.mp4")}, "serial")
    pipeline = load_pipeline(job, "cpu")
    scratch = out / "serial-scratch"
    scratch.mkdir()
    planned = plan(pipeline, job, scratch)
    segments = []
    for first in range(0, planned["frames"], CHUNK):
        segments.append(scratch / f"{first:09d}.mp4")
        render_segment(pipeline, job, planned["features"], first, min(CHUNK, planned["frames"] - first), segments[-1])
    join_segments(segments, Path(job.audio), Path(job.output), planned["frames"] / planned["fps"])
    farm, serial = decoded(str(out / "long.mp4")), decoded(job.output)
    found["chunked_frames"] = [len(farm), len(serial), planned["frames"]]
    found["chunked_differences"] = [int(np.abs(a.astype(np.int16) - b).max()) for a, b in zip(farm, serial)]
    found["chunked_audio_seconds"] = audio_seconds(str(out / "long.mp4"))
    found["left_in_out"] = sorted(p.name for p in out.iterdir())
    return found


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[2]))))
