"""The rendering of one live session: an utterance's pushed speech into features, its frames rendered
ahead of their slots on the shared model, frames that cannot be on time skipped, its speed measured
(in its turns at the model) and expected (that speed shared by the sessions speaking now)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from ..render.arithmetic import to_pixels
from .pacing import DROP, RenderRate
from .scheduler import Seat
from .shared import LiveModel
from .slot import FPS, Clock
from .utterance import Utterance

logger = logging.getLogger(__name__)

#: A real-time session renders every slot where its expected speed (a frame's network share and its
#: audio encoder window) is at least this many times real time; below, every other slot (half rate:
#: 12.5 frames/s, each image shown twice, the lips on time) rather than dropping at random, and
#: below half of it every third slot (8.3 frames/s).
FULL_RATE_HEADROOM = 1.1
#: The slowest rate: every MAX_STRIDE-th slot rendered; frames that cannot keep even that are dropped.
MAX_STRIDE = 3
_RATES = {1: "full rate", 2: "half rate", 3: "a third of the rate"}
_EVERY = {2: "every other slot", 3: "every third slot"}
_SHOWN = {2: "twice", 3: "three times"}


class Renderer:
    """Renders utterances of one session in batches of `batch_size` and keeps the session's RenderRate.

    Args:
        live: the shared model, encoder and templates.
        template_of: the template of a timeline slot.
        clock: the session's clock (batches and encoder windows are timed on it).
        batch_size: speech frames per network call.
        rate: the measure it updates and plans with (its LiveModel's shared one, or an empty one).
        seat: the session's place at the model's scheduler (its turns, and how many share the model).
        half_rate: whether `stride` may choose a slower rate than every slot.
    """

    def __init__(self, live: LiveModel, template_of: Callable[[int], int], clock: Clock, batch_size: int,
                 rate: RenderRate, seat: Seat, half_rate: bool = True) -> None:
        self.live, self.template_of, self.clock, self.batch_size, self.rate = live, template_of, clock, batch_size, rate
        self.seat, self.half_rate = seat, half_rate
        self._rates_said: set[int] = set()

    def expected(self) -> RenderRate:
        """The session's measured speed as it is now: shared with the other sessions speaking."""
        return self.rate.shared_by(self.seat.speakers())

    def stride(self) -> int:
        """Every how many slots a frame is rendered: the smallest stride (1, every slot, up to
        MAX_STRIDE) whose slots the expected speed fills with FULL_RATE_HEADROOM to spare (1 where half
        rate is off); a session's first choice of each slower rate is said once."""
        speakers = self.seat.speakers()
        expected = self.rate.shared_by(speakers)
        per_slot = expected.seconds_per_frame + expected.seconds_per_window
        stride = min(MAX_STRIDE, max(1, math.ceil(per_slot * FPS * FULL_RATE_HEADROOM - 1e-9)))
        if not self.half_rate or stride == 1:
            return 1
        if stride not in self._rates_said:
            self._rates_said.add(stride)
            self._say_rate(stride, expected, speakers)
        return stride

    def _say_rate(self, stride: int, expected: RenderRate, speakers: int) -> None:
        """The one line that says why: the measured time of a frame (its network share, from batches
        of batch_size, and its audio encoder window) against what the rate above allows."""
        network, window = round(1000 * expected.seconds_per_frame, 1), round(1000 * expected.seconds_per_window, 1)
        shared = f", the model shared by {speakers} sessions speaking" if speakers > 1 else ""
        above = stride - 1
        slots = "a slot" if above == 1 else f"{above} slots"
        logger.info("rendering %s (%.3g images/s, each shown %s): a frame takes %.1f ms here (the network %.1f ms of "
                    "a frame in batches of %d taking %.1f ms, the audio encoder %.1f ms a window%s), too slow for %s, "
                    "which needs at most %.1f ms (%.0f ms for %s, %.0f%% kept spare)", _EVERY[stride], FPS / stride, _SHOWN[stride],
                    network + window, network, self.batch_size, 1000 * expected.seconds_per_batch, window, shared,
                    _RATES[above], 1000 * above / FPS / FULL_RATE_HEADROOM, 1000 * above / FPS, slots,
                    100 * (FULL_RATE_HEADROOM - 1))

    def step(self, utterance: Utterance, due: Callable[[int], float] | None = None) -> bool:
        """Take in the utterance's pushed speech, skip the frames a batch started now would finish
        after `due(slot)` (real time; None skips nothing), render the next batch whose audio is
        complete (in real time, open speech waits for a full batch while its first frame can still
        be on time). False when there was nothing to do."""
        started = self.clock.now()
        intake = utterance.ingest()
        if intake.windows:
            self.rate.add_encoding(self.clock.now() - started, intake.windows)
        if due is not None:
            self._keep_up(utterance)
            if utterance.skip_late(lambda slot: self._late(due(slot))):
                self._keep_up(utterance, behind=True)
        if utterance.next_ready():
            if due is not None and self._can_wait_for_batch(utterance, due):
                return intake.taken
            self._render(utterance, due)
            return True
        return intake.taken

    def _keep_up(self, utterance: Utterance, behind: bool = False) -> None:
        """Placed open speech goes on at a slower rate once the measured speed (which counts whatever
        else the machine does meanwhile, such as an encoder) no longer keeps its rate, or (`behind`)
        once it had to pass over late frames (the measure lags: an encoder starting, a stall): fewer
        frames rendered, evenly, rather than frames dropped at random; the next utterance is placed
        from the measure again."""
        if utterance.policy != DROP or utterance.start_slot is None or utterance.stride == MAX_STRIDE:
            return
        stride = max(self.stride(), utterance.stride + 1 if behind and self.half_rate else 1)
        if utterance.slow_down(stride):
            logger.info("utterance %d goes on at %s from its frame %d: its frames no longer keep up", utterance.number,
                        _RATES[stride], utterance.next_slot() - utterance.start_slot)

    def _finish_estimate(self, deadline: float) -> float:
        """When a batch due at `deadline` started now would be done: after the turns before it, then its own."""
        return self.clock.now() + (self.seat.ahead(deadline) + 1) * self.rate.seconds_per_batch

    def _late(self, deadline: float) -> bool:
        """True when a batch due at `deadline` started now would be done after it."""
        return self._finish_estimate(deadline) > deadline

    def _can_wait_for_batch(self, utterance: Utterance, due: Callable[[int], float]) -> bool:
        """True when fewer frames than a batch are ready, more are coming, and waiting for them
        (at the speed of speech) still has the first one on time: a full batch uses every stream."""
        ready = utterance.ready_ahead(self.batch_size)
        if ready == self.batch_size or utterance.frames() is not None:
            return False
        wait = (self.batch_size - ready) * utterance.stride / FPS
        deadline = self._next_due(utterance, due)
        return self._finish_estimate(deadline) + wait <= deadline

    @staticmethod
    def _next_due(utterance: Utterance, due: Callable[[int], float] | None) -> float:
        """When the utterance's next frame to render is due (no deadline in a simulation)."""
        return math.inf if due is None else due(utterance.next_slot())

    def _render(self, utterance: Utterance, due: Callable[[int], float] | None) -> None:
        start_slot = utterance.start_slot
        assert start_slot is not None  # placed before it renders
        first_due = self._next_due(utterance, due)
        indices, audio = utterance.next_batch(self.batch_size)
        templates = [self.template_of(start_slot + i) for i in indices]
        images = self.live.network_inputs(templates)
        with self.seat.turn(first_due) as turn:
            started = self.clock.now()
            outputs = self.live.infer(images, audio, templates)
            if due is not None and utterance.next_ready():
                turn.again(self._next_due(utterance, due))  # the next batch is ready: keep its place
        pixels = [to_pixels(output) for output in outputs]
        finished = self.clock.now()
        for i, frame in zip(indices, pixels):
            utterance.record(i, frame, finished)
        self.rate.add(finished - started, len(indices))
        self.live.batch_done(len(indices), finished - started)
