"""One process of test_cache_processes.py: asks the export cache for a checkpoint's graphs, or writes
an OpenVINO-style folder in place, as a farm worker would. Its torch exporter is a stand-in that
copies a graph exported earlier (a real export costs seconds of CPU) and counts its calls.

python cache_scenario.py export CHECKPOINT SOURCES COUNTER BARRIER N quick|hang
python cache_scenario.py folder FOLDER
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import types
from pathlib import Path


def stand_in_exporter(sources: Path, counter: Path, hang: bool) -> None:
    """Put a TorchBackend whose export copies `sources/<part>.onnx` (through the real atomic write) in
    place of the real one; each export appends a line to `counter`; with `hang` the first stops
    half-way, forever."""
    from frame_generation_pipeline.files import atomic_file

    class TorchBackend:
        def __init__(self, checkpoint, mode, device, checkpoint_sha256):
            self.checkpoint_sha256 = checkpoint_sha256

        def export_to_onnx(self, path, opset, part):
            with open(counter, "a") as handle:
                handle.write(f"{os.getpid()} {part}\n")
            with atomic_file(path) as temporary:
                shutil.copyfile(sources / f"{part}.onnx", temporary)
                if hang:
                    print("exporting", flush=True)
                    time.sleep(600)
                time.sleep(0.3)  # long enough for every other process to find the entry missing

    module = types.ModuleType("frame_generation_pipeline.models.backends.torch_backend")
    module.TorchBackend = TorchBackend  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module


def wait_for_all(barrier: Path, count: int) -> None:
    """Start together: mark this process ready, then wait until `count` are."""
    barrier.mkdir(exist_ok=True)
    (barrier / str(os.getpid())).touch()
    while len(list(barrier.iterdir())) < count:
        time.sleep(0.01)


def export(checkpoint: str, sources: str, counter: str, barrier: str, count: str, behaviour: str) -> None:
    stand_in_exporter(Path(sources), Path(counter), behaviour == "hang")
    from frame_generation_pipeline.contract import get_mode
    from frame_generation_pipeline.files import file_sha256
    from frame_generation_pipeline.models.backends.exported import cached_export

    wait_for_all(Path(barrier), int(count))
    print(cached_export(checkpoint, get_mode("ave"), file_sha256(checkpoint)))


def folder(path: str) -> None:
    from frame_generation_pipeline.models.cache_lock import writing

    with writing(Path(path)) as written:
        (written / "model.blob").write_bytes(b"half")
        print("writing", flush=True)
        time.sleep(600)


if __name__ == "__main__":
    {"export": export, "folder": folder}[sys.argv[1]](*sys.argv[2:])
