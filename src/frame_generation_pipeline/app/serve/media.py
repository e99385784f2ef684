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
from ...live.session import StreamingSession
from ...live.timeline import FPS, SLOT_SAMPLES, LiveFrame

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
    """A slot's image as an av frame stamped on the 90 kHz clock, scaled to `width` if given."""
    if width is not None and width < image.shape[1]:
        height = round(image.shape[0] * width / image.shape[1] / 2) * 2
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
    frame.pts, frame.time_base = slot * (90000 // FPS), VIDEO_TIME_BASE
    return frame


def audio_frames(samples: np.ndarray, slot: int) -> list[av.AudioFrame]:
    """A slot's samples as 20 ms frames of 16 kHz mono s16, stamped in samples: the video's clock.

    20 ms, not the slot's 40: aiortc sends all the Opus packets of one frame under one RTP
    timestamp, and a receiver keeps only one of them.
    """
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    frames = []
    for offset in range(0, SLOT_SAMPLES, AUDIO_FRAME_SAMPLES):
        frame = av.AudioFrame.from_ndarray(pcm[None, offset : offset + AUDIO_FRAME_SAMPLES], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, slot * SLOT_SAMPLES + offset, AUDIO_TIME_BASE
        frames.append(frame)
    return frames


class SessionMedia:
    """The tracks of one session and the thread that takes its slots when they are due."""

    def __init__(self, session: StreamingSession, loop: asyncio.AbstractEventLoop, width: int | None = None) -> None:
        self.session, self.loop, self.width = session, loop, width
        self.video, self.audio = SlotTrack("video", _QUEUE_SLOTS), SlotTrack("audio", 2 * _QUEUE_SLOTS)
        self._previous: np.ndarray | None = None
        self._pump = threading.Thread(target=self._run, name="session-pump", daemon=True)

    def start(self) -> None:
        """Begin taking slots (idle until speech arrives); once only."""
        if not self._pump.is_alive() and self._pump.ident is None:
            self._pump.start()

    def _run(self) -> None:
        try:
            for slot in self.session:
                self.loop.call_soon_threadsafe(self._deliver, slot)
            self.loop.call_soon_threadsafe(self._deliver, None)
        except RuntimeError:  # the event loop has closed: the server is gone
            pass
        except Exception:  # a failing session must not take the server with it
            logger.exception("session pump stopped")

    def _deliver(self, slot: LiveFrame | None) -> None:
        if slot is None:
            self.video.offer(None)
            self.audio.offer(None)
            return
        image = slot.image if slot.image is not None else self._previous
        if image is None:
            image = self.session.template_image(slot.template)
        self._previous = image
        self.video.offer(video_frame(image, slot.slot, self.width))
        for frame in audio_frames(slot.audio, slot.slot):
            self.audio.offer(frame)

    def stop(self) -> None:
        """End the session at once (what was queued is dropped); the pump and the tracks end."""
        self.session.close(drain=False)


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
        for resampled in resampler.resample(frame):
            try:
                session.push_audio(resampled.to_ndarray()[0].astype(np.float32))
            except StreamError:
                return
