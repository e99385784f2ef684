"""The prepare subcommand: a template folder (frames and 110-point landmarks) made from a video."""

from __future__ import annotations

import argparse

from .arguments import non_negative_float, positive_float, positive_int, subcommand
from .messages import report


def run_prepare(args: argparse.Namespace) -> int:
    """`frame-gen prepare`: frames at the template rate and their landmarks, written into --output."""
    from ...prepare.run import prepare_templates

    result = prepare_templates(args.video, args.output, start=args.start, duration=args.duration, fps=args.fps,
                               face=args.face, show_progress=not args.quiet)
    report(args, result.summary())
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `prepare` to `commands`."""
    prepare = subcommand(
        commands, "prepare", run_prepare, "make a template folder (frames and landmarks) from a video of one face",
        "Make a template folder from a video: its frames at 25 fps (20 for wenet) as full_body_img/{k}.jpg\n"
        "and 110 landmarks per frame as landmarks/{k}.lms, SyncTalk_2D's layout, with prepare.json (source,\n"
        "settings, model). Any container and codec ffmpeg reads; variable frame rates are resampled and\n"
        "rotation metadata applied. The face is found by MediaPipe's face models, shipped with the package\n"
        "(CPU, nothing downloaded), tracked from frame to frame and smoothed. Frames without a usable face\n"
        "(none, cut off by the frame's edge, too small) are named in one error and no folder is written.\n"
        "The folder is then a --template-dir for video, frames, live and serve (docs/prepare.md).",
        "frame-gen prepare speaker.mp4 --output dataset/speaker",
        "frame-gen prepare silent.mov --output dataset/listening --start 12 --duration 20",
    )
    prepare.add_argument("video", metavar="VIDEO", help="the video: one person's face, front on, in every frame")
    prepare.add_argument("--output", required=True, help="the template folder to write (new, empty, or an earlier one of ours)")
    prepare.add_argument("--start", type=non_negative_float, default=0.0, help="seconds into the video to start at")
    prepare.add_argument("--duration", type=positive_float, default=None, help="seconds to take (default: to the end)")
    prepare.add_argument("--fps", type=int, choices=(25, 20), default=25, help="template frame rate: 25 (ave, hubert) or 20 (wenet)")
    prepare.add_argument("--face", type=positive_int, default=None,
                         help="where the video shows several faces, follow face N counted from the left (default: the largest)")
