"""The exceptions raised for problems a user can fix: bad files, bad arguments, a failed encode.

Every message is one line that names the file or argument, what was expected and what was found.
The CLI turns any `FrameGenerationError` into `error: <message>` and exit status 2.
"""

from __future__ import annotations

import os


class FrameGenerationError(Exception):
    """Base class of every user-facing error of this package."""


class ConfigurationError(FrameGenerationError, ValueError):
    """An argument has a value this package cannot work with (unknown mode, start frame past the end...)."""


class InputFileError(FrameGenerationError):
    """A file given by the user is missing, unreadable or holds the wrong content."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TemplateError(InputFileError):
    """A template folder or one of its frame, landmark or parsing files is unusable."""


class AudioFeatureError(InputFileError):
    """An audio feature file has the wrong shape, dtype or values for the mode."""


class AudioError(InputFileError):
    """A speech audio file cannot be decoded or is too short."""


class CheckpointError(InputFileError):
    """A checkpoint is missing, corrupt, or does not hold the expected network."""


class OutputError(InputFileError):
    """An output location cannot be written."""


class EncoderError(FrameGenerationError):
    """The video encoder (ffmpeg) failed; the message carries ffmpeg's own last lines."""


class ExportError(FrameGenerationError):
    """An ONNX export failed its check against the torch model, or a backend is unavailable."""
