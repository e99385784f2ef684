"""The subcommands for port authors beyond bundles: package, verify-package, compare."""

from __future__ import annotations

import argparse

from ...contract import MODES
from .arguments import non_negative_int, opset_value, positive_float, positive_int, subcommand
from .messages import report


def run_compare(args: argparse.Namespace) -> int:
    """`frame-gen compare`: two renders frame by frame; exit 1 when a threshold is crossed."""
    from ...ports.compare import compare_frames, format_comparison

    text, ok = format_comparison(compare_frames(args.a, args.b), args.max_diff, args.min_psnr)
    print(text)
    return 0 if ok else 1


def run_package(args: argparse.Namespace) -> int:
    """`frame-gen package`: a self-contained package for a port or an app."""
    from ...files import check_output
    from ...pipeline import FrameGenerationPipeline
    from ...ports.package import write_package

    check_output(args.output, "--output", {
        "--checkpoint": args.checkpoint, "--template-dir": args.template_dir, "--audio-features": args.audio_features,
        "--audio-encoder": args.audio_encoder, "--audio": args.audio}, folder=True)
    pipeline = FrameGenerationPipeline(args.checkpoint, mode=args.mode, device="cpu", backend="torch")
    path = write_package(pipeline, args.template_dir, args.output, args.audio_encoder, args.audio,
                         args.audio_features, args.parsing, args.samples, args.opset)
    report(args, f"wrote package {path}")
    return 0


def run_verify_package(args: argparse.Namespace) -> int:
    """`frame-gen verify-package`: hashes, crop boxes and a torch-free render; 1 on a mismatch."""
    from ...ports.package import format_package_report, verify_package

    checked = verify_package(args.package)
    print(format_package_report(checked))
    return 0 if checked.ok else 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `package`, `verify-package` and `compare` to `commands`."""
    package = subcommand(
        commands, "package", run_package, "write a self-contained package for a port or an app",
        "Write the U-Net ONNX, the audio encoder ONNX (with --audio-encoder), the template frames and landmarks,\n"
        "per-template crop boxes (crop_rectangles.json), the features, a reference bundle and manifest.json\n"
        "(every file's sha256 and size). Features come from --audio-features, or from --audio with\n"
        "--audio-encoder. The folder is replaced as a whole.",
        "frame-gen package --checkpoint 5.pth --template-dir dataset/May --audio-encoder audio_visual_encoder.pth \\\n"
        "    --audio speech.wav --output may_package",
    )
    package.add_argument("--checkpoint", required=True, help="SyncTalk_2D 328 checkpoint (.pth)")
    package.add_argument("--mode", default="ave", choices=tuple(MODES), help="audio feature mode")
    package.add_argument("--template-dir", required=True, help="folder with full_body_img/, landmarks/ [, parsing/]")
    source = package.add_mutually_exclusive_group()
    source.add_argument("--audio-features", default=None, help="features (.npy or .bin) for the reference")
    source.add_argument("--audio-encoder", default=None, help="ave audio encoder (.pth): exported, and used on --audio")
    package.add_argument("--audio", default=None, help="speech for the reference, with --audio-encoder")
    package.add_argument("--parsing", action="store_true", help="include parsing masks and use them")
    package.add_argument("--samples", type=positive_int, default=5, help="reference sample frames")
    package.add_argument("--opset", type=opset_value, default=17, help="ONNX opset, 11..20")
    package.add_argument("--output", required=True, help="package folder to write")

    verify = subcommand(
        commands, "verify-package", run_verify_package, "check a package and render its reference without torch",
        "Check every file's hash and size, the crop boxes against the landmarks, and render the bundle's\n"
        "sample frames from the package alone (onnxruntime, NumPy, OpenCV; no torch, no checkpoint).\n"
        "Exit status 1 on a mismatch.",
        "frame-gen verify-package may_package",
    )
    verify.add_argument("package", help="package folder")

    compare = subcommand(
        commands, "compare", run_compare, "compare two renders frame by frame (folders, videos, a bundle)",
        "Compare two folders of numbered frames, two videos, or a folder (or video) against a reference\n"
        "bundle's sample frames, frame by frame: PSNR, largest difference, share of differing values, the\n"
        "worst frames. Exit status 1 when a limit is crossed or the frame counts differ.",
        "frame-gen compare port_frames/ bundle/ --max-diff 2",
        "frame-gen compare ours.mp4 theirs.mp4 --min-psnr 35",
    )
    compare.add_argument("a", help="frames folder, video or bundle")
    compare.add_argument("b", help="frames folder, video or bundle")
    compare.add_argument("--max-diff", type=non_negative_int, default=None, help="largest accepted difference per value")
    compare.add_argument("--min-psnr", type=positive_float, default=None, help="lowest accepted PSNR, dB")
