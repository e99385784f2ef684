"""Shared fixtures: generated templates, random-weight checkpoints in the real layout, features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from frame_generation_pipeline import synthetic

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One random-weight checkpoint per mode, saved as upstream saves them."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        mode: synthetic.save_random_checkpoint(root / f"{mode}.pth", mode, seed=i + 1)
        for i, mode in enumerate(("ave", "hubert", "wenet"))
    }


@pytest.fixture(scope="session")
def templates_640(tmp_path_factory) -> Path:
    """Five 640x480 templates with parsing masks."""
    return synthetic.make_templates(tmp_path_factory.mktemp("tpl640"), 5, 640, 480, parsing=True)


@pytest.fixture(scope="session")
def features(tmp_path_factory) -> dict[str, Path]:
    """Per-frame feature files: 7 frames per mode."""
    root = tmp_path_factory.mktemp("features")
    paths = {}
    for mode in ("ave", "hubert", "wenet"):
        paths[mode] = root / f"{mode}.npy"
        np.save(paths[mode], synthetic.random_features(mode, 7, seed=3))
    return paths
