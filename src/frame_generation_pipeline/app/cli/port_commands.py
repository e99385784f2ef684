"""The subcommands for port authors beyond bundles: compare (and the package, when present)."""

from __future__ import annotations

import argparse

from .arguments import non_negative_int, positive_float, subcommand


def run_compare(args: argparse.Namespace) -> int:
    """`frame-gen compare`: two renders frame by frame; exit 1 when a threshold is crossed."""
    from ...ports.compare import compare_frames, format_comparison

    text, ok = format_comparison(compare_frames(args.a, args.b), args.max_diff, args.min_psnr)
    print(text)
    return 0 if ok else 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `compare` to `commands`."""
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
