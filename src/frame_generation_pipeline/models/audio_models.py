"""AudioModel: an audio model known by its file before it loads (the ave encoder's checkpoint or a
hubert folder): which features it makes, how its file is checked, how many frames speech gives,
and how it loads into a SpeechEncoder.

A registry by mode, as the backends have one: what a plan checks needs neither torch nor the model.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..audio.mel import frames_for_samples
from ..checks import missing_file, not_a_checkpoint
from ..contract import mode_for_audio_model
from ..errors import CheckpointError
from ..files import describe_os_error
from .hubert import HubertEncoder, check_model_folder
from .speech_encoder import SpeechEncoder

Path_ = str | os.PathLike[str]


def check_checkpoint_file(path: Path) -> None:
    """CheckpointError unless `path` is a readable file that begins as torch.save writes one (what a
    plan checks of a checkpoint before anything loads)."""
    if not path.is_file():
        raise CheckpointError(path, missing_file(path, "checkpoint file"))
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read ({describe_os_error(exc)})") from None
    problem = not_a_checkpoint(head)
    if problem is not None:
        raise CheckpointError(path, problem)


@dataclass(frozen=True)
class _Kind:
    """What is known of one mode's audio model before it loads."""

    argument: str  # the option that gives it
    check: Callable[[Path], None]  # refuses a file or folder that cannot be it
    frame_count: Callable[[int, str], int]  # its SpeechEncoder.frame_count
    first_channel: bool  # its SpeechEncoder.first_channel
    encoder: str  # "module:Class" of its SpeechEncoder, imported when it loads


_KINDS = {
    # AudioEncoder's frame rule and channel mix, named here without importing torch
    "ave": _Kind("--audio-encoder", check_checkpoint_file, frames_for_samples, False, "audio_encoder:AudioEncoder"),
    "hubert": _Kind("--hubert-model", check_model_folder, HubertEncoder.frame_count, HubertEncoder.first_channel,
                    "hubert:HubertEncoder"),
}


@dataclass(frozen=True)
class AudioModel:
    """A model that computes features from speech: `mode` names the features it makes (the ave
    audio encoder makes "ave", a hubert model folder "hubert"), `path` its checkpoint or folder,
    `argument` the option that gave it."""

    mode: str
    path: Path
    argument: str = "--audio-encoder"

    @property
    def first_channel(self) -> bool:
        """Its speech is a file's first channel (hubert), not the channels' mean (ave)."""
        return _KINDS[self.mode].first_channel

    def check_mode(self, mode: str) -> None:
        """ConfigurationError unless it computes features of `mode` (naming its option)."""
        mode_for_audio_model(mode, self.argument.removeprefix("--").replace("-", "_"))

    def check(self, mode: str) -> None:
        """`check_mode`, then CheckpointError or ModelFileError unless its file or folder can be it."""
        self.check_mode(mode)
        _KINDS[self.mode].check(self.path)

    def frame_count(self, samples: int, source: str) -> int:
        """Frames of features `samples` samples give; AudioError naming `source` when too short."""
        return _KINDS[self.mode].frame_count(samples, source)


def describe_audio_model(audio_encoder: Path_ | None = None, hubert_model: Path_ | None = None) -> AudioModel | None:
    """The AudioModel of the ave encoder's checkpoint `audio_encoder` or the hubert folder `hubert_model` (None: neither)."""
    if audio_encoder is not None:
        return AudioModel("ave", Path(audio_encoder), _KINDS["ave"].argument)
    return None if hubert_model is None else AudioModel("hubert", Path(hubert_model), _KINDS["hubert"].argument)


def described(encoder: SpeechEncoder[Any]) -> AudioModel:
    """The AudioModel of a loaded audio model."""
    return AudioModel(encoder.mode.name, encoder.path, _KINDS[encoder.mode.name].argument)


def load_audio_model(model: AudioModel, device: str | None = None) -> SpeechEncoder[Any]:
    """The audio model `model` describes, loaded on `device` (the ave encoder, or a hubert folder)."""
    module, name = _KINDS[model.mode].encoder.split(":")
    encoder: type[SpeechEncoder[Any]] = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return encoder(model.path, device=device)  # type: ignore[call-arg]


class AudioModels:
    """The audio models one owner (a pipeline) loads: each file or folder loaded once, on `device`;
    a loaded SpeechEncoder given in place of a path is kept for reuse under its own."""

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        self._loaded: dict[tuple[str, str], SpeechEncoder[Any]] = {}

    def describe(self, audio_encoder: SpeechEncoder[Any] | Path_ | None = None,
                 hubert_model: SpeechEncoder[Any] | Path_ | None = None) -> AudioModel | None:
        """The AudioModel of `audio_encoder` (ave) or `hubert_model` (hubert): a path, or a loaded model."""
        given = audio_encoder if audio_encoder is not None else hubert_model
        if not isinstance(given, SpeechEncoder):
            return describe_audio_model(audio_encoder, hubert_model)  # type: ignore[arg-type]
        model = described(given)
        self._loaded[self._key(model)] = given
        return model

    def get(self, model: AudioModel) -> SpeechEncoder[Any]:
        """The loaded model `model` describes (loaded now if it was not yet)."""
        key = self._key(model)
        if key not in self._loaded:
            self._loaded[key] = load_audio_model(model, self.device)
        return self._loaded[key]

    def latest(self) -> SpeechEncoder[Any] | None:
        """The model it took in last (loaded, or given for the first time); None before any."""
        return next(reversed(self._loaded.values()), None)

    @staticmethod
    def _key(model: AudioModel) -> tuple[str, str]:
        return model.mode, os.path.realpath(model.path)
