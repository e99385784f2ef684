"""Turns at a model that live sessions share: a session joins the model's Scheduler and gets a Seat,
through which it asks for turns (the earliest deadline first) and reports its need (whether it has
speech to render), so that a session plans with its share of the model: the sessions in need.

Each of N sessions speaking at once gets about 1/N of the render rate, one already speaking keeps
its pace when another starts (its deadlines are earlier), and an idle session asks for no turn.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import threading
import time
import weakref
from collections.abc import Hashable, Iterator


class Turns:
    """Turns at a shared resource: the waiting caller whose deadline is earliest goes first (in
    order of asking among equal deadlines, and among callers without one).

    A caller that will ask again at once (the next batch of its speech) says so at the end of its
    turn (`Turn.again`): its next turn is kept for it, by its deadline, for up to `hold` seconds,
    so that a later deadline cannot take the model in the moment between its two asks.
    """

    def __init__(self, hold: float = 0.02) -> None:
        self.hold = hold
        self._changed = threading.Condition()
        self._waiting: list[tuple[float, int]] = []  # a heap of (deadline, ticket)
        self._kept: dict[Hashable, tuple[tuple[float, int], float]] = {}  # caller -> (its place, kept until)
        self._issued = 0
        self._held = False

    @contextlib.contextmanager
    def turn(self, deadline: float = math.inf, caller: Hashable = None) -> Iterator[Turn]:
        """Wait for this caller's turn (`caller`'s kept place if it has one) and hold it for the `with` block."""
        with self._changed:
            kept = self._kept.pop(caller, None) if caller is not None else None
            mine = kept[0] if kept is not None and kept[0][0] <= deadline else self._ask(deadline)
            if kept is not None and kept[0] is not mine:
                self._drop(kept[0])
            try:
                while True:
                    expiry = self._forget_expired()
                    if not self._held and self._waiting[0] == mine:
                        break
                    self._changed.wait(expiry)
            except BaseException:  # it stops waiting (an interrupt, an error): its place goes to the next
                self._drop(mine)
                self._changed.notify_all()
                raise
            heapq.heappop(self._waiting)
            self._held = True
        handle = Turn()
        try:
            yield handle
        finally:
            with self._changed:
                self._held = False
                if handle.next_deadline is not None and caller is not None:
                    self._kept[caller] = (self._ask(handle.next_deadline), time.monotonic() + self.hold)
                self._changed.notify_all()

    def _ask(self, deadline: float) -> tuple[float, int]:
        place = (deadline, self._issued)
        self._issued += 1
        heapq.heappush(self._waiting, place)
        return place

    def _drop(self, place: tuple[float, int]) -> None:
        """A place that will not be taken up leaves the queue."""
        if place in self._waiting:
            self._waiting.remove(place)
            heapq.heapify(self._waiting)

    def _forget_expired(self) -> float | None:
        """Let kept places that were not taken up in time go; seconds until the next one expires."""
        now = time.monotonic()
        for caller, (place, until) in list(self._kept.items()):
            if until <= now:
                del self._kept[caller]
                self._drop(place)
        return min((until - now for _, until in self._kept.values()), default=None)

    def ahead(self, deadline: float = math.inf, caller: Hashable = None) -> int:
        """Turns `caller` asking now with `deadline` would wait for: the one held and the waiting
        (or kept) ones due no later, its own kept place not counted."""
        with self._changed:
            own = self._kept[caller][0] if caller is not None and caller in self._kept else None
            return self._held + sum(place[0] <= deadline for place in self._waiting if place != own)


class Turn:
    """A turn being held: `again(deadline)` keeps the holder's next one."""

    def __init__(self) -> None:
        self.next_deadline: float | None = None

    def again(self, deadline: float) -> None:
        """The holder asks again at once, for a batch due at `deadline`."""
        self.next_deadline = deadline


class Seat:
    """One session's place at a Scheduler: its turns at the model, the turns ahead of a batch of
    its, and how many sessions share the model with it."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self.speaking = False  # its need as last reported (read and written under the scheduler's lock)

    def turn(self, deadline: float = math.inf) -> contextlib.AbstractContextManager[Turn]:
        """Wait for this session's turn for a batch due at `deadline` (its kept place if it has one)."""
        return self._scheduler.turns.turn(deadline, self)

    def ahead(self, deadline: float = math.inf) -> int:
        """Turns a batch of this session due at `deadline` would wait for (Turns.ahead)."""
        return self._scheduler.turns.ahead(deadline, self)

    def report_need(self, speaking: bool) -> None:
        """The session has speech to render (`speaking`: frames left, or speech still coming), or not."""
        self._scheduler.report(self, speaking)

    def speakers(self) -> int:
        """Sessions with speech to render, this one counted whatever its need (so at least 1)."""
        return self._scheduler.speakers(self)

    def leave(self) -> None:
        """The session no longer renders: it is not counted any more."""
        self._scheduler.leave(self)


class Scheduler:
    """The sessions sharing one model and their turns at it.

    A session joins (`join` gives it a Seat), reports its need whenever it may have changed, asks
    for turns and counts the speakers through its Seat, and leaves when it no longer renders.
    """

    def __init__(self, hold: float = 0.02) -> None:
        self.turns = Turns(hold)
        self._seats: weakref.WeakSet[Seat] = weakref.WeakSet()  # a session dropped without leaving goes too
        self._lock = threading.Condition()  # notified when a session's need changes (work waiting for a quiet model)

    def join(self) -> Seat:
        """A Seat for a session, counted among those sharing the model (with no need until it reports one)."""
        seat = Seat(self)
        with self._lock:
            self._seats.add(seat)
        return seat

    def leave(self, seat: Seat) -> None:
        """`seat`'s session is no longer counted."""
        with self._lock:
            self._seats.discard(seat)

    def report(self, seat: Seat, speaking: bool) -> None:
        """`seat`'s session has speech to render, or not."""
        with self._lock:
            seat.speaking = speaking
            self._lock.notify_all()

    def speakers(self, seat: Seat) -> int:
        """Sessions that reported speech to render, counting `seat`'s (so at least 1): how many ways
        the model's render rate is shared."""
        with self._lock:
            return 1 + sum(other.speaking for other in self._seats if other is not seat)

    def speaking(self) -> bool:
        """True when a session has speech to render."""
        with self._lock:
            return any(seat.speaking for seat in self._seats)

    def quiet(self) -> bool:
        """True when no session has speech to render and no turn is held or waiting (background work may go)."""
        return not self.speaking() and self.turns.ahead() == 0

    def wait_quiet(self, timeout: float) -> None:
        """Wait until a session's need changes (or `wake`), at most `timeout` seconds."""
        with self._lock:
            self._lock.wait(timeout)

    def wake(self) -> None:
        """Wake whoever waits in `wait_quiet`."""
        with self._lock:
            self._lock.notify_all()

    def turn(self, deadline: float = math.inf) -> contextlib.AbstractContextManager[Turn]:
        """A turn for work of no session (the warm-up, rest frames): the earliest deadline first, as any."""
        return self.turns.turn(deadline)

    def ahead(self, deadline: float = math.inf) -> int:
        """Turns held or waiting, due no later than `deadline`."""
        return self.turns.ahead(deadline)
