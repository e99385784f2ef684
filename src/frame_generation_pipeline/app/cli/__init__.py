"""The `frame-gen` command line: a thin layer over the library.

Exit status: 0 on success, 1 when a check found a mismatch, 2 on a user-facing error (one
`error: ...` line on stderr, no traceback unless --debug), 130 on Ctrl-C, 128 + N on signal N
(SIGTERM 143, SIGHUP 129), 141 without a word when the reader of its output has gone (`| head`,
as SIGPIPE). On any failure outputs are left as they were before the command. `serve` exits 0 on
Ctrl-C and SIGTERM: that is how a server is stopped.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ...devices import tune_allocator
from ...errors import FrameGenerationError
from ...version import __version__
from . import (
    cache_commands,
    demo_commands,
    farm_commands,
    live_commands,
    port_commands,
    prepare_commands,
    render_commands,
    say_commands,
    serve_commands,
)
from .arguments import Handler, Parser

logger = logging.getLogger("frame_generation_pipeline")

#: Signals that end a command as Ctrl-C does: outputs cleaned up, one line, exit 128 + N.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
#: The exit status when the reader of our output has gone, as a command killed by SIGPIPE has.
SIGPIPE = getattr(signal, "SIGPIPE", 13)


class Terminated(BaseException):
    """Raised in the main thread when a stop signal arrives, so that every cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def signals_raise() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise Terminated in the main thread; handlers restored after."""

    def stop(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `frame-gen` and its subcommands."""
    parser = Parser(
        prog="frame-gen",
        description="Render lip-synced talking-head frames and video with SyncTalk_2D 328 checkpoints.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render_commands.add_commands(commands)
    say_commands.add_commands(commands)
    demo_commands.add_commands(commands)
    prepare_commands.add_commands(commands)
    live_commands.add_commands(commands)
    serve_commands.add_commands(commands)
    farm_commands.add_commands(commands)
    port_commands.add_commands(commands)
    cache_commands.add_commands(commands)
    return parser


class _Lines(logging.Formatter):
    """Info as plain lines; warnings and worse with their level; debug with the logger's name."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {record.message}"
        if record.levelno < logging.INFO:
            return f"debug {record.name}: {record.message}"
        return record.message


@contextmanager
def command_logging(args: argparse.Namespace) -> Iterator[None]:
    """Library logs on stderr while a command runs: info unless --quiet (warnings still show),
    everything with --debug; the logger is left as it was found afterwards."""
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Lines())
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers[:], logger.propagate = [handler], False
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[2]
        logger.setLevel(saved[1])


def main(argv: Sequence[str] | None = None) -> int:
    """Run `frame-gen` with `argv` (default: sys.argv[1:]); return the exit status."""
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    args.started = started  # the closing lines say the whole command's time (messages.command_seconds)
    with command_logging(args):
        return _run(args)


def _stdout_reader_gone() -> bool:
    """True when standard output is a pipe whose reader has closed it (poll reports an error on it).

    Asked of the pipe itself, not of the buffer: a failed print may have dropped what it held, so a
    second flush can succeed although the reader is gone.
    """
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll on this platform, or no real stdout
        return False


def _run(args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    tune_allocator()  # process-wide, so the application's to set, never the library's
    try:
        with signals_raise():
            status = handler(args)
            sys.stdout.flush()  # a reader that has gone shows here, not as an error at exit
            return status
    except BrokenPipeError:
        if _stdout_reader_gone():  # `frame-gen cache | head -1`: stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + SIGPIPE
        raise  # another pipe (ffmpeg's): not ours to hide
    except FrameGenerationError as exc:
        if args.debug:
            logger.debug("traceback of the error below", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Terminated as stop:
        print(f"error: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum
