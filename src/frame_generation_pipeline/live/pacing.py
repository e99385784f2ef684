"""Pacing of live speech rendered slower than real time: the two policies (DELAY, DROP), the measure
of rendering speed they plan with (RenderRate), and the start delay of an utterance."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..models.ave_stream import LOOKAHEAD_SECONDS
from .slot import FPS

#: Policies for an utterance rendered slower than real time.
DELAY, DROP = "delay", "drop"

#: Seconds of slack a real-time session adds to every start delay, by default.
DEFAULT_MARGIN = 0.1
#: The most seconds known-length speech waits, beyond its encoding, a batch and the margin, to be
#: shown at full rate: where the machine is so slow that the full rate would make it wait longer
#: for its first frame, it renders at the session's slower rate instead (catch_up_wait).
MAX_CATCH_UP_SECONDS = 1.0
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

    Both policies wait for one batch and the margin. DROP (open speech, whose frames become
    renderable one per slot as it arrives) also waits for the lookahead (the speech after a frame
    that its window holds) and the rest of a batch's speech: (batch - 1) slots. DELAY (speech whose
    length is known: all of it is in when it starts, so no lookahead) is encoded whole before its
    first frame renders, so it waits for that encoding instead, and until the slower rendering can
    no longer catch up with playback: frame i is rendered by E + (i + 1) / r after the start and
    shown at delay + i / fps, for every i < frames. At half rate (`stride` 2) a batch spans twice
    the slots and each slot costs half a frame.
    """
    known = frames if policy == DELAY else None
    waiting = known * rate.seconds_per_window if known is not None else LOOKAHEAD_SECONDS + stride * (batch - 1) / FPS
    rate = replace(rate, seconds_per_frame=rate.seconds_per_frame / stride)
    base = waiting + rate.seconds_per_batch + margin
    if known is None or rate.frames_per_second >= FPS:
        return base
    catch_up = waiting + known * rate.seconds_per_frame - (known - 1) / FPS
    return max(base, catch_up + margin)


def catch_up_wait(frames: int, rate: RenderRate, margin: float, batch: int) -> float:
    """Seconds known-length speech of `frames` frames waits at full rate beyond its encoding, a batch
    and the margin: the time rendering slower than real time needs to keep ahead of playback."""
    unhurried = replace(rate, seconds_per_frame=0.0)
    return start_delay(DELAY, frames, rate, margin, batch) - start_delay(DELAY, frames, unhurried, margin, batch)
