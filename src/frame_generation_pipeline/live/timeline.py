"""The live timeline: slots of one frame and 1/fps of audio each, the clock they are due by, and the
two pacing policies for speech rendered slower than real time.

Slot k is due at anchor + k / fps. Idle slots show the template of schedule position k and carry
silence; speech slots show frame i of an utterance that starts at slot s (k = s + i) and carry its
samples [i * hop, (i + 1) * hop). Audio and video come from the same slots, so they cannot drift.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from ..contract import SAMPLE_RATE, get_mode
from .features import LOOKAHEAD_SECONDS

#: Live speech is ave (the only mode with an audio encoder): 25 frames per second.
FPS = get_mode("ave").fps
#: Audio samples per slot (640 at 16 kHz).
SLOT_SAMPLES = SAMPLE_RATE // FPS
#: Policies for an utterance rendered slower than real time.
DELAY, DROP = "delay", "drop"


class Clock(Protocol):
    """Where the session gets the time and waits (a real clock, or a fake one in tests)."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (no-op for zero or less)."""
        ...


class RealClock:
    """time.monotonic and time.sleep."""

    def now(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds` when positive."""
        if seconds > 0:
            time.sleep(seconds)


@dataclass(frozen=True)
class LiveFrame:
    """One slot of the timeline: what a viewer sees and hears for 1/fps seconds.

    Attributes:
        slot: index on the session's timeline; pts = slot / fps seconds.
        kind: "speech", "idle" (the template itself) or "dropped" (not rendered in time: keep
            showing the previous image).
        image: HxWx3 uint8 BGR, None for a dropped slot.
        audio: the slot's float32 samples at 16 kHz (SLOT_SAMPLES of them; silence when idle).
        utterance, frame: which utterance and which of its frames (None when idle).
        template: the template index shown (or that would have been, when dropped).
        repeated: a speech slot showing the image of the slot before (half rate: every other frame rendered).
    """

    slot: int
    kind: str
    image: np.ndarray | None
    audio: np.ndarray
    template: int
    utterance: int | None = None
    frame: int | None = None
    repeated: bool = False

    @property
    def pts(self) -> float:
        """Presentation time in seconds on the session's clock."""
        return self.slot / FPS


#: Seconds of slack a real-time session adds to every start delay, by default.
DEFAULT_MARGIN = 0.1
#: A server's default start margin: each visitor's media (the video encoder, the microphone's decoding)
#: take CPU that the plan made from the model's speed does not count. Measured at 1280x720 on a 2-core
#: EPYC with bf16, one visitor's microphone speech showed 75 of 96 frames with 0.1 s and 94 with 0.3 s.
SERVE_MARGIN = 0.3


@dataclass
class RenderRate:
    """A measure of live rendering work (exponential moving averages): network batches (in a turn at
    the model, not counting the wait for it), and the audio encoder's windows (one per feature row).
    Real-time sessions of one LiveModel share one (LiveModel.warm_up)."""

    seconds_per_frame: float = 0.0
    seconds_per_batch: float = 0.0
    seconds_per_window: float = 0.0
    weight: float = 0.3

    def _mix(self, old: float, new: float) -> float:
        return new if old == 0 else (1 - self.weight) * old + self.weight * new

    def add(self, seconds: float, frames: int) -> None:
        """Account one batch of `frames` that took `seconds`."""
        self.seconds_per_frame = self._mix(self.seconds_per_frame, seconds / max(frames, 1))
        self.seconds_per_batch = self._mix(self.seconds_per_batch, seconds)

    def add_encoding(self, seconds: float, windows: int) -> None:
        """Account `windows` audio encoder windows (and their mel frames) that took `seconds`."""
        self.seconds_per_window = self._mix(self.seconds_per_window, seconds / max(windows, 1))

    def shared_by(self, speakers: int) -> RenderRate:
        """What this measure becomes when the model (and the machine) is shared by `speakers`
        sessions taking turns: each step takes `speakers` times as long."""
        return replace(self, seconds_per_frame=self.seconds_per_frame * speakers,
                       seconds_per_batch=self.seconds_per_batch * speakers,
                       seconds_per_window=self.seconds_per_window * speakers)

    @property
    def frames_per_second(self) -> float:
        """Frames per second at the current estimate (infinite before any measurement)."""
        return 1 / self.seconds_per_frame if self.seconds_per_frame > 0 else float("inf")


def start_delay(policy: str, frames: int | None, rate: RenderRate, margin: float, batch: int = 1, stride: int = 1) -> float:
    """Seconds between an utterance's first sample and its first slot.

    Both policies wait for the lookahead and one batch. DROP (open speech, whose frames become
    renderable one per slot as it arrives) also waits for the rest of a batch's speech: (batch - 1)
    slots. DELAY (speech whose length is known) is encoded whole before its first frame renders, so
    it also waits for that encoding, and until the slower rendering can no longer catch up with
    playback: frame i is rendered by E + (i + 1) / r after the start and shown at delay + i / fps,
    for every i < frames. At half rate (`stride` 2) a batch spans twice the slots and each slot
    costs half a frame.
    """
    known = frames if policy == DELAY else None
    encoding = known * rate.seconds_per_window if known is not None else 0.0
    gathering = stride * (batch - 1) / FPS if known is None else 0.0
    rate = replace(rate, seconds_per_frame=rate.seconds_per_frame / stride)
    base = LOOKAHEAD_SECONDS + gathering + rate.seconds_per_batch + margin + encoding
    if known is None or rate.frames_per_second >= FPS:
        return base
    catch_up = encoding + known * rate.seconds_per_frame - (known - 1) / FPS
    return max(base, catch_up + margin)


@dataclass
class UtteranceReport:
    """What happened to one utterance: when it started, how it was paced, what was dropped; at half
    rate (`half_rate`) how many of its `frames` repeated the image before (`repeated`)."""

    utterance: int
    policy: str
    start_slot: int
    start_delay_s: float
    frames: int = 0
    dropped: int = 0
    first_frame_latency_s: float | None = None
    half_rate: bool = False
    repeated: int = 0


#: Utterance reports a session keeps (the latest ones): its state must not grow with its length.
KEPT_REPORTS = 100


@dataclass
class SessionStats:
    """Counts and timings of a session so far (reports of the latest KEPT_REPORTS utterances)."""

    slots: int = 0
    speech_frames: int = 0
    idle_frames: int = 0
    dropped_frames: int = 0
    repeated_frames: int = 0
    utterances: deque[UtteranceReport] = field(default_factory=lambda: deque(maxlen=KEPT_REPORTS))

    @property
    def first_frame_latency_s(self) -> float | None:
        """The first speech frame's latency of the earliest kept utterance that showed one (None before)."""
        return next((u.first_frame_latency_s for u in self.utterances if u.first_frame_latency_s is not None), None)

    def count(self, kind: str, repeated: bool = False) -> None:
        """Count one slot of `kind` ("speech", "idle" or "dropped"), `repeated` at half rate."""
        self.slots += 1
        self.repeated_frames += repeated
        if kind == "speech":
            self.speech_frames += 1
        elif kind == "idle":
            self.idle_frames += 1
        else:
            self.dropped_frames += 1
