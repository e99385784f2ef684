"""WebRTC media of one live session: a video and an audio track fed from the session's slots, and
the visitor's microphone fed into it."""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading

import av
import cv2
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from ...contract import SAMPLE_RATE
from ...errors import StreamError
from ...live.screen import Screen, to_int16
from ...live.session import StreamingSession
from ...live.slot import FPS, SLOT_SAMPLES
from .metrics import ServerMetrics

logger = logging.getLogger(__name__)

#: RTP clocks: 90 kHz for video; the audio is stamped in samples at 16 kHz.
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
_QUEUE_SLOTS = 2 * FPS
AUDIO_FRAME_SAMPLES = SAMPLE_RATE // 50
#: Silence from the microphone after which the visitor's utterance is ended.
MIC_SILENCE_SECONDS = 0.5


class SlotTrack(MediaStreamTrack):
    """A track that plays what the session's pump puts in (video frames or audio frames)."""

    def __init__(self, kind: str, frames: int) -> None:
        super().__init__()
        self.kind = kind
        self.queue: asyncio.Queue[av.VideoFrame | av.AudioFrame | None] = asyncio.Queue(maxsize=frames)

    async def recv(self) -> av.VideoFrame | av.AudioFrame:
        """The next frame, in slot order; MediaStreamError once the session has ended."""
        frame = await self.queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame

    def offer(self, frame: av.VideoFrame | av.AudioFrame | None) -> None:
        """Queue a frame; when the far end reads too slowly the oldest one is let go."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(frame)


def video_frame(image: np.ndarray, slot: int, width: int | None) -> av.VideoFrame:
    """A slot's image as an av frame stamped on the 90 kHz clock, scaled to `width` if given; in
    yuv420p (what the encoders take, converted by OpenCV: cheaper than the encoder's own
    conversion) when both sides are even, else in BGR."""
    if width is not None and width < image.shape[1]:
        height = round(image.shape[0] * width / image.shape[1] / 2) * 2
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if image.shape[0] % 2 == 0 and image.shape[1] % 2 == 0:
        planes: np.ndarray = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).astype(np.uint8, copy=False)
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    else:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
    frame.pts, frame.time_base = slot * (90000 // FPS), VIDEO_TIME_BASE
    return frame


def audio_frames(samples: np.ndarray, slot: int) -> list[av.AudioFrame]:
    """A slot's samples as 20 ms frames of 16 kHz mono s16, stamped in samples: the video's clock.

    20 ms, not the slot's 40: aiortc sends all the Opus packets of one frame under one RTP
    timestamp, and a receiver keeps only one of them.
    """
    pcm = to_int16(samples)
    frames = []
    for offset in range(0, SLOT_SAMPLES, AUDIO_FRAME_SAMPLES):
        frame = av.AudioFrame.from_ndarray(pcm[None, offset : offset + AUDIO_FRAME_SAMPLES], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, slot * SLOT_SAMPLES + offset, AUDIO_TIME_BASE
        frames.append(frame)
    return frames


class SessionMedia:
    """The tracks of one session and the thread that takes its slots when they are due and turns
    them into av frames (off the event loop, which only queues them)."""

    def __init__(self, session: StreamingSession, loop: asyncio.AbstractEventLoop, width: int | None = None,
                 metrics: ServerMetrics | None = None) -> None:
        self.session, self.loop, self.width, self.metrics = session, loop, width, metrics
        self.video, self.audio = SlotTrack("video", _QUEUE_SLOTS), SlotTrack("audio", 2 * _QUEUE_SLOTS)
        self._pump = threading.Thread(target=self._run, name="session-pump", daemon=True)

    def start(self) -> None:
        """Begin taking slots (idle until speech arrives); once only."""
        if not self._pump.is_alive() and self._pump.ident is None:
            self._pump.start()

    def _run(self) -> None:
        screen = Screen(self.session.idle_image)
        latest_utterance: int | None = None
        try:
            for slot in self.session:
                image = screen.show(slot)
                frames: list[av.VideoFrame | av.AudioFrame] = [video_frame(image, slot.slot, self.width),
                                                               *audio_frames(slot.audio, slot.slot)]
                if not self._send(frames):
                    return
                if self.metrics is not None:
                    first = slot.kind == "speech" and slot.utterance != latest_utterance
                    latest_utterance = slot.utterance if first else latest_utterance
                    self.metrics.slot(slot.kind, self._latency(slot.utterance) if first else None, slot.raw)
            self._send(None)
        except Exception:  # a failing session must not take the server with it
            logger.exception("session pump stopped")

    def _latency(self, utterance: int | None) -> float | None:
        reports = list(self.session.stats.utterances)  # a copy: the render thread appends to it
        return next((report.first_frame_latency_s for report in reports if report.utterance == utterance), None)

    def _send(self, frames: list[av.VideoFrame | av.AudioFrame] | None) -> bool:
        """Hand a slot's frames (None: the end) to the event loop; False once that loop has closed."""
        try:
            self.loop.call_soon_threadsafe(self._deliver, frames)
        except RuntimeError:  # the event loop has closed: the server is gone
            return False
        return True

    def _deliver(self, frames: list[av.VideoFrame | av.AudioFrame] | None) -> None:
        if frames is None:
            self.video.offer(None)
            self.audio.offer(None)
            return
        self.video.offer(frames[0])
        for frame in frames[1:]:
            self.audio.offer(frame)

    def stop(self) -> None:
        """End the session at once (what was queued is dropped); the pump and the tracks end."""
        self.session.close(drain=False)

    def join(self, timeout: float = 5.0) -> None:
        """Wait up to `timeout` seconds for the pump and the session's render thread to end."""
        if self._pump.ident is not None:
            self._pump.join(timeout)
        self.session.join(timeout)


async def feed_microphone(track: MediaStreamTrack, session: StreamingSession) -> None:
    """Push a visitor's microphone into the session as open-ended speech (the drop policy); half a
    second without audio ends the utterance."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    while True:
        try:
            frame = await asyncio.wait_for(track.recv(), MIC_SILENCE_SECONDS)
        except asyncio.TimeoutError:
            session.end_of_speech()
            continue
        except MediaStreamError:
            session.end_of_speech()
            return
        # An audio track's recv() gives AudioFrames; av types it as any Frame or a Packet.
        for resampled in resampler.resample(frame):  # type: ignore[arg-type]
            try:
                session.push_audio(resampled.to_ndarray()[0].astype(np.float32))
            except StreamError:
                return
