"""FeatureStream: the ave feature rows of one utterance computed while its speech arrives, equal
to the offline rows.

Offline, an utterance of T mel frames has n = window_count(T) encoder windows e_0..e_{n-1} and
the feature rows [e_0, e_0, ..., e_{n-1}, e_{n-1}] (F = n + 2). Window k starts at mel frame
window_start(k); it can be encoded as soon as its 16 mel frames are final, which happens before
the end of the speech for every window but the last few (those the end moves back). So row j
(= e_{j-1}) is known once window j-1 is, and frame i, which reads rows i-8..i+7, can be rendered
once window i+6 is: 0.45 s of speech after frame i's own time (docs/live.md).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..audio.mel import HOP, MEL_WINDOW, N_FFT, N_MELS, LogMelStream, SpeechStages, check_long_enough, window_count, window_start
from ..contract import AUDIO_WINDOW, SAMPLE_RATE, get_mode

_HALF = AUDIO_WINDOW // 2
_AVE_SHAPE = get_mode("ave").audio_shape
#: The row after frame i's window that must be known before frame i renders: rows i-8..i+7.
ROWS_AFTER = _HALF - 1
#: Speech after frame 0's time that frame 0 needs (docs/live.md): encoder window 6 complete, whose
#: last mel frame t is final once sample 200 t + 399 is in. 0.45 s (frame i: 0.44-0.46 s).
LOOKAHEAD_SECONDS = ((window_start(ROWS_AFTER - 1) + MEL_WINDOW - 1) * HOP + N_FFT // 2) / SAMPLE_RATE


class WindowEncoder(Protocol):
    """What the stream needs of the ave encoder: mel windows -> encodings (models.audio_encoder)."""

    def encode_windows(self, windows: np.ndarray) -> np.ndarray:
        """(n, 1, 80, 16) mel windows -> (n, 512) float32 encodings."""
        ...


class FeatureStream:
    """The feature rows of one utterance as its 16 kHz samples arrive (push), then end (finish).

    Only what later frames still need is kept: the mel frames from the next window's start and
    the encodings from the oldest frame not yet rendered.
    """

    #: Lookahead beyond the session's (LOOKAHEAD_SECONDS): none, it is this stream's.
    extra_lookahead_seconds = 0.0

    def __init__(self, encoder: WindowEncoder, source: str = "<stream>") -> None:
        self.encoder = encoder
        self.source = source
        self._mel = LogMelStream()
        self._mel_rows = np.empty((0, N_MELS))
        self._mel_first = 0  # absolute index of _mel_rows[0]
        self._encodings = np.empty((0, 512), np.float32)
        self._encoded_first = 0  # window index of _encodings[0]
        self.windows = 0  # windows encoded so far
        self.count: int | None = None  # feature rows F, once the speech has ended

    def push(self, samples: np.ndarray) -> None:
        """Take more speech (16 kHz mono float32) and encode every window that became final."""
        self._add_mel(self._mel.push(samples))
        final = self._mel.frames
        while window_start(self.windows) + MEL_WINDOW <= final:
            self._encode(window_start(self.windows))

    def finish(self) -> None:
        """The speech has ended: encode the last windows; AudioError if it is shorter than 0.2 s."""
        self._add_mel(self._mel.finish())
        total = self._mel.frames
        check_long_enough(total, self.source)
        for _ in range(self.windows, window_count(total)):
            self._encode(min(window_start(self.windows), total - MEL_WINDOW))
        self.count = self.windows + 2

    def _add_mel(self, rows: np.ndarray) -> None:
        self._mel_rows = np.concatenate([self._mel_rows, rows])

    def _encode(self, start: int) -> None:
        offset = start - self._mel_first
        window = self._mel_rows[offset : offset + MEL_WINDOW].T.astype(np.float32)[None, None]
        self._encodings = np.concatenate([self._encodings, self.encoder.encode_windows(window)])
        self.windows += 1
        # Later windows start at or after the next one's start, and the end never moves one back
        # past the last 16 frames: older mel frames are not needed again.
        keep = min(window_start(self.windows), self._mel.frames - MEL_WINDOW) - self._mel_first
        if keep > 0:
            self._mel_rows = self._mel_rows[keep:]
            self._mel_first += keep

    def rows_known(self) -> int:
        """How many leading feature rows are final: e_0 twice then e_1.. as windows are encoded."""
        if self.count is not None:
            return self.count
        return self.windows + 1 if self.windows else 0

    def ready(self, frame: int) -> bool:
        """True when frame `frame`'s audio window (rows frame-8..frame+7) is final."""
        if self.count is not None:
            return frame < self.count
        return frame + ROWS_AFTER < self.rows_known()

    def _row(self, j: int) -> np.ndarray:
        window = SpeechStages.window_of_row(j, self.windows)  # rows of ready frames never pass the known ones
        return np.zeros(512, np.float32) if window < 0 else self._encodings[window - self._encoded_first]

    def window(self, frame: int) -> np.ndarray:
        """The network audio input of frame `frame`: rows frame-8..frame+7 as (32, 16, 16) float32."""
        rows = np.stack([self._row(j) for j in range(frame - _HALF, frame + _HALF)])
        return rows.reshape(_AVE_SHAPE)

    def release(self, before_frame: int) -> None:
        """Forget the encodings no frame from `before_frame` on reads (rows < before_frame - 8)."""
        drop = min(before_frame - _HALF - 1, self.windows - 1) - self._encoded_first
        if drop > 0:
            self._encodings = self._encodings[drop:]
            self._encoded_first += drop

    def state_bytes(self) -> int:
        """Memory held by the stream's arrays (bounded: it does not grow with the utterance)."""
        return self._mel_rows.nbytes + self._encodings.nbytes + self._mel.buffered_bytes()
