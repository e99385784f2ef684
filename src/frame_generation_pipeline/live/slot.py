"""One slot of the live timeline: its length (1/fps of video, SLOT_SAMPLES of audio), what it carries
(LiveFrame), and the clock it is due by."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..contract import SAMPLE_RATE, get_mode

#: Slots per second: 25, the frame rate of both modes that run live (ave and hubert).
FPS = get_mode("ave").fps
#: Audio samples per slot (640 at 16 kHz).
SLOT_SAMPLES = SAMPLE_RATE // FPS
#: What an idle slot shows (`idle=`): its template's rest frame (the network's render of silence,
#: live/rest.py), or the template as it is.
RENDERED, TEMPLATE = "rendered", "template"
IDLE_CHOICES = (RENDERED, TEMPLATE)


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
        kind: "speech", "idle" (the avatar at rest) or "dropped" (not rendered in time: keep
            showing the previous image).
        image: HxWx3 uint8 BGR, None for a dropped slot.
        audio: the slot's float32 samples at 16 kHz (SLOT_SAMPLES of them; silence when idle).
        utterance, frame: which utterance and which of its frames (None when idle).
        template: the template index shown (or that would have been, when dropped).
        repeated: a speech slot showing the image of the slot before (half rate: every other frame rendered).
        raw: an idle slot showing its template as it is (not its rest frame: `idle="template"`, or
            a real-time session's cold start while the rest frame is being computed).
    """

    slot: int
    kind: str
    image: np.ndarray | None
    audio: np.ndarray
    template: int
    utterance: int | None = None
    frame: int | None = None
    repeated: bool = False
    raw: bool = False

    @property
    def pts(self) -> float:
        """Presentation time in seconds on the session's clock."""
        return self.slot / FPS
