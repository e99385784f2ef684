"""Small helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path

from frame_generation_pipeline.app.cli import main
from frame_generation_pipeline.files import atomic_directory


def cli_status(argv: list[str]) -> int:
    """Exit status of `frame-gen argv` run in this process, whether main returns it or argparse exits."""
    try:
        return main([str(arg) for arg in argv])
    except SystemExit as exit_info:
        return int(exit_info.code or 0)


#: The start of a Python script (run with -c) in which any import of torch fails.
WITHOUT_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not to be imported here")
sys.meta_path.insert(0, NoTorch())
"""


def earlier_output(folder: Path, files: dict[str, bytes], writer: str = "frames") -> Path:
    """`folder` as an earlier run of ours left it: `files` (name -> bytes) and the manifest our writer adds."""
    with atomic_directory(folder, writer) as staging:
        for name, data in files.items():
            (staging / name).write_bytes(data)
    return folder


def lms_text(points) -> str:
    """`.lms` text: one `x y` line per point."""
    return "".join(f"{x} {y}\n" for x, y in points)


def face_points(n=110, left=(100.7, 50.0), right=(260.2, 50.0), top=(180.0, 120.9)) -> list[tuple[float, float]]:
    """`n` landmark points, all at (150, 150) but 1, 31 and 52, the three the crop box reads."""
    points = [(150.0, 150.0)] * n
    points[1], points[31], points[52] = left, right, top
    return points
