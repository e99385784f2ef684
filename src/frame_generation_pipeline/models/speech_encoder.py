"""SpeechEncoder: what every audio model is (the ave encoder, hubert): 16 kHz speech -> the feature
rows of its mode, for a whole clip or as the speech arrives (a FeatureRows stream).

One feature row per video frame, `fps` of them per second of speech. Neither torch nor a model
is needed to import this module.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Generic, Protocol, TypeVar

import numpy as np

from ..audio.ffmpeg import AudioInfo
from ..audio.speech import load_speech
from ..contract import ModeSpec

logger = logging.getLogger(__name__)


class FeatureRows(Protocol):
    """The feature rows of one utterance as its 16 kHz samples arrive (an encoder's `stream`)."""

    #: Feature rows of the whole utterance once `finish` was called, else None.
    count: int | None
    #: Speech after a frame's time that this stream waits for beyond the ave path's lookahead.
    extra_lookahead_seconds: float

    @property
    def windows(self) -> int:
        """Frames encoded so far (what a live session times the encoder by)."""
        ...

    def push(self, samples: np.ndarray) -> None:
        """Take more speech (16 kHz mono float32)."""

    def finish(self) -> None:
        """The speech has ended: encode the rest (AudioError when it is too short)."""

    def ready(self, frame: int) -> bool:
        """True when frame `frame`'s audio window is final."""
        ...

    def window(self, frame: int) -> np.ndarray:
        """The network audio input of frame `frame` (the mode's audio_shape, float32)."""
        ...

    def release(self, before_frame: int) -> None:
        """Forget what no frame from `before_frame` on reads."""

    def state_bytes(self) -> int:
        """Memory held by the stream's arrays."""
        ...


class OpenSpeechWindows(Protocol):
    """How an encoder that reads context encodes open speech in pieces (models.hubert.HubertWindows)."""

    @property
    def window(self) -> int:
        """New rows each forward pass makes."""
        ...

    @property
    def context(self) -> int:
        """Rows of speech read before them."""
        ...

    @property
    def lookahead(self) -> int:
        """Rows of speech read after them."""
        ...

    @property
    def lookahead_seconds(self) -> float:
        """Speech after a frame's time that it waits for, at worst."""
        ...


class Stages(Protocol):
    """Every stage of a speech path, from samples to per-frame features."""

    @property
    def features(self) -> np.ndarray:
        """(F, ...) float32 per-frame features."""
        ...


StagesT = TypeVar("StagesT", bound=Stages)


class SpeechEncoder(ABC, Generic[StagesT]):
    """A loaded audio model: speech -> feature rows of `mode`, `fps` rows per second.

    Subclasses say which mode they compute, whether they read the first channel of a file (else
    the channels' mean), how many frames a number of samples gives, every stage of a whole clip,
    a stream for speech that arrives in pieces, and a warm-up.
    """

    #: The mode of the features it computes.
    mode: ClassVar[ModeSpec]
    #: Mono is the first channel of a file (the hubert path), not the channels' mean (the ave path).
    first_channel: ClassVar[bool] = False

    @property
    @abstractmethod
    def path(self) -> Path:
        """The checkpoint file or model folder it was loaded from."""

    @property
    def fps(self) -> int:
        """Feature rows (video frames) per second of speech."""
        return self.mode.fps

    @staticmethod
    @abstractmethod
    def frame_count(samples: int, source: str = "<audio>") -> int:
        """Frames of features `samples` samples give; AudioError naming `source` when too short for one."""

    @abstractmethod
    def stages(self, samples: np.ndarray, source: str = "<audio>") -> StagesT:
        """Every stage from 16 kHz mono samples to features (what a reference bundle keeps)."""

    @abstractmethod
    def stream(self, known_length: bool, windows: OpenSpeechWindows | None = None,
               source: str = "<stream>") -> FeatureRows:
        """The feature rows of one utterance whose samples arrive in pieces: `known_length` when its
        whole speech is given at once; `windows` for an encoder that encodes open speech in pieces."""

    @abstractmethod
    def warm_up(self) -> int:
        """Encode a little silence once (the first call's setup); the frames it stands for."""

    def features_from_samples(self, samples: np.ndarray, source: str = "<audio>") -> np.ndarray:
        """16 kHz mono samples -> (F, ...) float32 per-frame features."""
        return self.stages(samples, source).features

    def features_from_audio(self, audio: str | os.PathLike[str] | AudioInfo) -> np.ndarray:
        """Decode a speech file (wav, mp3, m4a, flac...; a path or its AudioInfo) into per-frame features."""
        source = str(audio.path if isinstance(audio, AudioInfo) else audio)
        features = self.features_from_samples(load_speech(audio, first_channel=self.first_channel), source)
        logger.info("%s: %d %s feature rows", source, len(features), self.mode.name)
        return features
