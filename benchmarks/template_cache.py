"""Does the template cache pay end to end? `python benchmarks/template_cache.py --help`.

In one process, on the same generated data (drawn templates, a random-weight checkpoint, speech-like
audio, as benchmarks/run.py makes them), `frame-gen video`'s default path renders the clip again and
again with a fresh pipeline each time, taking turns: once with the template cache (the default), once
without (--template-cache-mb 0), the order swapped every round. The first round of each warms the
process up (imports, the export and its compile, the allocators) and is not counted, so what is
compared is the steady cost of one render: what a server, a farm worker or a long job sees, where
benchmarks/run.py's fresh process per measurement also counts a cold start. Printed: frames/s and
core-ms per frame of every round, the median of each, and their ratio, under the CPU's flags (the
default backend and precision, and whether the cache splits the network at all, depend on them;
$FRAME_GEN_HIDE_CPU_FLAGS="avx512_bf16 amx_bf16 amx_tile" measures a CPU without native bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import machine, make_data  # noqa: E402  (a sibling script, not a package)


def render_once(data: dict, cached: bool, output: Path) -> dict:
    """One render of the clip by a fresh default pipeline: frames/s, core-ms per frame, what ran."""
    from frame_generation_pipeline import FrameGenerationPipeline, TemplateSet
    from frame_generation_pipeline.render.template_cache import TemplateCache

    pipeline = FrameGenerationPipeline(data["checkpoint"], template_cache=None if cached else TemplateCache(0))
    model = pipeline.model_for(TemplateSet.from_folder(data["templates"]))  # precision auto's check, untimed
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = pipeline.video(output, data["templates"], data["audio"], data["features"])
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"fps": result.frames / seconds, "cpu_ms": 1000 * cpu / result.frames, "backend": result.backend,
            "precision": result.precision, "splits": bool(model.splits) and cached}


def main() -> None:
    """Parse the options, take turns rendering with and without the cache, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720", help="WxH")
    parser.add_argument("--frames", type=int, default=100, help="frames per render")
    parser.add_argument("--templates", type=int, default=10,
                        help="template frames: with 10 and 100 frames, 90 of 100 frames return to a template")
    parser.add_argument("--rounds", type=int, default=4, help="counted rounds of each (after one warm-up round)")
    parser.add_argument("--json", default=str(HERE / "template_cache_results.json"), help="where to write results")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    runs: dict[str, list[dict]] = {"cache": [], "none": []}
    with tempfile.TemporaryDirectory(prefix="fgp-cache-bench-") as tmp:
        os.environ["FRAME_GEN_CACHE_DIR"] = str(Path(tmp) / "cache")
        data = make_data(Path(tmp) / "data", width, height, args.frames, args.templates)
        for round_ in range(1 + args.rounds):
            for name in ("cache", "none") if round_ % 2 else ("none", "cache"):
                row = render_once(data, name == "cache", Path(tmp) / f"{name}.mp4")
                print(f"round {round_}{' (warm-up)' if not round_ else ''} {name}: {row['fps']:.2f} frames/s, "
                      f"{row['cpu_ms']:.1f} core-ms/frame", flush=True)
                if round_:
                    runs[name].append(row)
    median = {name: {key: statistics.median(row[key] for row in rows) for key in ("fps", "cpu_ms")}
              for name, rows in runs.items()}
    from frame_generation_pipeline.devices import HIDE_FLAGS_ENV

    report = {"machine": machine(), "hidden_flags": os.environ.get(HIDE_FLAGS_ENV, ""),
              "size": args.size, "frames": args.frames, "templates": args.templates,
              "ran_as": {key: runs["cache"][0][key] for key in ("backend", "precision", "splits")},
              "median": median, "ratio": median["cache"]["fps"] / median["none"]["fps"], "rounds": runs}
    Path(args.json).write_text(json.dumps(report, indent=1))
    flags = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in report["machine"]["flags"].items())
    flags += f"; hidden: {report['hidden_flags']}" if report["hidden_flags"] else ""
    ran = report["ran_as"]
    print(f"\n{report['machine']['cpus']} CPUs ({report['machine']['cpu']}; {flags}); {args.size}, {args.frames} frames "
          f"over {args.templates} templates, median of {args.rounds} warm rounds each, "
          f"{ran['backend']} {ran['precision']}{', split' if ran['splits'] else ', whole (the cache does not split it)'}")
    for name in ("cache", "none"):
        print(f"  {'template cache' if name == 'cache' else 'no template cache':<18} {median[name]['fps']:6.2f} frames/s "
              f"{median[name]['cpu_ms']:6.1f} core-ms/frame")
    print(f"  cache / none: {report['ratio']:.2f}x\nwritten to {args.json}")


if __name__ == "__main__":
    main()
