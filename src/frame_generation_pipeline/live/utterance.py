"""One utterance of a live session: its incoming speech, features, rendered frames and slot audio."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..contract import SAMPLE_RATE
from ..errors import AudioError, StreamError
from ..models.silence import RunningOn
from .screen import INT16_SCALE
from .slot import SLOT_SAMPLES, LiveFrame
from .stats import UtteranceReport

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
        return array.astype(np.float32) / np.float32(INT16_SCALE)
    if array.dtype != np.float32:
        raise StreamError(f"expected float32 samples in [-1, 1] or int16, got {array.dtype}")
    if not np.isfinite(array).all():
        raise StreamError(f"samples hold NaN or infinite values (first at {int(np.argmin(np.isfinite(array)))})")
    return array


class Intake(NamedTuple):
    """What one `Utterance.ingest` took in: whether anything (speech or its end), and how many encoder windows."""

    taken: bool
    windows: int


class Utterance:
    """Speech in (producers), frames rendered ahead (the render thread), slots out (the consumer).

    Its state is its own: read and changed through its methods only, under its one lock (the
    features' heavy work, done by the render thread alone, runs outside it).
    """

    def __init__(self, number: int, policy: str, arrived: float, features: RunningOn) -> None:
        self._number, self._policy, self._arrived, self._features = number, policy, arrived, features
        self._lock = threading.Lock()
        self._incoming: list[np.ndarray] = []
        self._audio = np.empty(0, np.float32)
        self._audio_first = 0
        self._samples = 0
        self._ended = False
        self._end_ingested = False
        self._too_short = False  # its speech ended too short to render: no frames
        self._start_slot: int | None = None
        self._report: UtteranceReport | None = None
        self._next_render = 0
        #: 1: every frame rendered; n > 1: every n-th one, each image shown in its slot and the n - 1 after.
        self._stride = 1
        self._rendered: dict[int, tuple[np.ndarray, float]] = {}  # frame -> (320x320 pixels, clock time done)
        self._composed: tuple[np.ndarray, np.ndarray] | None = None  # the last pixels pasted and their image

    @property
    def number(self) -> int:
        """The utterance's number in its session (from 0, in opening order)."""
        return self._number

    @property
    def policy(self) -> str:
        """DELAY (known length) or DROP (open speech)."""
        return self._policy

    @property
    def arrived(self) -> float:
        """Clock time its first sample arrived (in a simulation, its turn once placed)."""
        return self._arrived

    @property
    def start_slot(self) -> int | None:
        """The slot of its first frame, once placed."""
        return self._start_slot

    @property
    def stride(self) -> int:
        """1: every frame is rendered; 2: every other one (half rate); 3: every third."""
        return self._stride

    @property
    def extra_lookahead_seconds(self) -> float:
        """Speech its features wait for beyond the session's lookahead."""
        return self._features.extra_lookahead_seconds

    # --- producers ----------------------------------------------------------------------------

    def add(self, samples: np.ndarray) -> None:
        """Take speech from a producer."""
        with self._lock:
            self._incoming.append(samples)
            self._audio = np.concatenate([self._audio, samples])
            self._samples += len(samples)

    def end(self) -> None:
        """No more speech will come."""
        with self._lock:
            self._ended = True

    def more_audio_pending(self) -> bool:
        """True when pushed speech (or its end) is waiting to be ingested."""
        with self._lock:
            return bool(self._incoming) or (self._ended and not self._end_ingested)

    def known_frames(self) -> int | None:
        """Frames of the utterance once its length is known (it has ended), its run into silence included, else None."""
        with self._lock:
            if not self._ended:
                return None
        try:
            return self._features.frames_for(self._samples, f"utterance {self._number}")
        except AudioError:
            return 0

    # --- placing ------------------------------------------------------------------------------

    def set_stride(self, stride: int) -> None:
        """Render every `stride`-th frame, chosen before the utterance starts."""
        with self._lock:
            assert self._start_slot is None, "the stride is chosen before the start"
            self._stride = stride

    def start(self, slot: int, delay: float, turn: float | None = None) -> UtteranceReport:
        """Place the utterance's first frame at `slot`, `delay` seconds after its first sample (a
        simulation counts its latency from its `turn` instead, where that is later); its report."""
        with self._lock:
            self._arrived = max(self._arrived, turn) if turn is not None else self._arrived
            self._start_slot = slot
            slower = self._stride > 1
            self._report = UtteranceReport(self._number, self._policy, slot, delay, half_rate=slower,
                                           half_rate_from=0 if slower else None, stride=self._stride)
            return self._report

    def slow_down(self, stride: int) -> bool:
        """Render every `stride`-th frame from the next one on (the render thread, between batches):
        True when that is slower than its rate until now."""
        with self._lock:
            if stride <= self._stride or self._report is None:
                return False
            self._stride = self._report.stride = stride
            if self._report.half_rate_from is None:
                self._report.half_rate, self._report.half_rate_from = True, self._next_render
            return True

    def end_slot(self) -> int | None:
        """The slot after the utterance's last, once its start and length are known."""
        frames = self.frames()
        if self._start_slot is None or frames is None:
            return None
        return self._start_slot + frames

    # --- the render thread ----------------------------------------------------------------------

    def ingest(self) -> Intake:
        """Feed the features what producers pushed (mel and encoder work happens here)."""
        with self._lock:
            chunks, self._incoming = self._incoming, []
            finish = self._ended and not self._end_ingested
            self._end_ingested = self._end_ingested or finish
        windows = self._features.windows
        for chunk in chunks:
            self._features.push(chunk)
        if finish:
            try:
                self._features.finish()
            except AudioError as exc:
                logger.warning("utterance %d skipped: %s", self._number, exc.problem)
                self._too_short = True
        return Intake(bool(chunks) or finish, self._features.windows - windows)

    def frames(self) -> int | None:
        """Frames of the utterance once its speech is ingested to its end (0: too short), else None."""
        return 0 if self._too_short else self._features.count

    def _frame_limit(self) -> int:
        """Frames that exist: all of them once the speech has ended, else no limit yet."""
        frames = self.frames()
        return frames if frames is not None else 1 << 62

    def _ready(self, frame: int) -> bool:
        return frame < self._frame_limit() and self._features.ready(frame)

    def has_frames_to_render(self) -> bool:
        """True while frames are left to render (or speech is still coming)."""
        with self._lock:
            return self._next_render < self._frame_limit()

    def next_ready(self) -> bool:
        """True when the next frame to render exists and its audio window is final."""
        with self._lock:
            return self._ready(self._next_render)

    def ready_ahead(self, count: int) -> int:
        """How many of the next `count` frames to render (at its stride) have their audio window final."""
        with self._lock:
            return sum(self._ready(self._next_render + i * self._stride) for i in range(count))

    def next_slot(self) -> int:
        """The slot of the next frame to render."""
        with self._lock:
            assert self._start_slot is not None  # placed before it renders
            return self._start_slot + self._next_render

    def skip_late(self, late: Callable[[int], bool]) -> bool:
        """Pass over the frames to render while `late(slot)` says the next one's slot cannot be met: any?"""
        first = self._next_render
        while self.has_frames_to_render() and late(self.next_slot()):
            with self._lock:
                self._next_render += self._stride
        return self._next_render != first

    def next_batch(self, size: int) -> tuple[list[int], np.ndarray]:
        """Take up to `size` next frames to render whose audio is final: their indices and network
        audio inputs; the features no later frame reads are let go."""
        frames: list[int] = []
        with self._lock:
            while len(frames) < size and self._ready(self._next_render):
                frames.append(self._next_render)
                self._next_render += self._stride
        audio = np.stack([self._features.window(frame) for frame in frames])
        self._features.release(min(frames))
        return frames, audio

    def record(self, frame: int, pixels: np.ndarray, when: float) -> None:
        """Keep frame `frame`'s generated 320x320 pixels, done at clock time `when` (below full rate,
        for the slots of the frames it stands for too)."""
        with self._lock:
            self._rendered[frame] = (pixels, when)
            frames = self.frames() if self._stride > 1 else None
            for shown in range(frame + 1, frame + self._stride if frames is None else min(frame + self._stride, frames)):
                self._rendered[shown] = (pixels, when)

    # --- the consumer -------------------------------------------------------------------------

    def done(self, frame: int) -> bool:
        """True when `frame` is past the utterance's last frame (known once the speech has ended)."""
        frames = self.frames()
        count = frames if frames is not None else self.known_frames()
        return count is not None and frame >= count

    def has_frame(self, frame: int) -> bool:
        """True when `frame` was rendered or passed over (so its slot can be decided)."""
        with self._lock:
            return frame in self._rendered or frame < self._next_render

    def take(self, frame: int, slot: int, template: int, due: float,
             compose: Callable[[int, np.ndarray], np.ndarray]) -> LiveFrame:
        """The slot of `frame`: its image if it was done by `due` (else a dropped slot), and its samples.
        Below full rate the slots after a rendered frame show the same image (`repeated`).

        `compose(template, pixels)` pastes the generated pixels into the template frame.
        """
        report = self._report
        assert report is not None  # start() made it
        with self._lock:
            pixels, when = self._rendered.pop(frame, (None, math.inf))
        repeated = pixels is not None and self._composed is not None and pixels is self._composed[0]
        image = None
        if pixels is not None and when <= due:
            image = self._composed[1] if repeated and self._composed is not None else compose(template, pixels)
            self._composed = (pixels, image)
        if image is None:
            report.dropped += 1
        else:
            report.frames += 1
            report.repeated += repeated
            if report.first_frame_latency_s is None:  # to its slot: when it is seen (a simulation has no slot times)
                report.first_frame_latency_s = (due if math.isfinite(due) else when) - self._arrived
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
        return pending + self._features.state_bytes() + rendered
