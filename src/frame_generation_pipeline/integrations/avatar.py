"""The avatar both voice-agent adapters drive: TTS audio of any rate into a real-time live session,
its slots out with exactly the audio that went in, utterance ends and interruptions (docs/live.md).

Framework-free: the Pipecat and LiveKit modules only translate these events into their frames.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..contract import SAMPLE_RATE, mode_for_audio_model
from ..errors import ConfigurationError, StreamError
from ..live.pacing import DEFAULT_MARGIN
from ..live.screen import INT16_SCALE, Screen, to_int16
from ..live.session import StreamingSession
from ..live.slot import RENDERED, SLOT_SAMPLES
from ..models.speech_encoder import SpeechEncoder
from ..pipeline import FrameGenerationPipeline
from ..render.blend import FEATHER, Blend, checked_blend

logger = logging.getLogger(__name__)

#: How a TTS utterance reaches the engine: "drop" streams every chunk in as it comes (push_audio:
#: the first frame soonest; frames that cannot be on time are dropped), "delay" keeps the utterance
#: until its end and says it whole (say: it starts once every frame can be on time).
POLICIES = ("drop", "delay")
#: Speech samples an utterance keeps for its end: what its frames do not cover (under 2 slots), or
#: all of an utterance too short to be rendered (under 0.2 s).
_TAIL = 4096


#: An audio model as open_session takes it: a path, or a loaded one.
AudioModelGiven = SpeechEncoder[Any] | str | os.PathLike[str] | None


def open_session(
    *, pipeline: FrameGenerationPipeline | None = None, checkpoint: str | os.PathLike[str] | None = None,
    template_dir: str | os.PathLike[str], audio_encoder: AudioModelGiven = None, hubert_model: AudioModelGiven = None,
    mode: str | None = None, backend: str = "auto", device: str | None = None, batch_size: int | None = None,
    precision: str = "auto", onnx: str | os.PathLike[str] | None = None, parsing: bool = False, start_frame: int = 0,
    start_margin: float = DEFAULT_MARGIN, blend: Blend = FEATHER, idle: str = RENDERED, half_rate: bool = True,
) -> StreamingSession:
    """A real-time session on `pipeline`, or on one loaded from `checkpoint`, with the options named
    as the CLI's: the audio model (`audio_encoder` for ave, `hubert_model` for hubert, a path or a
    loaded model; `mode` follows it), the model options, the template folder and its `parsing`,
    `start_frame`, `start_margin`, the paste (`blend`, a render/blend.py Blend: feathered by default,
    NO_BLEND for upstream's hard paste), what idle slots show (`idle`: "rendered" or "template",
    live/rest.py) and whether speech may be shown at a slower rate where the machine is slower than
    real time (`half_rate`; False: every frame rendered, late ones dropped or, for known-length
    speech, a start that waits until all are on time: docs/live.md)."""
    if (pipeline is None) == (checkpoint is None):
        raise ConfigurationError("give either checkpoint= (and the model options) or pipeline= (a loaded one)")
    given = "audio_encoder" if audio_encoder is not None else "hubert_model" if hubert_model is not None else None
    if pipeline is None:
        assert checkpoint is not None  # one of the two was given
        pipeline = FrameGenerationPipeline(checkpoint, mode=mode_for_audio_model(mode, given), device=device,
                                           backend=backend, batch_size=batch_size, onnx_path=onnx, precision=precision)
    encoder = pipeline.audio_model(audio_encoder, hubert_model)
    return StreamingSession.from_pipeline(pipeline, template_dir, encoder, use_parsing=parsing, realtime=True,
                                          margin=start_margin, start_frame=start_frame, blend=checked_blend(blend),
                                          idle=idle, half_rate=half_rate)


#: The keyword arguments of open_session, which both adapters take.
SESSION_OPTIONS = frozenset(inspect.signature(open_session).parameters)


@dataclass(frozen=True)
class Shown:
    """One slot to show: its image (HxWx3 uint8 BGR; a dropped slot repeats the one before), and for
    speech its 16 kHz int16 samples (None when idle). `first`: the utterance's first frame shown."""

    slot: int
    kind: str
    image: np.ndarray
    audio: np.ndarray | None
    first: bool = False


@dataclass(frozen=True)
class Ended:
    """An utterance is over: the speech its frames did not cover (int16, played now), the marker its
    producer ended it with, and its frames shown and dropped."""

    audio: np.ndarray
    marker: Any
    frames: int
    dropped: int


@dataclass
class _Utterance:
    number: int | None = None  # the session's utterance number, once pushed
    samples: int = 0
    frames: int | None = None  # F, once ended (0: too short to render)
    shown: int = 0
    dropped: int = 0
    marker: Any = None  # the framework's end marker, handed back as it came
    held: list[np.ndarray] = field(default_factory=list)  # "delay": the speech until its end
    tail: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    resampler: Any = None  # a soxr.ResampleStream when the TTS rate is not 16 kHz
    rate: int | None = None
    started: float | None = None


class Avatar:
    """A live session fed with TTS utterances; `events()` gives what to show and play, in order.

    Producers (`push`, `end`, `interrupt`) and the consumer run on one event loop.
    """

    def __init__(self, session: StreamingSession, policy: str = "drop") -> None:
        if policy not in POLICIES:
            raise ConfigurationError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.session, self.policy = session, policy
        self._queue: deque[_Utterance] = deque()  # utterances not yet over, oldest first
        self._open: _Utterance | None = None
        self._screen = Screen(session.idle_image)

    def push(self, samples: np.ndarray, sample_rate: int, channels: int = 1) -> bool:
        """Add speech (int16 or float32, interleaved channels) to the open utterance; True if this
        opened a new one."""
        opened = self._open is None
        utterance = self._open if self._open is not None else _Utterance(started=time.monotonic())
        if opened:
            self._open = utterance
            self._queue.append(utterance)
        data = _mono(samples, channels)
        if utterance.rate is None:
            utterance.rate = sample_rate
            if sample_rate != SAMPLE_RATE:
                import soxr

                utterance.resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")
        elif sample_rate != utterance.rate:
            raise StreamError(f"the sample rate changed within an utterance: {utterance.rate} Hz, then {sample_rate} Hz")
        if utterance.resampler is not None:
            data = utterance.resampler.resample_chunk(data)
        self._take(utterance, data)
        return opened

    def _take(self, utterance: _Utterance, data: np.ndarray) -> None:
        if not len(data):
            return
        utterance.samples += len(data)
        utterance.tail = np.concatenate([utterance.tail, data])[-_TAIL:]
        if self.policy == "delay":
            utterance.held.append(data)
            return
        self.session.push_audio(data)
        if utterance.number is None:
            utterance.number = self.session.latest_utterance

    def end(self, marker: Any = None) -> None:
        """End the open utterance; `marker` comes back (in an Ended) right after its last frame."""
        utterance = self._open
        if utterance is None:
            self._queue.append(_Utterance(frames=0, marker=marker))
            return
        self._open = None
        utterance.marker = marker
        if utterance.resampler is not None:
            self._take(utterance, utterance.resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        utterance.frames = self.session.frames_for(utterance.samples)  # its run into silence included
        if not utterance.frames:
            logger.warning("a %.3f s utterance is too short to render: its audio plays with the idle avatar",
                           utterance.samples / SAMPLE_RATE)
        if self.policy == "delay" and utterance.frames:
            self.session.say(np.concatenate(utterance.held))
            utterance.number, utterance.held = self.session.latest_utterance, []
        elif utterance.number is not None:
            self.session.end_of_speech()

    def interrupt(self) -> None:
        """Drop every utterance not yet over (their markers too): the next slot is idle."""
        self.session.interrupt()
        self._queue.clear()
        self._open = None

    def close(self) -> None:
        """End the session now; `events()` ends."""
        self.session.close(drain=False)

    @property
    def speaking(self) -> bool:
        """True while an utterance is open or not yet over."""
        return bool(self._queue)

    async def events(self) -> AsyncIterator[Shown | Ended]:
        """Every slot of the session as it is due, with the end of each utterance after its last frame."""
        async for live in self.session:
            for ended in self._over():
                yield ended
            utterance = next((u for u in self._queue if u.number is not None and u.number == live.utterance), None)
            if utterance is None:  # idle, or a frame of speech interrupted meanwhile (shown as idle)
                image = self._screen.show(live) if live.kind == "idle" else self._screen.show_idle(live.template)
                yield Shown(live.slot, "idle", image, None)
                continue
            utterance.shown += 1
            utterance.dropped += live.kind == "dropped"
            yield Shown(live.slot, live.kind, self._screen.show(live), to_int16(live.audio), utterance.shown == 1)
            for ended in self._over():
                yield ended

    def _over(self) -> list[Ended]:
        """The utterances at the head of the queue whose frames have all been shown."""
        ended = []
        while self._queue and (frames := self._queue[0].frames) is not None and self._queue[0].shown >= frames:
            utterance = self._queue.popleft()
            left = utterance.samples - frames * SLOT_SAMPLES
            tail = utterance.tail[len(utterance.tail) - left :] if left > 0 else utterance.tail[:0]
            ended.append(Ended(to_int16(tail), utterance.marker, utterance.shown - utterance.dropped, utterance.dropped))
        return ended


def _mono(samples: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved int16 or float32 samples as mono float32 in [-1, 1]."""
    array = np.asarray(samples)
    if array.dtype == np.int16:
        array = array.astype(np.float32) / np.float32(INT16_SCALE)
    elif array.dtype != np.float32:
        raise StreamError(f"expected int16 or float32 samples, got {array.dtype}")
    array = array.reshape(-1, channels)
    return array[:, 0] if channels == 1 else array.mean(axis=1, dtype=np.float32)
