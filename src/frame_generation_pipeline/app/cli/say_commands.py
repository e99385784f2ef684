"""The say subcommand: typed text to video in one step (the local voice of the [voice] extra, then `video`)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .arguments import add_audio_model, add_blend, add_encoding, add_model, positive_int, refuse, subcommand
from .render_commands import run_video
from .serve_commands import check_avatar_arguments

#: Silence before and after the text's speech: the video opens and ends with the mouth at rest.
PAUSE_SECONDS = 0.25


def run_say(args: argparse.Namespace) -> int:
    """`frame-gen say`: the text said by the local voice, rendered and encoded as `video` does."""
    from ...audio.voice import default_voice, in_silence
    from ...files import check_output
    from ..demo.speech import write_wav

    check_avatar_arguments(args)
    if args.demo:
        check_output(args.output, "--output", {})  # your own files are checked against it by `video`
    said = default_voice().speech(args.text, "--text")  # an empty text or a missing voice: one line, before the model
    speech = in_silence(said, PAUSE_SECONDS)
    with tempfile.TemporaryDirectory(prefix="frame-gen-say-") as folder:
        if args.demo:
            from ..demo.run import make_demo_inputs

            demo = make_demo_inputs(Path(folder) / "demo", speech=False)
            args.checkpoint, args.template_dir, args.audio_encoder = demo.checkpoint, demo.template_dir, demo.audio_encoder
            args.parsing = True
        args.audio = str(write_wav(Path(folder) / "speech.wav", speech))
        return run_video(args)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `say` to `commands`."""
    say = subcommand(
        commands, "say", run_say, "render a video of the avatar saying typed text (the [voice] extra)",
        "Say --text with the local voice (a Piper voice shipped in a package: the [voice] extra; nothing is\n"
        "downloaded), then render and encode it as `video` does. --demo uses the demo avatar; otherwise\n"
        "give your avatar's files as for `video`.",
        'frame-gen say --demo --text "Hello, I am the demo avatar." --output hello.mp4',
        'frame-gen say --checkpoint 5.pth --template-dir dataset/May --audio-encoder audio_visual_encoder.pth \\\n'
        '    --text "Hello there." --output hello.mp4',
    )
    say.add_argument("--text", required=True, help="what the avatar says (one or more sentences)")
    refuse(say, "--audio", "say speaks its --text: to render a speech file, use `frame-gen video --audio FILE`")
    say.add_argument("--output", required=True, help="video file to write (.mp4, .m4v, .mov, .mkv)")
    say.add_argument("--demo", action="store_true", help="the demo avatar (shipped with the package): no checkpoint, "
                     "templates or encoder needed")
    add_model(say, required=False)
    say.add_argument("--template-dir", default=None, help="folder with full_body_img/, landmarks/ [, parsing/]")
    add_audio_model(say, required=False)
    say.add_argument("--parsing", action="store_true", help="keep parsing-masked pixels from the template")
    say.add_argument("--max-frames", type=positive_int, default=None, help="render only the first N frames (a preview)")
    add_blend(say)
    add_encoding(say)
    say.set_defaults(audio_features=None, start_frame=0)
