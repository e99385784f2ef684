"""What a live session reports: per utterance (UtteranceReport) and in all (SessionStats)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class UtteranceReport:
    """What happened to one utterance: when it started, how it was paced, what was dropped; below full
    rate (`half_rate`: every `stride`-th frame rendered, 2 at half rate, 3 at a third) how many of its
    `frames` repeated the image before (`repeated`), and from which frame on (`half_rate_from`: 0 when
    it started so, later when the machine slowed down meanwhile). `first_frame_latency_s` runs from the
    speech's arrival to its first shown frame's slot (in a simulation, to when that frame was rendered)."""

    utterance: int
    policy: str
    start_slot: int
    start_delay_s: float
    frames: int = 0
    dropped: int = 0
    first_frame_latency_s: float | None = None
    half_rate: bool = False
    repeated: int = 0
    half_rate_from: int | None = None
    stride: int = 1


#: Utterance reports a session keeps (the latest ones): its state must not grow with its length.
KEPT_REPORTS = 100


@dataclass
class SessionStats:
    """Counts and timings of a session so far (reports of the latest KEPT_REPORTS utterances); of the
    idle slots, `idle_rendered` showed their template's rest frame and `idle_raw` the template as it is."""

    slots: int = 0
    speech_frames: int = 0
    idle_frames: int = 0
    dropped_frames: int = 0
    repeated_frames: int = 0
    idle_rendered: int = 0
    idle_raw: int = 0
    utterances: deque[UtteranceReport] = field(default_factory=lambda: deque(maxlen=KEPT_REPORTS))

    @property
    def first_frame_latency_s(self) -> float | None:
        """The first speech frame's latency of the earliest kept utterance that showed one (None before)."""
        return next((u.first_frame_latency_s for u in self.utterances if u.first_frame_latency_s is not None), None)

    def count(self, kind: str, repeated: bool = False, raw: bool = False) -> None:
        """Count one slot of `kind` ("speech", "idle" or "dropped"), `repeated` at half rate, `raw` an
        idle slot showing its template as it is."""
        self.slots += 1
        self.repeated_frames += repeated
        if kind == "speech":
            self.speech_frames += 1
        elif kind == "idle":
            self.idle_frames += 1
            self.idle_raw += raw
            self.idle_rendered += not raw
        else:
            self.dropped_frames += 1
