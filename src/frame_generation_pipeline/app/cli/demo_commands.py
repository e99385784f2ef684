"""The demo subcommand: the demo avatar rendered into demo.mp4 and contact_sheet.png."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import positive_float, subcommand
from .messages import command_seconds, report


def run_demo(args: argparse.Namespace) -> int:
    """`frame-gen demo`: the demo avatar rendered into demo.mp4 and contact_sheet.png."""
    from ...files import check_output

    check_output(args.output, "--output", {}, folder=True)  # before anything is generated
    if args.text is not None:
        from ...audio.voice import default_voice

        default_voice().sentences(args.text, "--text")  # an empty text or a missing voice: one line, first
    from ..demo.run import run_demo as render_demo  # torch and the model: only once the arguments hold

    result = render_demo(args.output, seconds=args.seconds, show_progress=not args.quiet, text=args.text)
    report(args, result.summary(command_seconds(args)))
    if not args.quiet:
        folder = Path(result.output).resolve().parent
        print(f"demo video: {folder / 'demo.mp4'}")
        print(f"contact sheet: {folder / 'contact_sheet.png'}")
        print(f"its inputs (avatar_ave.pth, template/, audio_visual_encoder.pth, speech.wav): {folder / 'inputs'}; "
              "try them with `frame-gen live`, or talk to the avatar with `frame-gen serve --demo`")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `demo` to `commands`."""
    demo = subcommand(
        commands, "demo", run_demo, "render the demo avatar saying a sentence, and a contact sheet of it",
        "Render the demo avatar (a drawn face trained with the repository's tools/train_demo_avatar.py,\n"
        "shipped with the package) saying a sentence it was not trained on: demo.mp4 and\n"
        "contact_sheet.png (frames across the clip under its waveform), with the avatar's files in\n"
        "inputs/. The sentence is said by the local voice where the [voice] extra is installed (else the\n"
        "shipped espeak-ng clip); --text says your own words. The folder is replaced as a whole (one that\n"
        "holds other files is refused).",
        "frame-gen demo --output demo",
        'frame-gen demo --output demo --text "Type anything and I say it."',
    )
    demo.add_argument("--output", default="demo", help="folder for the inputs, demo.mp4 and contact_sheet.png")
    demo.add_argument("--seconds", type=positive_float, default=None,
                      help="say only the first SECONDS of the sentence (default: all of it; at least 0.2)")
    demo.add_argument("--text", default=None, help="what the avatar says, in the local voice (the [voice] extra)")
