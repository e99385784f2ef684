"""Many processes, one cache: an entry (a graph, a fidelity record) made once while the others wait,
a killed holder that blocks no one, and what interrupted writes leave listed and cleared by `frame-gen cache`.

The processes are real (tests/cache_scenario.py); their torch exporter is a stand-in copying the
session's export through the real atomic write, so that they cost an interpreter each, not an export.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from frame_generation_pipeline import TemplateSet
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.contract import get_mode
from frame_generation_pipeline.files import file_sha256
from frame_generation_pipeline.models.backends.base import InferenceModel
from frame_generation_pipeline.models.cache import PARTS, cache_entries, cache_leftovers, clear_cache, export_path
from frame_generation_pipeline.models.cache_lock import WRITING_MARK, entry_lock, lock_path, writing
from frame_generation_pipeline.render.fidelity import check_inputs, measured_fidelity

from .helpers import cli_status

SCENARIO = Path(__file__).resolve().parent / "cache_scenario.py"


@pytest.fixture()
def empty_cache(tmp_path, monkeypatch, checkpoints, exports):
    """A new empty cache for this test (and its processes), and the session's graphs of the ave checkpoint
    (`sources/<part>.onnx`) for the stand-in exporter to copy."""
    exports["ave"]  # noqa: B018 (made in the session's cache first)
    sha = file_sha256(checkpoints["ave"])
    sources = tmp_path / "sources"
    sources.mkdir()
    for part in PARTS:
        shutil.copyfile(export_path(sha, get_mode("ave"), part), sources / f"{part}.onnx")
    monkeypatch.setenv("FRAME_GEN_CACHE_DIR", str(tmp_path / "cache"))
    return {"sha": sha, "sources": sources, "counter": tmp_path / "exports.txt", "barrier": tmp_path / "barrier"}


def _exporter(cache: dict, checkpoint: Path, count: int, behaviour: str = "quick") -> subprocess.Popen:
    argv = [sys.executable, str(SCENARIO), "export", str(checkpoint), str(cache["sources"]), str(cache["counter"]),
            str(cache["barrier"]), str(count), behaviour]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _exported(cache: dict) -> list[str]:
    return sorted(line.split()[1] for line in cache["counter"].read_text().splitlines())


def test_three_processes_on_an_empty_cache_all_succeed_and_export_each_graph_once(empty_cache, checkpoints):
    processes = [_exporter(empty_cache, checkpoints["ave"], 3) for _ in range(3)]
    results = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], [err[-2000:] for _, err in results]
    full = export_path(empty_cache["sha"], get_mode("ave"))
    assert {out.strip() for out, _ in results} == {str(full)}
    assert _exported(empty_cache) == sorted(PARTS), "each graph exported once, by one of the processes"
    for part in PARTS:
        exported = export_path(empty_cache["sha"], get_mode("ave"), part).read_bytes()
        assert exported == (empty_cache["sources"] / f"{part}.onnx").read_bytes()
    assert sorted(p.name for p in full.parent.iterdir()) == sorted(f"{e.path.name}" for e in cache_entries())
    assert cache_leftovers() == [], "no lock file or temporary is left"


def test_a_process_killed_while_exporting_blocks_no_one_and_its_leftovers_are_listed_and_cleared(
        empty_cache, checkpoints, capsys):
    holder = _exporter(empty_cache, checkpoints["ave"], 1, "hang")
    assert holder.stdout is not None and holder.stdout.readline().strip() == "exporting", holder.stderr
    full = export_path(empty_cache["sha"], get_mode("ave"))
    assert cache_leftovers() == [], "a write under way is no leftover"
    assert cli_status(["cache", "--clear"]) == 0 and len(list(full.parent.glob(".*.partial.onnx"))) == 1, \
        "nor removed by --clear"
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
    capsys.readouterr()
    assert cli_status(["cache"]) == 0
    listed = capsys.readouterr().out.splitlines()
    leftovers = cache_leftovers()
    graphs = [export_path(empty_cache["sha"], get_mode("ave"), part) for part in PARTS]  # their locks held together
    assert sorted((left.what, left.entry) for left in leftovers) == sorted([*(("lock file", g) for g in graphs),
                                                                            ("temporary", full)])
    assert sorted(listed[:-1]) == sorted(f"leftover  {left.what:<19}  {left.nbytes / 1e6:>6.1f} MB  {left.path}"
                                         for left in leftovers)
    assert listed[-1].endswith("4 leftover(s) of interrupted writes (--clear removes them)")

    follower = _exporter(empty_cache, checkpoints["ave"], 1)
    out, err = follower.communicate(timeout=120)  # a lock the dead holder kept would hang it here
    assert follower.returncode == 0 and out.strip() == str(full), err[-2000:]
    assert _exported(empty_cache) == sorted(["full", *PARTS]), "the killed export, then all three"
    assert [(left.what, left.entry) for left in cache_leftovers()] == [("temporary", full)]
    assert cli_status(["cache", "--clear", checkpoints["ave"]]) == 0
    assert "removed 3 cache entries (138.2 MB) and 1 leftover(s) of interrupted writes" in capsys.readouterr().err
    assert cache_leftovers() == []
    assert list(full.parent.iterdir()) == []


def test_a_folder_whose_writer_was_killed_is_listed_and_emptied_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAME_GEN_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "openvino" / "0123456789abcdef01234567-ave-opset17"
    writer = subprocess.Popen([sys.executable, str(SCENARIO), "folder", str(folder)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    assert cache_leftovers() == [] and (folder / WRITING_MARK).is_file()
    assert clear_cache() == [] and (folder / "model.blob").is_file(), "a folder in use is not removed"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=60)
    assert [(left.what, left.path) for left in cache_leftovers()] == [("lock file", lock_path(folder)),
                                                                      ("half-written folder", folder)]
    with writing(folder) as written:
        assert list(written.iterdir()) == [written / WRITING_MARK], "what the dead writer left is gone"
        (written / "model.blob").write_bytes(b"whole")
    assert sorted(p.name for p in folder.iterdir()) == ["model.blob"] and cache_leftovers() == []


def test_a_lock_is_dropped_with_its_holder_and_held_by_one_at_a_time(tmp_path):
    entry = tmp_path / "entry.onnx"
    with entry_lock(entry):
        assert lock_path(entry).is_file()
        child = subprocess.run([sys.executable, "-c", (
            "import fcntl, os, sys; handle = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)"),
            str(lock_path(entry))], timeout=60)
        assert child.returncode == 3, "another process cannot take it while it is held"
    assert not lock_path(entry).exists(), "the holder removes its lock file"


def test_a_fidelity_record_asked_for_by_several_at_once_is_measured_once(tmp_path, monkeypatch):
    """Threads stand in for processes here: each takes the lock through a file of its own, and flock
    keeps two open files of one lock apart as it keeps two processes."""
    monkeypatch.setenv("FRAME_GEN_CACHE_DIR", str(tmp_path / "cache"))
    templates = TemplateSet.from_folder(synthetic.make_templates(tmp_path / "tpl", 3, 200, 160, parsing=False))
    started, measured = threading.Barrier(3), []

    class Model(InferenceModel):
        name = "stand-in"

        def __init__(self):
            super().__init__(get_mode("ave"), precision="bf16", checkpoint_sha256="ab" * 32)

        def run(self, images, audio):
            return np.full((len(images), 3, 320, 320), 0.5, np.float32)

    def exact():
        measured.append(threading.get_ident())
        time.sleep(0.3)  # long enough for the others to find no record and wait
        return Model()

    inputs = check_inputs(templates, get_mode("ave"))

    def ask():
        started.wait()
        return measured_fidelity(Model(), exact, inputs)

    with ThreadPoolExecutor(3) as pool:
        values = list(pool.map(lambda _: ask(), range(3)))
    assert values == [float("inf")] * 3 and len(measured) == 1, "measured by one, read by the others"
    assert cache_leftovers() == []
    record = next((tmp_path / "cache" / "fidelity").rglob("*.json"))
    stale = record.with_name(f".{record.stem}.abcd1234.partial.json")  # as a killed process leaves it
    stale.write_text("{")
    assert [left.path for left in cache_leftovers("ab" * 4)] == [stale] and cache_leftovers("cd" * 4) == []
