"""Silence through an audio model: the feature window of a frame in the middle of a long silence
(what an avatar at rest is rendered with), and speech that runs on into silence after its last
sound, so that its last frames close the mouth the way an offline render of the speech followed
by silence does (docs/live.md, "At rest and in between").

Frame i reads feature rows i-8 .. i+7. After n samples of speech, the first row that holds only
silence is known from the audio model's arithmetic (ave: the first encoder window whose mel
frames, pre-emphasis included, read no sample of the speech; hubert: the first frame whose two
rows' samples all come after it), and the first frame whose window holds only silence is 8 rows
later: an utterance renders up to the frame before it. With ave, that frame's window equals the
rest window exactly; hubert attends over the whole utterance, so there it is close, not equal.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..audio.mel import HOP, N_FFT, window_start
from ..contract import AUDIO_WINDOW, SAMPLE_RATE
from ..inputs.features import AudioFeatures
from .speech_encoder import FeatureRows

#: Seconds of silence the rest window is read from (its middle frame reads no edge).
REST_SECONDS = 2.0
_HALF = AUDIO_WINDOW // 2
#: Samples of one 25 fps frame: the silence an utterance runs on into is added in these steps.
_FRAME_SAMPLES = SAMPLE_RATE // 25


def rest_window(encoder: Any) -> np.ndarray:
    """The network audio input of a frame in the middle of REST_SECONDS of silence, computed by
    `encoder` (a SpeechEncoder) as an offline render computes its features."""
    features = AudioFeatures(encoder.features_from_samples(np.zeros(int(REST_SECONDS * SAMPLE_RATE), np.float32),
                                                           "<silence>"), encoder.mode)
    return features.window(len(features) // 2)


def first_silent_row(mode: str, samples: int) -> int:
    """The first feature row that reads no sample of `samples` samples of speech followed by silence."""
    if mode == "ave":
        # mel frame t reads emphasised samples [HOP t - N_FFT/2, HOP t + N_FFT/2); the emphasis carries
        # the last sample of speech into the next one
        first_mel = math.ceil((samples + 1 + N_FFT // 2) / HOP)
        window = 0
        while window_start(window) < first_mel:
            window += 1
        return window + 1  # row j holds window j - 1
    return math.ceil(samples / _FRAME_SAMPLES)  # hubert: frame j holds rows 2j, 2j+1 (320 samples each)


class RunOn(NamedTuple):
    """How an utterance of speech runs on into silence: the silent samples its features read after
    it, and the frames it renders (those whose window reads any of the speech)."""

    silence: int
    frames: int


def run_on(encoder: Any, samples: int, source: str = "<speech>") -> RunOn:
    """The run into silence of `samples` samples of speech through `encoder` (AudioError, naming
    `source`, when the speech is too short for one frame)."""
    encoder.frame_count(samples, source)  # refuses speech too short to render
    frames = first_silent_row(encoder.mode.name, samples) + _HALF
    silence = 0
    while encoder.frame_count(samples + silence) < frames + _HALF:  # every row frame `frames - 1` reads is in
        silence += _FRAME_SAMPLES
    return RunOn(silence, frames)


def utterance_frames(encoder: Any, samples: int, tail: bool = True, source: str = "<speech>") -> int:
    """Frames an utterance of `samples` samples renders through `encoder`: with its run into silence
    (`tail`), or those of the speech alone (AudioError when it is too short)."""
    return run_on(encoder, samples, source).frames if tail else encoder.frame_count(samples, source)


class RunningOn:
    """An utterance's feature rows (a FeatureRows stream of `encoder`) whose speech runs on into
    silence at its end (`run_on`), or ends as offline renders of the speech alone end (`tail` False)."""

    def __init__(self, rows: FeatureRows, encoder: Any, tail: bool = True) -> None:
        self.rows, self.encoder, self.tail = rows, encoder, tail
        self.samples = 0
        self.count: int | None = None
        self.extra_lookahead_seconds = rows.extra_lookahead_seconds

    @property
    def windows(self) -> int:
        """Frames encoded so far."""
        return self.rows.windows

    def frames_for(self, samples: int, source: str = "<speech>") -> int:
        """Frames an utterance of `samples` samples renders (AudioError when too short)."""
        return utterance_frames(self.encoder, samples, self.tail, source)

    def push(self, samples: np.ndarray) -> None:
        """Take more speech."""
        self.samples += len(samples)
        self.rows.push(samples)

    def finish(self) -> None:
        """The speech has ended: the silence after it is read too (AudioError when it is too short)."""
        if not self.tail:
            self.rows.finish()
            self.count = self.rows.count
            return
        after = run_on(self.encoder, self.samples)
        self.rows.push(np.zeros(after.silence, np.float32))
        self.rows.finish()
        self.count = after.frames

    def ready(self, frame: int) -> bool:
        """True when frame `frame`'s audio window is final."""
        return frame < self.count if self.count is not None else self.rows.ready(frame)

    def window(self, frame: int) -> np.ndarray:
        """The network audio input of frame `frame`."""
        return self.rows.window(frame)

    def release(self, before_frame: int) -> None:
        """Forget what no frame from `before_frame` on reads."""
        self.rows.release(before_frame)

    def state_bytes(self) -> int:
        """Memory held by the stream."""
        return self.rows.state_bytes()
