"""Feature rows of one utterance computed while its speech arrives: ave rows equal to the offline
rows, and hubert rows (HubertStream: whole for known-length speech, in windows for open speech).

Offline, an utterance of T mel frames has n = window_count(T) encoder windows e_0..e_{n-1} and
the feature rows [e_0, e_0, ..., e_{n-1}, e_{n-1}] (F = n + 2). Window k starts at mel frame
window_start(k); it can be encoded as soon as its 16 mel frames are final, which happens before
the end of the speech for every window but the last few (those the end moves back). So row j
(= e_{j-1}) is known once window j-1 is, and frame i, which reads rows i-8..i+7, can be rendered
once window i+6 is: 0.45 s of speech after frame i's own time (docs/live.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from ..audio.mel import HOP, MEL_WINDOW, N_FFT, N_MELS, LogMelStream, SpeechStages, check_long_enough, window_count, window_start
from ..checks import require_int
from ..contract import AUDIO_WINDOW, SAMPLE_RATE, get_mode
from ..errors import AudioError
from ..models.hubert import HIDDEN, KERNEL, ROWS_PER_FRAME, STRIDE, expected_rows

if TYPE_CHECKING:  # the CLI reads live constants without loading torch
    from ..models.audio_encoder import AudioEncoder
    from ..models.hubert import HubertEncoder

_HALF = AUDIO_WINDOW // 2
_AVE_SHAPE = get_mode("ave").audio_shape
_HUBERT_SHAPE = get_mode("hubert").audio_shape
#: The row after frame i's window that must be known before frame i renders: rows i-8..i+7.
ROWS_AFTER = _HALF - 1
#: Speech after frame 0's time that frame 0 needs (docs/live.md): encoder window 6 complete, whose
#: last mel frame t is final once sample 200 t + 399 is in. 0.45 s (frame i: 0.44-0.46 s).
LOOKAHEAD_SECONDS = ((window_start(ROWS_AFTER - 1) + MEL_WINDOW - 1) * HOP + N_FFT // 2) / SAMPLE_RATE


class FeatureStream:
    """The feature rows of one utterance as its 16 kHz samples arrive (push), then end (finish).

    Only what later frames still need is kept: the mel frames from the next window's start and
    the encodings from the oldest frame not yet rendered.
    """

    #: Lookahead beyond the session's (LOOKAHEAD_SECONDS): none, it is this stream's.
    extra_lookahead_seconds = 0.0

    def __init__(self, encoder: AudioEncoder, source: str = "<stream>") -> None:
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


@dataclass(frozen=True)
class HubertWindows:
    """How open speech is encoded live with hubert (rows: 50 per second): each forward pass makes
    `window` new rows, reading `context` rows of speech before them and `lookahead` rows after."""

    window: int = 25
    context: int = 50
    lookahead: int = 25

    def __post_init__(self) -> None:
        for name in ("window", "context", "lookahead"):
            require_int(getattr(self, name), name, 1 if name == "window" else 0)

    @property
    def lookahead_seconds(self) -> float:
        """Speech after a frame's time that it waits for, at worst: rows through its window's last
        (16 rows on), then the rest of that row's window and the lookahead (docs/live.md)."""
        rows = _HALF * ROWS_PER_FRAME + self.window - 1 + self.lookahead
        return (rows * STRIDE + KERNEL - STRIDE) / SAMPLE_RATE


class HubertStream:
    """The hubert feature rows of one utterance as its 16 kHz samples arrive, with FeatureStream's
    interface. A known-length utterance is encoded whole when it ends, as upstream encodes a file
    (its frames equal the offline ones); open speech is encoded in windows (HubertWindows) as
    soon as their lookahead has arrived, within the measured bound of the offline rows."""

    def __init__(self, encoder: HubertEncoder, known_length: bool, windows: HubertWindows | None = None,
                 source: str = "<stream>") -> None:
        self.encoder, self.known_length, self.settings, self.source = encoder, known_length, windows or HubertWindows(), source
        self._speech = np.empty(0, np.float32)
        self._speech_first = 0  # sample index of _speech[0]
        self._total = 0
        self._hidden = np.empty((0, HIDDEN), np.float32)
        self._hidden_first = 0  # row index of _hidden[0]
        self.rows = 0  # hidden rows computed so far
        self.count: int | None = None
        self.extra_lookahead_seconds = 0.0  # beyond the ave path's, which the session's start delay holds
        if not known_length:

            self.extra_lookahead_seconds = max(0.0, self.settings.lookahead_seconds - LOOKAHEAD_SECONDS)

    @property
    def windows(self) -> int:
        """Frames encoded so far (what the session times the encoder by)."""
        return self.rows // ROWS_PER_FRAME

    def push(self, samples: np.ndarray) -> None:
        """Take more speech (16 kHz mono float32); open speech encodes every window now complete."""
        self._speech = np.concatenate([self._speech, np.asarray(samples, np.float32)])
        self._total += len(samples)
        if not self.known_length:
            self._encode_windows(final=False)

    def finish(self) -> None:
        """The speech has ended: encode the rest; AudioError if it holds less than one frame."""
        total = expected_rows(self._total)
        if total < ROWS_PER_FRAME:
            raise AudioError(self.source, f"too short for hubert features: {self._total} samples")
        if self.known_length:
            self._hidden = self.encoder.stages(self._speech, self.source).hidden
            self.rows = len(self._hidden)
        else:
            self._encode_windows(final=True)
        self.count = total // ROWS_PER_FRAME

    def _encode_windows(self, final: bool) -> None:
        available = expected_rows(self._total)
        settings = self.settings
        while self.rows < available:
            end = self.rows + settings.window
            if not final and end + settings.lookahead > available:
                return
            left, right = max(0, self.rows - settings.context), min(end + settings.lookahead, available)
            begin = left * STRIDE - self._speech_first
            # the last window reads the speech to its end, as the offline normalisation does
            stop = len(self._speech) if final and right == available else begin + (right - left) * STRIDE + KERNEL - STRIDE
            span = self._speech[begin:stop]
            hidden = self.encoder.encode(self.encoder.normalise(span))
            end = min(end, available)
            self._hidden = np.concatenate([self._hidden, hidden[self.rows - left : end - left]])
            self.rows = end
            keep = max(0, self.rows - settings.context) * STRIDE - self._speech_first
            self._speech, self._speech_first = self._speech[keep:], self._speech_first + keep

    def ready(self, frame: int) -> bool:
        """True when frame `frame`'s audio window (frames frame-8..frame+7) is final."""
        if self.count is not None:
            return frame < self.count
        return self.rows >= (frame + _HALF) * ROWS_PER_FRAME

    def window(self, frame: int) -> np.ndarray:
        """The network audio input of frame `frame`: frames frame-8..frame+7 as (32, 32, 32) float32."""
        rows = np.zeros((AUDIO_WINDOW, ROWS_PER_FRAME * HIDDEN), np.float32)
        for k, j in enumerate(range(frame - _HALF, frame + _HALF)):
            if j >= 0 and (self.count is None or j < self.count):
                first = j * ROWS_PER_FRAME - self._hidden_first
                rows[k] = self._hidden[first : first + ROWS_PER_FRAME].reshape(-1)
        return rows.reshape(_HUBERT_SHAPE)

    def release(self, before_frame: int) -> None:
        """Forget the rows no frame from `before_frame` on reads (frames < before_frame - 8)."""
        drop = max(0, (before_frame - _HALF) * ROWS_PER_FRAME) - self._hidden_first
        if drop > 0:
            self._hidden, self._hidden_first = self._hidden[drop:], self._hidden_first + drop

    def held_rows(self) -> np.ndarray:
        """The hidden rows still held, (rows, 1024): all of them until `release` forgets some."""
        return self._hidden

    def state_bytes(self) -> int:
        """Memory held by the stream's arrays (open speech: bounded by the context and the lookahead)."""
        return self._speech.nbytes + self._hidden.nbytes


def stream_for(encoder: AudioEncoder | HubertEncoder, known_length: bool,
               hubert: HubertWindows | None = None) -> FeatureStream | HubertStream:
    """The feature stream of one utterance for the session's audio model: FeatureStream for the
    ave encoder, HubertStream for a hubert model (whole when the length is known)."""
    if hasattr(encoder, "encode_windows"):  # what an ave encoder has and a hubert model has not
        return FeatureStream(cast("AudioEncoder", encoder))
    return HubertStream(encoder, known_length, hubert)


def encoder_mode(encoder: AudioEncoder | HubertEncoder) -> str:
    """The mode of the features the audio model computes."""
    return "ave" if hasattr(encoder, "encode_windows") else "hubert"


def warm_up(encoder: AudioEncoder | HubertEncoder) -> int:
    """Encode one unit of silence (an ave window, or a second for hubert); the frames it stands for."""
    if hasattr(encoder, "encode_windows"):
        encoder.encode_windows(np.zeros((1, 1, N_MELS, MEL_WINDOW), np.float32))
        return 1
    encoder.encode(np.zeros(SAMPLE_RATE, np.float32))
    return SAMPLE_RATE // STRIDE // ROWS_PER_FRAME
