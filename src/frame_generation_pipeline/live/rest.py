"""The avatar at rest: what an idle slot shows (`rendered`: its template's rest frame, the render of
silence; `template`: the template as it is), and the thread that computes the rest frames of a
LiveModel in the background, taking the model only while no session has speech to render.

The thread goes through the templates in the order the idle schedule shows them (0, 1, 2, ...,
from wherever a session showed a template whose rest frame was missing), a small batch (one per
stream of the model) per turn, and stops once every template's rest frame is kept.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref

from ..errors import ConfigurationError
from ..render.rest import RestFrames
from .scheduler import Scheduler
from .slot import IDLE_CHOICES

logger = logging.getLogger(__name__)

#: Seconds the thread waits for the model to be free before looking again (it is also woken when it is).
_RECHECK = 0.5
#: Seconds the process waits at exit for a thread's batch (a thread still in the network when the
#: interpreter finalises aborts the process).
_EXIT_SECONDS = 5.0
_RUNNING: weakref.WeakSet[RestFiller] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """At exit: every thread stops after its batch."""
    fillers = list(_RUNNING)
    for filler in fillers:
        filler.stop()
    for filler in fillers:
        filler.join(_EXIT_SECONDS)


def check_idle(idle: str) -> str:
    """`idle` when it is one of IDLE_CHOICES; ConfigurationError otherwise."""
    if idle not in IDLE_CHOICES:
        raise ConfigurationError(f"idle must be one of {', '.join(IDLE_CHOICES)}, got {idle!r}")
    return idle


class RestFiller:
    """Computes every template's rest frame (`rest`) in a thread of its own, in turns at the model
    that it takes only when `scheduler` has no session with speech to render.

    Args:
        rest: where the rest frames are computed and kept.
        scheduler: the model's sessions and turns.
        count: templates in the set.
        batch: templates per turn.
    """

    def __init__(self, rest: RestFrames, scheduler: Scheduler, count: int, batch: int = 1) -> None:
        self.rest, self.scheduler, self.batch = rest, scheduler, max(1, batch)
        self._queue = list(range(count))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Turns the thread took at the model (each for one batch).
        self.turns = 0

    def start(self) -> None:
        """Start the thread (once; nothing happens on later calls)."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="live-rest", daemon=True)
            self._thread.start()
            _RUNNING.add(self)

    def hint(self, template: int) -> None:
        """A session showed `template` without its rest frame: compute from it on next."""
        with self._lock:
            if template in self._queue:
                at = self._queue.index(template)
                self._queue = self._queue[at:] + self._queue[:at]

    def stop(self) -> None:
        """Let the thread end after its current batch."""
        self._stop.set()
        self.scheduler.wake()

    def join(self, timeout: float | None = None) -> None:
        """Wait up to `timeout` seconds for the thread to end (it ends by itself once every rest frame is kept)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _next_batch(self) -> list[int]:
        """The next templates whose rest frames are not kept, taken off the queue."""
        batch: list[int] = []
        with self._lock:
            while self._queue and len(batch) < self.batch:
                template = self._queue.pop(0)
                if not self.rest.kept(template):
                    batch.append(template)
        return batch

    def _run(self) -> None:
        try:
            self.rest.window()
            while not self._stop.is_set() and (batch := self._next_batch()):
                while not self._stop.is_set() and not self._one_turn(batch):
                    self.scheduler.wait_quiet(_RECHECK)
        except Exception:  # idle slots show the templates as they are; the error is logged once
            if not self._stop.is_set():  # (not when the model was let go meanwhile)
                logger.exception("computing the rest frames stopped")

    def _one_turn(self, batch: list[int]) -> bool:
        """Compute `batch` in a turn at the model if no session has speech to render; False if one had."""
        if not self.scheduler.quiet():
            return False
        with self.scheduler.turn():
            if self.scheduler.speaking():  # a session began speaking while the turn was asked for
                return False
            self.turns += 1
            self.rest.compute(batch)
        return True
