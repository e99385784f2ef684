"""The exceptions raised for problems a user can fix: bad files, bad arguments, a failed encode.

Every message is one line that names the file or argument, what was expected and what was found.
The CLI turns any `FrameGenerationError` into `error: <message>` and exit status 2.
"""

from __future__ import annotations

import json
import os
import sys


class FrameGenerationError(Exception):
    """Base class of every user-facing error of this package."""


class ConfigurationError(FrameGenerationError, ValueError):
    """An argument has a value this package cannot work with (unknown mode, start frame past the end...)."""


class ArgumentTypeError(FrameGenerationError, TypeError):
    """An argument has the wrong type (a float where a frame index is expected, a str for a number...)."""


class InputFileError(FrameGenerationError):
    """A file given by the user is missing, unreadable or holds the wrong content."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple:
        # Rebuilt from (path, problem), so that the error crosses processes (farm workers) intact.
        return type(self), (self.path, self.problem)


class TemplateError(InputFileError):
    """A template folder or one of its frame, landmark or parsing files is unusable."""


class AudioFeatureError(InputFileError):
    """An audio feature file has the wrong shape, dtype or values for the mode."""


class AudioError(InputFileError):
    """A speech audio file cannot be decoded or is too short."""


class VideoError(InputFileError):
    """A video cannot be read, or its faces cannot make a template folder (frame-gen prepare)."""


class CheckpointError(InputFileError):
    """A checkpoint is missing, corrupt, or does not hold the expected network."""


class ModelFileError(InputFileError):
    """An exported model (ONNX) is unreadable, or was exported from another checkpoint or mode."""


class OutputError(InputFileError):
    """An output location cannot be written."""


class BundleError(InputFileError):
    """A reference bundle or port package is incomplete or malformed."""


class EncoderError(FrameGenerationError):
    """The video encoder (ffmpeg) failed; the message carries ffmpeg's own last lines."""


class ExportError(FrameGenerationError):
    """An ONNX export failed its check against the torch model."""


class CacheError(FrameGenerationError):
    """An entry of the export cache could not be made or read (a write another process left broken, a
    full disk): not a fault of the user's inputs, so trying again may succeed (the farm does)."""


class BackendUnavailableError(FrameGenerationError):
    """A backend was asked for whose library is not installed, or that cannot run on the device."""


def install_hint(extra: str = "") -> str:
    """How to install the package with optional part `extra` ("" for the core): from a checkout, as
    the package is not on a package index, into the Python running now (a bare `pip` may be another's),
    editable where it is installed so (`make` does: a plain install would replace it with a copy)."""
    target = f"'.[{extra}]'" if extra else "."
    editable = "-e " if _installed_editable() else ""
    return f"from a checkout of frame_generation_pipeline: `{sys.executable} -m pip install {editable}{target}`"


def _installed_editable() -> bool:
    """Whether this package was installed editable (its PEP 610 record says so)."""
    from importlib import metadata

    try:
        record = metadata.distribution("frame-generation-pipeline").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return False
    return record is not None and bool(json.loads(record).get("dir_info", {}).get("editable", False))


class StreamError(FrameGenerationError):
    """A live streaming session was fed audio it cannot take, or used after it was closed."""


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """The first line of an exception's message (its type's name when it has none), for a one-line
    reason; `with_type` puts the type's name in front, for exceptions that are not this package's."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if with_type else lines[0]
