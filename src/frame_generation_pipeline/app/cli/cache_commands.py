"""The `cache` subcommand: list the export cache and what interrupted writes left in it, or clear all
of it or one checkpoint's entries."""

from __future__ import annotations

import argparse

from .arguments import subcommand
from .messages import report

#: One line of the listing: checkpoint sha256 (24 hex digits), mode, opset, graph, kind, size, path.
_ROW = "{:<24}  {:<6}  {:<7}  {:<8}  {:<8}  {:>9}  {}"


def run_cache(args: argparse.Namespace) -> int:
    """`frame-gen cache`: a header and one line per entry, one per leftover of an interrupted write,
    and a total; or with --clear remove them."""
    from ...models.cache import cache_leftovers, cache_root, clear_cache, clear_leftovers, select_entries

    if args.clear:
        left, removed = clear_leftovers(args.which), clear_cache(args.which)  # leftovers first: an entry's removal takes its lock file
        report(args, f"removed {len(removed)} cache entries ({_megabytes(sum(e.nbytes for e in removed))}) "
                     f"and {len(left)} leftover(s) of interrupted writes from {cache_root()}")
        return 0
    entries, leftovers = select_entries(args.which), cache_leftovers(args.which)
    if entries:
        print(_ROW.format("checkpoint", "mode", "opset", "graph", "kind", "size", "path"))
    for entry in entries:
        print(_ROW.format(entry.checkpoint_sha256, entry.mode, f"opset{entry.opset}", entry.part, entry.kind,
                          _megabytes(entry.nbytes), entry.path))
    for leftover in leftovers:
        print(f"leftover  {leftover.what:<19}  {_megabytes(leftover.nbytes):>9}  {leftover.path}")
    found = f"; {len(leftovers)} leftover(s) of interrupted writes (--clear removes them)" if leftovers else ""
    print(f"{len(entries)} entries, {_megabytes(sum(e.nbytes for e in entries))} in {cache_root()}{found}")
    return 0


def _megabytes(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `cache` to `commands`."""
    cache = subcommand(
        commands, "cache", run_cache, "list or clear the export cache",
        "List the cache's entries: the checkpoint's sha256 (first 24 hex digits), mode, opset, which graph\n"
        "(full network; first and rest: the template cache's), kind (onnx: an export; openvino: what OpenVINO compiled\n"
        "from it; fidelity: the checks of faster precisions; rest: the live avatar's rest frames) and size, then what interrupted\n"
        "writes left (a temporary, a lock file no running process holds, a folder half written). With --clear remove\n"
        "them. WHICH (a checkpoint file or a sha256 prefix) keeps it to one checkpoint's entries. The cache is\n"
        "$FRAME_GEN_CACHE_DIR, else\n"
        "$XDG_CACHE_HOME/frame_generation_pipeline, else ~/.cache/frame_generation_pipeline.",
        "frame-gen cache", "frame-gen cache --clear 5.pth", "frame-gen cache --clear",
    )
    cache.add_argument("which", nargs="?", default=None, help="a checkpoint (.pth) or a prefix of its sha256")
    cache.add_argument("--clear", action="store_true", help="remove the entries and leftovers instead of listing them")
