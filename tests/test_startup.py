"""A warm start: with the checkpoint's graphs in the export cache, `frame-gen video` imports neither
torch nor onnx nor transformers (benchmarks/startup.py measures what that saves)."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Runs `frame-gen` with the arguments given, then prints its status and which heavy libraries it imported.
PROBE = """
import sys
from frame_generation_pipeline.app.cli import main
status = main(sys.argv[1:])
print(status, *sorted(name for name in ("torch", "onnx", "transformers") if name in sys.modules))
"""


@pytest.mark.parametrize("backend", ["openvino", "auto"])
def test_a_warm_start_imports_no_torch_nor_onnx(backend, checkpoints, exports, templates_640, features, speech, tmp_path):
    assert exports["ave"].is_file()  # the checkpoint's graphs are in the session's cache: a warm start
    output = tmp_path / "one.mp4"
    argv = ["video", "--quiet", "--checkpoint", checkpoints["ave"], "--backend", backend, "--template-dir", templates_640,
            "--audio-features", features["ave"], "--audio", speech["half"], "--output", output, "--max-frames", "1"]
    result = subprocess.run([sys.executable, "-c", PROBE, *map(str, argv)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0"], f"imported on a warm start: {result.stdout.split()[1:]}"
    assert output.stat().st_size > 0
