"""Render lip-synced talking-head frames and video with trained SyncTalk_2D 328 checkpoints.

The public names are imported on first use, so that `import frame_generation_pipeline` (and
`frame-gen --version`) stays cheap until a backend is really needed.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from .errors import FrameGenerationError
from .version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "AudioFeatures": "inputs.features",
    "FrameGenerationPipeline": "pipeline",
    "FrameGenerator": "frame_generator",
    "ImageProcessor": "image_processor",
    "RenderOptions": "options",
    "RenderResult": "options",
    "RenderedFrame": "frame_generator",
    "TemplateCache": "render.template_cache",
    "TemplateSet": "inputs.templates",
    "UNetModel": "unet_model",
    "load_backend": "models.backends",
    "tune_allocator": "devices",
}

__all__ = ["FrameGenerationError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
