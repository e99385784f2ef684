"""The server's Prometheus metrics (GET /metrics): sessions, frames rendered, shown and dropped, idle
slots shown rendered (rest frames) and raw (templates as they are),
latency to the first frame of each utterance, seconds spent in network batches, and the arithmetic
(backend, precision, the fidelity check's dB).

Each server has a CollectorRegistry of its own (not prometheus-client's global one), so several
servers can live in one process (as in the tests).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ...precisions import checked_names

#: The text exposition format's content type (prometheus-client's latest text version).
CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServerMetrics:
    """The metrics of one server; `sessions` says how many visitors are connected."""

    def __init__(self, sessions: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        gauge = Gauge("fgp_sessions", "Visitors connected now", registry=self.registry)
        gauge.set_function(sessions)
        self._rendered = Counter("fgp_frames_rendered", "Speech frames rendered by the network", registry=self.registry)
        self._shown = Counter("fgp_frames_shown", "Slots sent to visitors with an image of their own, by kind "
                              "(speech, idle)", ["kind"], registry=self.registry)
        self._idle = Counter("fgp_idle_frames", "Idle slots sent to visitors, by what they showed (rendered: "
                             "the template's rest frame; raw: the template as it is)", ["shown"], registry=self.registry)
        self._dropped = Counter("fgp_frames_dropped", "Speech slots not rendered in time (the previous image "
                                "was repeated)", registry=self.registry)
        self._latency = Histogram("fgp_first_frame_latency_seconds", "From an utterance's first sample to its "
                                  "first frame rendered", buckets=_LATENCY_BUCKETS, registry=self.registry)
        self._render = Histogram("fgp_render_seconds", "Seconds per network batch, from its turn at the model "
                                 "to its pixels (the wait for the turn not included)", buckets=_BATCH_BUCKETS, registry=self.registry)

    def arithmetic(self, backend: str, precision: str, fidelity_db: float | None) -> None:
        """Say which backend and precision the network runs in and, where checked, its dB against the exact path."""
        info = Gauge("fgp_network_precision", "1 for the backend and precision the network runs in",
                     ["backend", "precision"], registry=self.registry)
        info.labels(backend, precision).set(1)
        if fidelity_db is not None:
            Gauge("fgp_fidelity_db", f"PSNR in dB of the auto precision's {checked_names()} against the exact path on "
                  "the avatar's templates (the fidelity check)", registry=self.registry).set(fidelity_db)

    def batch(self, frames: int, seconds: float) -> None:
        """A network batch of `frames` took `seconds` (called from render threads)."""
        self._rendered.inc(frames)
        self._render.observe(seconds)

    def slot(self, kind: str, first_frame_latency: float | None = None, raw: bool = False) -> None:
        """A slot of `kind` was sent (`raw`: an idle one showing its template as it is); the latency of
        its utterance when it is that one's first frame."""
        if kind == "dropped":
            self._dropped.inc()
        else:
            self._shown.labels(kind).inc()
        if kind == "idle":
            self._idle.labels("raw" if raw else "rendered").inc()
        if first_frame_latency is not None:
            self._latency.observe(first_frame_latency)

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format."""
        return generate_latest(self.registry)
