"""Shared fixtures: generated templates, random-weight checkpoints in the real layout, features,
and one ONNX export per mode in a cache private to the test session."""

from __future__ import annotations

import os
from pathlib import Path

# OpenMP threads (torch's, here and in every subprocess a test starts) sleep when idle instead of
# spinning: on 2 shared cores the spinning cost up to 3-6x the CPU of a forward pass (measured on 8
# 320x320 U-Net forwards: 12-22 CPU s spinning, 3.7 passive). It changes no result: only how an idle
# thread waits. It must be set before torch loads libgomp, which reads it once.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# One OpenMP thread (torch's and OpenBLAS's, here and in every subprocess): the suite's CPU time, not its
# wall time, is what it is held to, and on 2 shared cores a second thread added a quarter to a forward
# pass's CPU (6 U-Net forwards at batch 2: 6.0-7.0 CPU-s on one thread, 8.2-8.8 on two, and no sooner
# done while other jobs ran). onnxruntime and OpenVINO size their own pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch

from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.devices import HIDE_FLAGS_ENV, cpu_flags, cpu_summary, tune_allocator

DATA = Path(__file__).resolve().parent / "data"
MODES = ("ave", "hubert", "wenet")


#: The CPU flags every test runs without, unless it asks for the CPU's own (`native_bf16`): precision
#: auto is then fp32 on every machine (AVX2-only, AVX-512 bf16, AMX), in this process and its children.
BF16_FLAGS = "avx512_bf16 amx_bf16 amx_tile"


@pytest.fixture(autouse=True, scope="session")
def _session_settings(tmp_path_factory):
    """One torch thread, the allocator setting the CLI makes, a private export cache, and a CPU seen
    without bf16 (precision auto runs fp32 everywhere but in the tests that ask for bf16)."""
    torch.set_num_threads(1)
    tune_allocator()
    previous = {name: os.environ.get(name) for name in ("FRAME_GEN_CACHE_DIR", HIDE_FLAGS_ENV)}
    os.environ["FRAME_GEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ[HIDE_FLAGS_ENV] = BF16_FLAGS
    cpu_flags.cache_clear()
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    cpu_flags.cache_clear()


@pytest.fixture
def native_bf16(monkeypatch):
    """The CPU's own flags for this test; skipped where the CPU has no native bf16 (AVX-512 BF16 or AMX)."""
    monkeypatch.delenv(HIDE_FLAGS_ENV)
    cpu_flags.cache_clear()
    if not cpu_summary()["bf16"]:
        cpu_flags.cache_clear()
        pytest.skip("this CPU has no native bf16 (AVX-512 BF16 or AMX)")
    yield
    cpu_flags.cache_clear()  # the next call reads the flags again, hidden once monkeypatch restores the setting


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One random-weight checkpoint per mode, saved as upstream saves them."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {mode: synthetic.save_random_checkpoint(root / f"{mode}.pth", mode, seed=i + 1) for i, mode in enumerate(MODES)}


@pytest.fixture(scope="session")
def exports(checkpoints, _session_settings) -> dict[str, Path]:
    """The opset-17 ONNX export of each checkpoint in the session's cache, where the backends find it
    too: made once per mode, on first use. ave's with the template cache's two graphs (the backends run
    them; the warm-start and cache tests expect all three); the other modes' full graph only (a backend
    that runs the template cache exports its two when it first needs them: wenet's never are, 9 CPU-s)."""
    from frame_generation_pipeline.contract import get_mode
    from frame_generation_pipeline.files import file_sha256
    from frame_generation_pipeline.models.backends.exported import cached_export
    from frame_generation_pipeline.models.cache import PARTS

    class Exports(dict):
        def __missing__(self, mode: str) -> Path:
            parts = PARTS if mode == "ave" else ("full",)
            self[mode] = cached_export(checkpoints[mode], get_mode(mode), file_sha256(checkpoints[mode]), parts)
            return self[mode]

    return Exports()


@pytest.fixture(scope="session")
def templates_640(tmp_path_factory) -> Path:
    """Five 640x480 templates with parsing masks."""
    return synthetic.make_templates(tmp_path_factory.mktemp("tpl640"), 5, 640, 480, parsing=True)


@pytest.fixture(scope="session")
def features(tmp_path_factory) -> dict[str, Path]:
    """Per-frame feature files: 7 frames per mode."""
    root = tmp_path_factory.mktemp("features")
    paths = {}
    for mode in MODES:
        paths[mode] = root / f"{mode}.npy"
        np.save(paths[mode], synthetic.random_features(mode, 7, seed=3))
    return paths


@pytest.fixture(scope="session")
def encoder_path(tmp_path_factory) -> Path:
    """A random-weight ave audio encoder in upstream's layout."""
    return synthetic.save_random_audio_encoder(tmp_path_factory.mktemp("enc") / "audio_visual_encoder.pth", seed=2)


@pytest.fixture(scope="session")
def hubert_model(tmp_path_factory) -> Path:
    """A random-weight hubert model folder (hubert-large's front end and width, one small layer)."""
    from frame_generation_pipeline.app.demo.synthetic import save_random_hubert_model

    return save_random_hubert_model(tmp_path_factory.mktemp("hubert") / "hubert-tiny", layers=1, seed=4)


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> dict[str, Path]:
    """Speech-like WAVs: 3 s, 0.5 s and 0.1 s; and 6 s of real speech (tests/data)."""
    from frame_generation_pipeline.app.demo.speech import write_speech_like_wav

    root = tmp_path_factory.mktemp("speech")
    return {"long": write_speech_like_wav(root / "long.wav", 3.0), "half": write_speech_like_wav(root / "half.wav", 0.5),
            "short": write_speech_like_wav(root / "short.wav", 0.1), "real": DATA / "talk_hb_6s.wav"}
