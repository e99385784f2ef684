"""What a command says when it is done: its closing line, on stderr through the package's logger."""

from __future__ import annotations

import argparse
import logging
import time

logger = logging.getLogger("frame_generation_pipeline")


def report(args: argparse.Namespace, line: str) -> None:
    """The closing line of a command, on stderr, unless --quiet."""
    if not args.quiet:
        logger.info("%s", line)


def command_seconds(args: argparse.Namespace) -> float | None:
    """Seconds since the command started (main() stamps `args.started`); None where it was not stamped."""
    started = getattr(args, "started", None)
    return None if started is None else time.perf_counter() - started
