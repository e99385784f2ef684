"""The `cache` subcommand: list the export cache, or clear all of it or one checkpoint's entries."""

from __future__ import annotations

import argparse

from .arguments import subcommand
from .messages import report


def run_cache(args: argparse.Namespace) -> int:
    """`frame-gen cache`: one line per entry (and a total), or with --clear remove them."""
    from ...models.cache import cache_root, clear_cache, select_entries

    if args.clear:
        removed = clear_cache(args.which)
        report(args, f"removed {len(removed)} cache entries ({_megabytes(sum(e.nbytes for e in removed))}) from {cache_root()}")
        return 0
    entries = select_entries(args.which)
    for entry in entries:
        print(f"{entry.checkpoint_sha256}  {entry.mode:<6}  opset{entry.opset}  {entry.part:<8}  {entry.kind:<8}  "
              f"{_megabytes(entry.nbytes):>9}  {entry.path}")
    print(f"{len(entries)} entries, {_megabytes(sum(e.nbytes for e in entries))} in {cache_root()}")
    return 0


def _megabytes(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `cache` to `commands`."""
    cache = subcommand(
        commands, "cache", run_cache, "list or clear the export cache",
        "List the cache's entries: the checkpoint's sha256 (first 24 hex digits), mode, opset, which graph\n"
        "(full network; first and rest: the template cache's), kind (onnx: an export; openvino: what OpenVINO compiled\n"
        "from it; fidelity: the bf16 checks; rest: the live avatar's rest frames) and size. With --clear remove\n"
        "them. WHICH (a checkpoint file or a sha256 prefix) keeps\n"
        "it to one checkpoint's entries. The cache is $FRAME_GEN_CACHE_DIR, else\n"
        "$XDG_CACHE_HOME/frame_generation_pipeline, else ~/.cache/frame_generation_pipeline.",
        "frame-gen cache", "frame-gen cache --clear 5.pth", "frame-gen cache --clear",
    )
    cache.add_argument("which", nargs="?", default=None, help="a checkpoint (.pth) or a prefix of its sha256")
    cache.add_argument("--clear", action="store_true", help="remove the entries instead of listing them")
