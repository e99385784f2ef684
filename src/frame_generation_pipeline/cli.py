"""The `frame-gen` command line: a thin layer over the library.

Exit status: 0 on success, 2 on a user-facing error (one `error: ...` line on stderr, no
traceback unless --debug), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .errors import FrameGenerationError
from .version import __version__
from .video import DEFAULT_PRESET, PRESETS

logger = logging.getLogger("frame_generation_pipeline")

MODES = ("ave", "hubert", "wenet")


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks on errors")


def _add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="SyncTalk_2D 328 checkpoint (.pth)")
    parser.add_argument("--mode", default="ave", help=f"audio feature mode: {', '.join(MODES)}")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    parser.add_argument("--backend", default="torch", help="torch (exact), onnxruntime (fast on CPU) or auto")
    parser.add_argument("--onnx", default=None, help="exported .onnx for --backend onnxruntime (default: cached export)")
    parser.add_argument("--batch-size", type=int, default=None, help="frames per network call (default: per backend)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"), help="fp16/bf16: torch on CUDA only")


def _add_render_inputs(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--template-dir", required=True, help="folder with full_body_img/, landmarks/ [, parsing/]")
    parser.add_argument("--audio-features", required=required, help="audio features (.npy), one row per output frame")
    parser.add_argument("--start-frame", type=int, default=0, help="first template frame to use")
    parser.add_argument("--parsing", action="store_true", help="keep parsing-masked pixels from the template")


def _pipeline(args: argparse.Namespace):
    from .pipeline import FrameGenerationPipeline

    return FrameGenerationPipeline(
        args.checkpoint, mode=args.mode, device=args.device, backend=args.backend,
        batch_size=args.batch_size, onnx_path=args.onnx, precision=args.precision,
    )


def _run_frames(args: argparse.Namespace) -> int:
    paths = _pipeline(args).generate_frames_only(
        args.audio_features,
        args.template_dir,
        args.output_dir,
        start_frame=args.start_frame,
        use_parsing=args.parsing,
        image_format=args.image_format,
        show_progress=not args.quiet,
    )
    print(f"wrote {len(paths)} frames to {args.output_dir}")
    return 0


def _run_video(args: argparse.Namespace) -> int:
    path = _pipeline(args).generate_video(
        args.audio_features,
        args.template_dir,
        args.audio,
        args.output,
        start_frame=args.start_frame,
        fps=args.fps,
        crf=args.crf,
        use_parsing=args.parsing,
        preset=args.preset,
        show_progress=not args.quiet,
        audio_encoder_path=args.audio_encoder,
    )
    print(f"wrote {path}")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    video = run_demo(args.output, seconds=args.seconds, show_progress=not args.quiet)
    print(f"demo video: {video.resolve()}")
    return 0


def _run_features(args: argparse.Namespace) -> int:
    import numpy as np

    from .audio_encoder import AudioEncoder
    from .outputs import atomic_file

    features = AudioEncoder(args.audio_encoder, device=args.device).features_from_audio(args.audio)
    with atomic_file(args.output) as temporary:
        np.save(temporary, features)
    print(f"wrote {args.output}: {features.shape[0]} frames x {features.shape[1]} ave features")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from .unet_model import UNetModel

    report = UNetModel(args.checkpoint, mode=args.mode, device="cpu").export_to_onnx(args.output, args.opset)
    print(f"wrote {report.path} (opset {report.opset_version}); max difference to torch {report.max_abs_difference:.2e}")
    return 0


def _run_reference(args: argparse.Namespace) -> int:
    path = _pipeline(args).generate_reference_outputs(
        args.audio_features, args.template_dir, args.output_dir, num_sample_frames=args.samples,
        start_frame=args.start_frame, use_parsing=args.parsing,
    )
    print(f"wrote reference bundle {path}")
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    from .reference import format_report, verify_bundle

    model = None
    if args.checkpoint is not None:
        from .reference import read_metadata
        from .unet_model import UNetModel

        model = UNetModel(args.checkpoint, mode=read_metadata(args.bundle)["mode"], device=args.device or "cpu")
    report = verify_bundle(args.bundle, model, network_tolerance=args.tolerance)
    print(format_report(report))
    return 0 if report.ok else 1


def _subcommand(
    commands: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int],
    summary: str, description: str, *examples: str,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=summary, description=description, formatter_class=_Formatter,
        epilog="example:\n" + "\n".join(f"  {example}" for example in examples),
    )
    parser.set_defaults(handler=handler)
    _add_common(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `frame-gen` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="frame-gen",
        description="Render lip-synced talking-head frames and video with SyncTalk_2D 328 checkpoints.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    video = _subcommand(
        commands, "video", _run_video, "render an H.264/AAC video with the speech audio",
        "Render frames and encode them once, with the speech, into a video file.",
        "frame-gen video --checkpoint checkpoint/May/5.pth --mode ave --template-dir dataset/May \\\n"
        "    --audio-features speech_ave.npy --audio speech.wav --output out.mp4",
        "frame-gen video --checkpoint checkpoint/May/5.pth --template-dir dataset/May \\\n"
        "    --audio-encoder audio_visual_encoder.pth --audio speech.wav --output out.mp4",
    )
    _add_model(video)
    _add_render_inputs(video, required=False)
    video.add_argument("--audio", required=True, help="speech audio to mux (wav, mp3, m4a, flac...)")
    video.add_argument("--audio-encoder", default=None, help="ave audio encoder (.pth) to compute features from --audio")
    video.add_argument("--output", required=True, help="video file to write (.mp4)")
    video.add_argument("--fps", type=float, default=None, help="frame rate (default: 25 ave/hubert, 20 wenet)")
    video.add_argument("--crf", type=int, default=20, help="x264 quality, lower is better")
    video.add_argument("--preset", default=DEFAULT_PRESET, choices=PRESETS, metavar="PRESET", help="x264 speed preset")

    frames = _subcommand(
        commands, "frames", _run_frames, "render frames as image files",
        "Render one lossless image per audio feature row.",
        "frame-gen frames --checkpoint checkpoint/May/5.pth --mode ave \\\n"
        "    --template-dir dataset/May --audio-features speech_ave.npy --output-dir out/frames",
    )
    _add_model(frames)
    _add_render_inputs(frames)
    frames.add_argument("--output-dir", required=True, help="folder for the frames (000000.png, ...)")
    frames.add_argument("--image-format", default="png", choices=("png", "jpg"), help="png is lossless")

    features = _subcommand(
        commands, "features", _run_features, "compute ave audio features from speech",
        "Decode speech (wav, mp3, m4a, flac...), compute its log-mel windows and encode them with "
        "the ave audio encoder into (F, 512) features, one row per 25 fps frame.",
        "frame-gen features --audio-encoder audio_visual_encoder.pth --audio speech.wav --output feats.npy",
    )
    features.add_argument("--audio-encoder", required=True, help="ave audio encoder (audio_visual_encoder.pth)")
    features.add_argument("--audio", required=True, help="speech audio file")
    features.add_argument("--output", required=True, help=".npy file to write")
    features.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")

    export = _subcommand(
        commands, "export-onnx", _run_export, "export a checkpoint to ONNX, checked against torch",
        "Export to ONNX (inputs `input`, `audio`; output `output`; dynamic batch), then run it in "
        "onnxruntime against torch and refuse it if they differ by more than 1e-4.",
        "frame-gen export-onnx --checkpoint checkpoint/May/5.pth --mode ave --output may.onnx --opset 11",
    )
    export.add_argument("--checkpoint", required=True, help="SyncTalk_2D 328 checkpoint (.pth)")
    export.add_argument("--mode", default="ave", help=f"audio feature mode: {', '.join(MODES)}")
    export.add_argument("--output", required=True, help="the .onnx file to write")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (11 for older mobile runtimes)")

    reference = _subcommand(
        commands, "reference", _run_reference, "write a lossless reference bundle for ports",
        "Render the video and save, for sample frames, the network input, audio window, raw output, "
        "template, landmarks and final frame, all lossless, with metadata.json.",
        "frame-gen reference --checkpoint checkpoint/May/5.pth --template-dir dataset/May \\\n"
        "    --audio-features speech_ave.npy --output-dir bundle --samples 10",
    )
    _add_model(reference)
    _add_render_inputs(reference)
    reference.add_argument("--output-dir", required=True, help="bundle folder to write")
    reference.add_argument("--samples", type=int, default=10, help="sample frames, first and last included")

    verify = _subcommand(
        commands, "verify-reference", _run_verify, "recompute a reference bundle and report differences per stage",
        "Recompute every sample of a bundle from its own files (landmarks, input, network, frame) "
        "and print the largest difference per sample and stage. Exit status 1 on a mismatch.",
        "frame-gen verify-reference bundle --checkpoint checkpoint/May/5.pth",
    )
    verify.add_argument("bundle", help="reference bundle folder")
    verify.add_argument("--checkpoint", default=None, help="checkpoint for the network stage (skipped without)")
    verify.add_argument("--device", default=None, help="device for the network stage (default: cpu)")
    verify.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted network output difference")

    demo = _subcommand(
        commands, "demo", _run_demo, "render a demo video from generated inputs",
        "Generate templates, speech and random-weight checkpoints, then render a video with audio.",
        "frame-gen demo --output demo",
    )
    demo.add_argument("--output", default="demo", help="folder for the inputs and demo.mp4")
    demo.add_argument("--seconds", type=float, default=3.0, help="length of the demo video")
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.debug else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run `frame-gen` with `argv` (default: sys.argv[1:]); return the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except FrameGenerationError as exc:
        if args.debug:
            logger.exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
