"""The batch subcommand: a list of jobs rendered on a Ray cluster."""

from __future__ import annotations

import argparse
import textwrap
import time

from .arguments import Formatter, non_negative_float, non_negative_int, positive_int, subcommand
from .messages import command_seconds, report


def run_batch(args: argparse.Namespace) -> int:
    """`frame-gen batch`: every job of the file; exit 1 when any failed (the others still ran)."""
    from ..farm.jobs import read_jobs
    from ..farm.runner import Farm

    jobs = read_jobs(args.jobs, args.report)  # a malformed line or a bad output stops everything before anything runs
    started = time.perf_counter()
    rows = Farm(jobs, workers=args.workers, ray_address=args.ray_address, gpus_per_worker=args.gpus_per_worker,
                report=args.report, chunk_frames=args.chunk_frames, retries=args.retries, show_progress=not args.quiet).run()
    seconds = time.perf_counter() - started
    ok = [row for row in rows if row["status"] == "ok"]
    frames = sum(row["frames"] for row in ok)
    report(args, f"batch: {len(ok)} ok, {len(rows) - len(ok)} failed; {frames} frames in {seconds:.1f} s on the cluster "
                 f"({frames / seconds if seconds else 0.0:.1f} frames/s); {command_seconds(args):.1f} s for the whole "
                 "command (with the jobs' checks)")
    return 0 if len(ok) == len(rows) else 1


#: Where the help shows the job keys, filled in when it is shown (the job module loads OpenCV).
_JOB_KEYS = "{job keys}"


class _JobKeysFormatter(Formatter):
    """The help with the job keys the job module accepts (app/farm/jobs.py, JOB_KEYS) in place of _JOB_KEYS."""

    def _format_text(self, text: str) -> str:
        if _JOB_KEYS in text:
            from ..farm.jobs import JOB_KEYS

            keys = textwrap.fill(", ".join(JOB_KEYS) + ".", 100, initial_indent="  ", subsequent_indent="  ")
            text = text.replace(_JOB_KEYS, keys)
        return super()._format_text(text)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `batch` to `commands`."""
    batch = subcommand(
        commands, "batch", run_batch, "render a list of jobs on Ray (a local instance or a cluster)",
        "Render every job of a JSONL file, one job per line whose keys are the video subcommand's long\n"
        f"options without dashes:\n{_JOB_KEYS}\n"
        "Every job's inputs are checked as `video` checks them before the cluster starts (naming the line).\n"
        "Workers keep their models loaded between jobs; a failing job does not stop the others (exit\n"
        "status 1 then); a job that fails for a reason other than its inputs is tried again (--retries).\n"
        "Paths are read by the workers: a cluster needs a shared filesystem.\n"
        "Needs the [farm] extra (ray).",
        "frame-gen batch jobs.jsonl --workers 2 --report report.jsonl --chunk-frames 500",
    )
    batch.formatter_class = _JobKeysFormatter
    batch.add_argument("jobs", help="JSONL file of jobs")
    batch.add_argument("--workers", type=positive_int, default=None, help="workers (default: one per 2 CPUs, or per GPU group)")
    batch.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local one on 127.0.0.1)")
    batch.add_argument("--gpus-per-worker", type=non_negative_float, default=0.0, help="GPUs each worker gets (0: CPU workers)")
    batch.add_argument("--report", default=None, help="write a JSON line per job here (in place when the batch ends)")
    batch.add_argument("--chunk-frames", type=positive_int, default=None, help="split longer jobs into chunks of this many frames")
    batch.add_argument("--retries", type=non_negative_int, default=2,
                       help="times a job is tried again when its worker dies or it fails for a reason other than its inputs")
