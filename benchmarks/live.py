"""Live benchmark: `python benchmarks/live.py` (part of `make bench`).

Per backend at one frame size (default 1280x720), on generated data: a speech-like utterance is
pushed in 20 ms chunks at the speed of the clock into a real-time session (the drop policy, as a
microphone would), and the same speech is rendered as fast as possible (a simulation). The viewer
takes the slots and discards them (no encoding competes for the CPU; a server adds its encoder).
Reported: the first frame's latency (first sample pushed -> first frame rendered, the 0.45 s
lookahead included), the start delay the policy chose, the steady render rate and its real-time
factor (render rate / 25), and the frames the real-time run dropped. Each backend runs with the
template cache (the sessions' default: the network's template half once per template; 50 templates,
so a 4 s utterance comes back to each) and without it, beside the network alone at the session's
batch (the whole network, and the rest with the template half cached). The first row is the
default (backend auto, precision auto: bf16 where the CPU has it and the fidelity check on the
checkpoint passes), whose sessions render every other slot (half rate, each image shown twice) where
the measured speed is below real time: "repeated" counts those slots. `--checkpoint` measures a
given (e.g. trained) ave checkpoint instead of a random one.

Last, the default once more as a user runs it: `frame-gen live --realtime --output` in a process of
its own, whose viewer encodes every slot with x264 while the session renders (the encode competes
for the CPU): its open speech's dropped and repeated slots, and whether it ran at full or half rate.
`--backends ""` measures the default alone.

`--rest` measures the avatar at rest instead (docs/live.md, "At rest and in between"), with the
default backend: a real-time session's process CPU per second of idle slots taken by a viewer once
every template's rest frame is computed, against the same session showing the templates as they are
(`idle="template"`), the difference being what rest frames cost; and the first reply's first-frame
latency next to a later reply's (open speech pushed at the clock's speed, 1 s of idle between).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(data: dict, backend: str, precision: str, seconds: float, template_cache: bool) -> dict:
    """One backend, with or without the template cache: a real-time run and a simulation of the same speech."""
    import numpy as np
    from run import network_rate

    from frame_generation_pipeline import FrameGenerationPipeline
    from frame_generation_pipeline.app.live.simulate import push_speech, report
    from frame_generation_pipeline.inputs.templates import TemplateSet
    from frame_generation_pipeline.live.session import StreamingSession
    from frame_generation_pipeline.render.template_cache import TemplateCache

    pipeline = FrameGenerationPipeline(data["checkpoint"], device="cpu", backend=backend, precision=precision,
                                       template_cache=None if template_cache else TemplateCache(0))
    model = pipeline.model_for(TemplateSet.from_folder(data["templates"]))  # precision auto's check, untimed
    if template_cache and model.splits:  # the split graphs' one-time export and loading, outside the timings
        model.first_visit(np.zeros((1, 6, 320, 320), np.float32), np.zeros((1, *model.mode.audio_shape), np.float32))
    rows = {}
    for realtime in (True, False):
        session = StreamingSession.from_pipeline(pipeline, data["templates"], data["encoder"], realtime=realtime)
        producer = threading.Thread(target=push_speech, args=(session, [Path(data["speech"])], 20.0, realtime, 0.0, "drop"))
        producer.start()
        for _ in session:
            pass
        producer.join()
        rows["realtime" if realtime else "simulated"] = report(session, realtime, "drop")
    realtime, simulated = rows["realtime"], rows["simulated"]
    network = network_rate(model, realtime["batch_size"], 16, "rest" if template_cache and model.splits else "full")
    return {"run": "default" if backend == "auto" else backend, "backend": realtime["backend"],
            "precision": realtime["precision"], "fidelity_db": realtime["fidelity_db"],
            "template_cache": template_cache and bool(model.splits), "batch": realtime["batch_size"],
            "realtime_repeated": realtime["repeated_frames"],
            "half_rate": any(utterance["half_rate"] for utterance in realtime["utterances"]),
            "network_fps": network["fps"],
            "first_frame_latency_s": realtime["first_frame_latency_s"] or float("nan"), "lookahead_s": realtime["lookahead_s"],
            "render_fps": simulated["render_fps"], "realtime_factor": simulated["realtime_factor"],
            "realtime_dropped": realtime["dropped_frames"], "realtime_speech": realtime["speech_frames"],
            "start_delay_s": realtime["utterances"][0]["start_delay_s"]}


def idle_cpu(pipeline, data: dict, idle: str, seconds: float) -> dict:
    """A real-time session's process CPU (all threads) per second of idle slots, after its rest frames are computed."""
    import time

    from frame_generation_pipeline.live.session import StreamingSession

    session = StreamingSession.from_pipeline(pipeline, data["templates"], data["encoder"], realtime=True, idle=idle)
    session.live.rest_filler.join()  # every template's rest frame computed (or read from disk)
    slots = round(seconds * 25)
    for _ in range(25):  # a second of slots before the measure
        session.next_frame()
    cpu, wall = time.process_time(), time.monotonic()
    for _ in range(slots):
        session.next_frame()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    stats = session.stats
    session.close(drain=False)
    session.join()
    return {"idle": idle, "cpu_s_per_s": cpu / wall, "idle_rendered": stats.idle_rendered, "idle_raw": stats.idle_raw,
            "rest_computed": session.live.rest.computed, "rest_loaded": session.live.rest.loaded}


def replies(pipeline, data: dict) -> dict:
    """First-frame latency of a fresh session's first reply and of a later one (open speech, 1 s apart)."""
    from frame_generation_pipeline.app.live.simulate import push_speech
    from frame_generation_pipeline.live.session import StreamingSession

    session = StreamingSession.from_pipeline(pipeline, data["templates"], data["encoder"], realtime=True)
    producer = threading.Thread(target=push_speech, args=(session, [Path(data["speech"])] * 2, 20.0, True, 1.0, "drop"))
    producer.start()
    for _ in session:
        pass
    producer.join()
    first, later = list(session.stats.utterances)[:2]
    return {"first_reply_latency_s": first.first_frame_latency_s, "later_reply_latency_s": later.first_frame_latency_s,
            "first_start_delay_s": first.start_delay_s, "later_start_delay_s": later.start_delay_s,
            "dropped": [first.dropped, later.dropped], "idle_raw": session.stats.idle_raw}


def measure_rest(data: dict, seconds: float) -> dict:
    """The avatar at rest with the default backend: idle CPU rendered and raw, first and later reply."""
    from frame_generation_pipeline import FrameGenerationPipeline

    pipeline = FrameGenerationPipeline(data["checkpoint"], device="cpu")
    found = {"idle": [idle_cpu(pipeline, data, idle, seconds) for idle in ("template", "rendered")]}
    found["extra_cpu_s_per_s"] = found["idle"][1]["cpu_s_per_s"] - found["idle"][0]["cpu_s_per_s"]
    found.update(replies(pipeline, data))
    return found


def measure_with_encode(data: dict, folder: Path) -> dict:
    """The default as `frame-gen live --realtime --output` runs it (x264 encoding every slot meanwhile)."""
    import subprocess
    import sys

    report = folder / "encoded.json"
    subprocess.run([sys.executable, "-m", "frame_generation_pipeline", "live", "--quiet", "--realtime",
                    "--checkpoint", data["checkpoint"], "--template-dir", data["templates"], "--audio-encoder",
                    data["encoder"], "--audio", data["speech"], "--output", str(folder / "encoded.mp4"),
                    "--report", str(report)], check=True)
    found = json.loads(report.read_text())
    speech = found["speech_frames"] + found["dropped_frames"]
    return {"backend": found["backend"], "precision": found["precision"], "speech_slots": speech,
            "dropped": found["dropped_frames"], "repeated": found["repeated_frames"],
            "dropped_share": found["dropped_frames"] / max(speech, 1),
            "half_rate": any(utterance["half_rate"] for utterance in found["utterances"]),
            "rates": [(utterance["half_rate_from"], utterance["stride"]) for utterance in found["utterances"]],
            "first_frame_latency_s": found["first_frame_latency_s"] or float("nan")}


def _rate(rates: list[tuple[int | None, int]]) -> str:
    """How the utterances ran: at full rate, or every n-th slot (from the start or from a frame on)."""
    said = ["full rate" if start is None else f"every {stride} slots" + (f" from frame {start}" if start else "")
            for start, stride in rates]
    return ", ".join(said) or "no utterance"


def main() -> None:
    """Measure every installed backend and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the utterance")
    parser.add_argument("--templates", type=int, default=50, help="template frames")
    parser.add_argument("--backends", default="torch,onnxruntime,openvino")
    parser.add_argument("--json", default=None, help="where to write the results (default: live_results.json, "
                                                     "with --rest live_rest_results.json, beside this script)")
    parser.add_argument("--checkpoint", default=None, help="an ave checkpoint to measure (default: a random one)")
    parser.add_argument("--rest", action="store_true", help="measure the avatar at rest instead (see above)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="with --rest: idle slots measured, in seconds")
    args = parser.parse_args()
    import torch

    from frame_generation_pipeline.app.demo import synthetic
    from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
    from frame_generation_pipeline.devices import cpu_summary
    from frame_generation_pipeline.models.backends import backend_class

    torch.set_num_threads(os.cpu_count() or 1)
    width, height = map(int, args.size.split("x"))
    results = []
    with tempfile.TemporaryDirectory(prefix="fgp-live-") as tmp:
        os.environ["FRAME_GEN_CACHE_DIR"] = str(Path(tmp) / "cache")
        folder = Path(tmp)
        checkpoint = args.checkpoint or str(synthetic.save_random_checkpoint(folder / "ave.pth", "ave"))
        data = {"folder": str(folder), "checkpoint": checkpoint,
                "encoder": str(synthetic.save_random_audio_encoder(folder / "enc.pth")),
                "templates": str(synthetic.make_templates(folder / "tpl", args.templates, width, height, parsing=False)),
                "speech": str(write_speech_like_wav(folder / "speech.wav", args.seconds))}
        if args.rest:
            found = {"size": args.size, "cpu": cpu_summary(), "cpus": os.cpu_count(), "templates": args.templates,
                     "seconds": args.seconds, **measure_rest(data, args.idle_seconds)}
            Path(args.json or HERE / "live_rest_results.json").write_text(json.dumps(found, indent=1))
            print(json.dumps(found, indent=1))
            return
        runs = [("auto", "auto")] + [(backend, "fp32") for backend in args.backends.split(",") if backend]
        if cpu_summary()["bf16"] and "openvino" in args.backends.split(","):
            runs.append(("openvino", "bf16"))
        for backend, precision in runs:
            for template_cache in (True, False) if backend != "auto" else (True,):
                if backend == "auto" or backend_class(backend).installed():
                    results.append(measure(data, backend, precision, args.seconds, template_cache))
                    print(json.dumps(results[-1]), flush=True)
        encoded = measure_with_encode(data, folder)
    report = {"size": args.size, "cpu": cpu_summary(), "cpus": os.cpu_count(), "seconds": args.seconds,
              "checkpoint": args.checkpoint or "random", "runs": results, "with_encode": encoded}
    Path(args.json or HERE / "live_results.json").write_text(json.dumps(report, indent=1))
    print(f"\n{args.size}, {report['cpus']} CPUs, flags {report['cpu']}; {args.seconds:g} s utterance pushed in 20 ms chunks")
    print(f"checkpoint: {report['checkpoint']}")
    print(f"{'run':<12}{'ran as':<28}{'template cache':>15}{'batch':>6}{'first frame s':>15}{'render fps':>12}"
          f"{'network fps':>13}{'x real time':>13}{'dropped (real time)':>22}{'repeated':>10}")
    for row in results:
        checked = f" {row['fidelity_db']:.1f} dB" if row["fidelity_db"] is not None else ""
        print(f"{row['run']:<12}{row['backend'] + ' ' + row['precision'] + checked:<28}"
              f"{'yes' if row['template_cache'] else 'no':>15}{row['batch']:>6}"
              f"{row['first_frame_latency_s']:>15.2f}{row['render_fps']:>12.1f}{row['network_fps']:>13.1f}"
              f"{row['realtime_factor']:>13.2f}"
              f"{row['realtime_dropped']:>12} of {row['realtime_dropped'] + row['realtime_speech']:<6}"
              f"{row['realtime_repeated']:>10}")
    print(f"\nframe-gen live --realtime --output (x264 encoding meanwhile), {encoded['backend']} {encoded['precision']}, "
          f"{_rate(encoded['rates'])}: dropped {encoded['dropped']} of {encoded['speech_slots']} "
          f"speech slots ({100 * encoded['dropped_share']:.1f}%), repeated {encoded['repeated']}, first frame after "
          f"{encoded['first_frame_latency_s']:.2f} s")
    print(f"\nwritten to {args.json or HERE / 'live_results.json'}")


if __name__ == "__main__":
    main()
