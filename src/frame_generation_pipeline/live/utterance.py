"""One utterance of a live session: its incoming speech, features, rendered frames and slot audio."""

from __future__ import annotations

import logging
import math
import threading

import numpy as np

from ..audio.mel import frames_for_samples
from ..contract import SAMPLE_RATE
from ..errors import AudioError, StreamError
from .features import FeatureRows
from .timeline import SLOT_SAMPLES, LiveFrame, UtteranceReport

logger = logging.getLogger(__name__)


def check_samples(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Pushed audio as 1-D float32; StreamError for another rate, shape or dtype, or NaN/inf values."""
    if sample_rate != SAMPLE_RATE:
        raise StreamError(f"expected {SAMPLE_RATE} Hz samples, got {sample_rate} Hz: resample before pushing")
    array = np.asarray(samples)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise StreamError(f"expected mono samples (a 1-D array), got shape {array.shape}")
    if array.dtype == np.int16:
        return array.astype(np.float32) / np.float32(32768)
    if array.dtype != np.float32:
        raise StreamError(f"expected float32 samples in [-1, 1] or int16, got {array.dtype}")
    if not np.isfinite(array).all():
        raise StreamError(f"samples hold NaN or infinite values (first at {int(np.argmin(np.isfinite(array)))})")
    return array


class Utterance:
    """Speech in (from producers, under its own lock), frames and slot audio out (to the consumer)."""

    def __init__(self, number: int, policy: str, arrived: float, features: FeatureRows) -> None:
        self.number, self.policy, self.arrived, self.features = number, policy, arrived, features
        self._lock = threading.Lock()
        self._incoming: list[np.ndarray] = []
        self._audio = np.empty(0, np.float32)
        self._audio_first = 0
        self.samples = 0
        self.ended = False
        self._end_ingested = False
        self.start_slot: int | None = None
        self.report: UtteranceReport | None = None
        self.next_render = 0
        #: 1: every frame rendered; 2: every other one, each image shown in its slot and the next (half rate).
        self.stride = 1
        self._rendered: dict[int, tuple[np.ndarray, float]] = {}  # frame -> (320x320 pixels, clock time done)
        self._composed: tuple[np.ndarray, np.ndarray] | None = None  # the last pixels pasted and their image

    def add(self, samples: np.ndarray) -> None:
        """Take speech from a producer."""
        with self._lock:
            self._incoming.append(samples)
            self._audio = np.concatenate([self._audio, samples])
            self.samples += len(samples)

    def end(self) -> None:
        """No more speech will come."""
        with self._lock:
            self.ended = True

    def known_frames(self) -> int | None:
        """Frames of the utterance when its length is known (it has ended), else None."""
        with self._lock:
            if not self.ended:
                return None
        try:
            return frames_for_samples(self.samples, f"utterance {self.number}")
        except AudioError:
            return 0

    def start(self, slot: int, delay: float) -> None:
        """Place the utterance's first frame at `slot`, `delay` seconds after its first sample."""
        self.start_slot = slot
        self.report = UtteranceReport(self.number, self.policy, slot, delay, half_rate=self.stride == 2)

    def ingest(self) -> bool:
        """Feed the features what producers pushed (mel and encoder work happens here); True if any."""
        with self._lock:
            chunks, self._incoming = self._incoming, []
            finish = self.ended and not self._end_ingested
            self._end_ingested = self._end_ingested or finish
        for chunk in chunks:
            self.features.push(chunk)
        if finish:
            try:
                self.features.finish()
            except AudioError as exc:
                logger.warning("utterance %d skipped: %s", self.number, exc.problem)
                self.features.count = 0
        return bool(chunks) or finish

    def more_audio_pending(self) -> bool:
        """True when pushed speech (or its end) is waiting to be ingested."""
        with self._lock:
            return bool(self._incoming) or (self.ended and not self._end_ingested)

    def frame_limit(self) -> int:
        """Frames that exist: all of them once the speech has ended, else no limit yet."""
        return self.features.count if self.features.count is not None else 1 << 62

    def done(self, frame: int) -> bool:
        """True when `frame` is past the utterance's last frame (known once the speech has ended)."""
        count = self.features.count if self.features.count is not None else self.known_frames()
        return count is not None and frame >= count

    def end_slot(self) -> int | None:
        """The slot after the utterance's last, once its start and length are known."""
        if self.start_slot is None or self.features.count is None:
            return None
        return self.start_slot + self.features.count

    def finished(self, frame: int, pixels: np.ndarray, when: float) -> None:
        """Keep frame `frame`'s generated 320x320 pixels, done at clock time `when` (the render thread; at
        half rate, for the next frame's slot too)."""
        with self._lock:
            self._rendered[frame] = (pixels, when)
            if self.stride == 2 and (self.features.count is None or frame + 1 < self.features.count):
                self._rendered[frame + 1] = (pixels, when)

    def has_frame(self, frame: int) -> bool:
        """True when `frame` was rendered or passed over (so its slot can be decided)."""
        return frame in self._rendered or frame < self.next_render

    def take(self, frame: int, slot: int, template: int, due: float, compose) -> LiveFrame:
        """The slot of `frame`: its image if it was done by `due` (else a dropped slot), and its samples.
        At half rate the slot after a rendered frame shows the same image (`repeated`).

        `compose(template, pixels)` pastes the generated pixels into the template frame.
        """
        assert self.report is not None  # start() made it
        with self._lock:
            pixels, when = self._rendered.pop(frame, (None, math.inf))
        repeated = pixels is not None and self._composed is not None and pixels is self._composed[0]
        image = None
        if pixels is not None and when <= due:
            image = self._composed[1] if repeated and self._composed is not None else compose(template, pixels)
            self._composed = (pixels, image)
        if image is None:
            self.report.dropped += 1
        else:
            self.report.frames += 1
            self.report.repeated += repeated
            if self.report.first_frame_latency_s is None:
                self.report.first_frame_latency_s = when - self.arrived
        with self._lock:
            begin = frame * SLOT_SAMPLES - self._audio_first
            audio = self._audio[max(begin, 0) : begin + SLOT_SAMPLES]
            self._audio = self._audio[max(begin + SLOT_SAMPLES, 0) :]
            self._audio_first += max(begin + SLOT_SAMPLES, 0)
        audio = np.pad(audio, (0, SLOT_SAMPLES - len(audio)))
        return LiveFrame(slot, "speech" if image is not None else "dropped", image, audio, template, self.number, frame,
                         repeated and image is not None)

    def state_bytes(self) -> int:
        """Memory held: speech not yet played or ingested, features, frames rendered ahead."""
        with self._lock:  # the render thread adds frames and the consumer takes them meanwhile
            pending = self._audio.nbytes + sum(chunk.nbytes for chunk in self._incoming)
            rendered = sum(pixels.nbytes for pixels, _ in self._rendered.values())
        return pending + self.features.state_bytes() + rendered
