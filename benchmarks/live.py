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
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(data: dict, backend: str, precision: str, seconds: float, template_cache: bool) -> dict:
    """One backend, with or without the template cache: a real-time run and a simulation of the same speech."""
    import threading

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
            "first_frame_latency_s": found["first_frame_latency_s"] or float("nan")}


def main() -> None:
    """Measure every installed backend and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the utterance")
    parser.add_argument("--templates", type=int, default=50, help="template frames")
    parser.add_argument("--backends", default="torch,onnxruntime,openvino")
    parser.add_argument("--json", default=str(HERE / "live_results.json"))
    parser.add_argument("--checkpoint", default=None, help="an ave checkpoint to measure (default: a random one)")
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
    Path(args.json).write_text(json.dumps(report, indent=1))
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
          f"{'half' if encoded['half_rate'] else 'full'} rate: dropped {encoded['dropped']} of {encoded['speech_slots']} "
          f"speech slots ({100 * encoded['dropped_share']:.1f}%), repeated {encoded['repeated']}, first frame after "
          f"{encoded['first_frame_latency_s']:.2f} s")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
