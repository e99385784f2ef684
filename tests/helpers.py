"""Small helpers shared by the tests."""

from __future__ import annotations

from frame_generation_pipeline.app.cli import main


def cli_status(argv: list[str]) -> int:
    """Exit status of `frame-gen argv` run in this process, whether main returns it or argparse exits."""
    try:
        return main([str(arg) for arg in argv])
    except SystemExit as exit_info:
        return int(exit_info.code or 0)
