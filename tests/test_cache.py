"""`frame-gen cache` and the export cache's entries: listed with what each is, cleared all or by checkpoint."""

from __future__ import annotations

import shutil

import pytest

from frame_generation_pipeline.contract import get_mode
from frame_generation_pipeline.files import file_sha256
from frame_generation_pipeline.models.cache import CACHE_OPSET, cache_entries, clear_cache, entry_name
from frame_generation_pipeline.precisions import PRECISIONS, Precision

from .helpers import cli_status


@pytest.fixture()
def cache(tmp_path, monkeypatch, checkpoints, exports):
    """A private cache holding the ave export (full graph and halves), an OpenVINO folder for it, an
    entry of the hubert checkpoint and a file the cache did not write."""
    export = exports["ave"]  # made in the session's cache first
    monkeypatch.setenv("FRAME_GEN_CACHE_DIR", str(tmp_path / "cache"))
    onnx, openvino = tmp_path / "cache" / "onnx", tmp_path / "cache" / "openvino"
    onnx.mkdir(parents=True)
    ave, hubert = file_sha256(checkpoints["ave"]), file_sha256(checkpoints["hubert"])
    for part in ("full", "template", "rest"):
        shutil.copyfile(export, onnx / f"{entry_name(ave, get_mode('ave'), part)}.onnx")
    (openvino / entry_name(ave, get_mode("ave"))).mkdir(parents=True)
    (openvino / entry_name(ave, get_mode("ave")) / "blob").write_bytes(b"x" * 1000)
    (onnx / f"{entry_name(hubert, get_mode('hubert'))}.onnx").write_bytes(b"y" * 10)
    (onnx / "notes.txt").write_text("mine")
    return {"root": tmp_path / "cache", "ave": ave, "hubert": hubert}


def test_the_cache_lists_what_each_entry_is(cache, capsys):
    entries = cache_entries()
    described = sorted((e.kind, e.checkpoint_sha256, e.mode, e.opset, e.part) for e in entries)
    ave, hubert = cache["ave"][:24], cache["hubert"][:24]
    assert described == sorted([
        ("onnx", ave, "ave", CACHE_OPSET, "full"), ("onnx", ave, "ave", CACHE_OPSET, "template"),
        ("onnx", ave, "ave", CACHE_OPSET, "rest"), ("openvino", ave, "ave", CACHE_OPSET, "full"),
        ("onnx", hubert, "hubert", CACHE_OPSET, "full")])
    assert {e.nbytes for e in entries if e.kind == "openvino"} == {1000}
    assert cli_status(["cache"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["checkpoint", "mode", "opset", "graph", "kind", "size", "path"]
    assert len(out) == 7 and out[-1].startswith("5 entries") and all(line.split()[0] in (ave, hubert) for line in out[1:-1])
    assert {line.index(" MB ") + len(" MB") for line in out[1:-1]} == {out[0].index("size") + len("size")}, "sizes under size"


def test_clearing_one_checkpoint_by_path_or_sha_prefix_leaves_the_rest(cache, checkpoints, capsys):
    assert cli_status(["cache", "--clear", checkpoints["ave"]]) == 0
    assert [(e.mode, e.part) for e in cache_entries()] == [("hubert", "full")]
    assert (cache["root"] / "onnx" / "notes.txt").read_text() == "mine"
    assert [e.mode for e in clear_cache(cache["hubert"][:8].upper())] == ["hubert"]
    assert cache_entries() == [] and (cache["root"] / "onnx" / "notes.txt").is_file()


def test_clearing_all_and_a_bad_argument(cache, capsys):
    assert cli_status(["cache", "--clear", "not-a-sha"]) == 2
    assert "neither a checkpoint file nor a sha256 prefix" in capsys.readouterr().err
    assert len(cache_entries()) == 5, "a refused command removes nothing"
    assert cli_status(["cache", "--clear"]) == 0
    assert cache_entries() == [] and (cache["root"] / "onnx" / "notes.txt").is_file()


def test_entries_named_by_the_registries_are_listed_and_cleared(tmp_path, monkeypatch):
    """A part is made of the registries' names (graphs, precisions, backends), digits included: an entry
    of fp16 or of a precision registered later is listed and cleared like the others; a stranger is not."""
    monkeypatch.setenv("FRAME_GEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(PRECISIONS, "int8", Precision("int8", "", "", "a stand-in"))
    onnx, ave, sha = tmp_path / "onnx", get_mode("ave"), "ab" * 32
    onnx.mkdir()
    for part in ("fp16", "first-int8", "openvino-bf16", "int9", "first-"):
        (onnx / f"{entry_name(sha, ave, part)}.onnx").write_bytes(b"z")
    assert sorted(entry.part for entry in cache_entries()) == ["first-int8", "fp16", "openvino-bf16"]
    assert sorted(entry.part for entry in clear_cache(sha[:8])) == ["first-int8", "fp16", "openvino-bf16"]
    assert sorted(path.name.split("opset17-")[1] for path in onnx.iterdir()) == ["first-.onnx", "int9.onnx"]
