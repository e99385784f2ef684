"""The live subcommand: a simulated viewer of a streaming session."""

from __future__ import annotations

import argparse

from ...models.hubert import HubertWindows
from .arguments import (
    add_audio_model,
    add_blend,
    add_idle,
    add_model,
    blend_from,
    non_negative_float,
    non_negative_int,
    positive_float,
    subcommand,
)
from .from_args import pipeline_from, plan_from
from .messages import report


def run_live(args: argparse.Namespace) -> int:
    """`frame-gen live`: push speech files into a live session and record what a viewer gets."""
    from ...live.session import StreamingSession
    from ...models.audio_models import load_audio_model
    from ...options import RenderOptions, describe_precision
    from ..live.simulate import simulate_viewer, write_report

    options = RenderOptions(start_frame=args.start_frame, use_parsing=args.parsing, blend=blend_from(args))
    plan, settings, _ = plan_from(args, "live", args.output, options, **{"--frames-dir": args.frames_dir, "--report": args.report})
    encoder = load_audio_model(plan.audio_model, settings["device"])  # before the U-Net, like every render
    pipeline = pipeline_from(args, settings)
    batch = plan.batch_for(pipeline.batch_of(pipeline.model_for(plan.templates, encoder)))
    session = StreamingSession.from_pipeline(pipeline, plan.templates, encoder, realtime=args.realtime,
                                             start_frame=args.start_frame, batch_size=batch,
                                             blend=options.blend, hubert=HubertWindows(lookahead=args.hubert_lookahead),
                                             idle=args.idle)
    data = simulate_viewer(session, plan, args.frames_dir, args.chunk_ms, args.realtime, args.gap_seconds, args.policy)
    if args.report is not None:
        write_report(data, args.report)
    latency = data["first_frame_latency_s"]
    # The latency is a wall-clock figure only where the speech arrived in real time (--realtime).
    waited = f"first frame after {latency:.2f} s, " if args.realtime else ""
    # below full rate a speech slot may repeat the image before it: say how many new pictures were shown
    repeated = (f"; {data['speech_images']} new pictures in speech, {data['repeated_frames']} repeating the one before"
                if data["repeated_frames"] else "")
    report(args, f"wrote {args.output}: {data['frames']} slots ({data['speech_frames']} speech, {data['idle_frames']} idle, "
                 f"{data['dropped_frames']} dropped{repeated}), {waited}rendering at "
                 f"{data['render_fps']:.1f} frames/s ({data['realtime_factor']:.2f}x real time) with "
                 f"{describe_precision(data['backend'], data['precision'], data['fidelity_db'])}"
           if latency is not None else f"wrote {args.output}: {data['frames']} slots, no speech frame shown")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `live` to `commands`."""
    live = subcommand(
        commands, "live", run_live, "simulate a viewer of a live session (speech pushed in chunks)",
        "Push each speech file into a live session in chunks (at the speed of a clock with --realtime, else\n"
        "as fast as possible), with idle gaps between them, and write what a viewer would see and hear:\n"
        "the video with its audio, lossless frames with --frames-dir, and a JSON report with --report.\n"
        "Policies when rendering is slower than real time: drop (open-ended speech, frames that cannot\n"
        "be on time are dropped) or delay (known-length speech: the start waits until playback cannot stall).",
        "frame-gen live --checkpoint 5.pth --template-dir dataset/May --audio-encoder audio_visual_encoder.pth \\\n"
        "    --audio hello.wav bye.wav --output live.mp4 --realtime --report live.json",
    )
    add_model(live)
    live.add_argument("--template-dir", required=True, help="folder with full_body_img/, landmarks/ [, parsing/]")
    add_audio_model(live)
    live.add_argument("--hubert-lookahead", type=non_negative_int, default=HubertWindows.lookahead, metavar="ROWS",
                      help="with --hubert-model: rows of speech (20 ms each) read after each window of open speech "
                           "(docs/live.md, hubert)")
    live.add_argument("--audio", required=True, nargs="+", help="speech files, spoken one after another")
    live.add_argument("--output", required=True, help="video of what the viewer sees and hears")
    live.add_argument("--frames-dir", default=None, help="also write every slot as a lossless PNG here")
    live.add_argument("--chunk-ms", type=positive_float, default=20.0, help="audio pushed per chunk, in ms")
    live.add_argument("--realtime", action="store_true", help="push at the speed of a clock and pace the viewer by it")
    live.add_argument("--gap-seconds", type=non_negative_float, default=1.0,
                      help="idle time between the files (0: back to back)")
    live.add_argument("--policy", default="drop", choices=("drop", "delay"), help="pacing below real time (see above)")
    live.add_argument("--report", default=None, help="write the JSON report here")
    live.add_argument("--start-frame", type=non_negative_int, default=0, help="first template frame to use")
    live.add_argument("--parsing", action="store_true", help="keep parsing-masked pixels from the template")
    add_blend(live)
    add_idle(live)
