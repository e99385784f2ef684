"""SyncTalkVideoService: the live avatar as a Pipecat video service, placed after the TTS service.

It takes the TTS's audio (`TTSAudioRawFrame`s, any rate) and pushes, one slot every 1/25 s, an
`OutputImageRawFrame` and, while the avatar speaks, the slot's 16 kHz audio: the pipeline plays the
service's audio, not the TTS's, and each image is queued with the audio (`sync_with_audio`), so
lips and sound stay together: within a frame when the pipeline's output is 16 kHz (the transport's
resampler, at another rate, holds part of each slot's audio back while its image is shown). Extra `[pipecat]` (docs/live.md, "In a voice agent").
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import cv2
import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    MetricsFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
)
from pipecat.metrics.metrics import MetricsData
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.ai_service import AIService
from pipecat.services.settings import ServiceSettings

from ..contract import SAMPLE_RATE
from ..live.slot import FPS
from .avatar import SESSION_OPTIONS, Avatar, Ended, Shown, open_session

_NS_PER_SLOT = 1_000_000_000 // FPS
logger = logging.getLogger(__name__)


class DroppedFramesMetricsData(MetricsData):
    """Frames of one utterance that could not be rendered in time (their slots repeated the image before)."""

    value: int


class SyncTalkVideoService(AIService):
    """A talking avatar of a trained SyncTalk_2D model, on the live engine's timeline.

    Args:
        policy: "drop" (each TTS chunk streamed in: the first frame soonest, late frames dropped) or
            "delay" (each utterance said whole at TTSStoppedFrame: nothing dropped, a later start).
        **options: those of `integrations.avatar.open_session`, named as the CLI's options
            (`checkpoint` and the model options or `pipeline`; `template_dir`; `audio_encoder` or
            `hubert_model`; `parsing`, `start_frame`, `start_margin`, `blend`...); the others are
            passed to Pipecat's AIService.
    """

    def __init__(self, *, policy: str = "drop", **options: Any) -> None:
        service = {key: value for key, value in options.items() if key not in SESSION_OPTIONS}
        service.setdefault("settings", ServiceSettings(model=None))
        super().__init__(**service)
        session = open_session(**{key: value for key, value in options.items() if key in SESSION_OPTIONS})
        self.avatar = Avatar(session, policy)
        self._player: asyncio.Task | None = None

    def can_generate_metrics(self) -> bool:
        """True: first-frame latency (TTFB: first TTS audio in to the utterance's first slot out) and dropped frames."""
        return True

    # FrameProcessor.setup takes a FrameProcessorSetup; pipecat's BaseObject declares a task manager there
    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        """Warn when the pipeline's output rate is not the avatar's 16 kHz (images would lead their sound)."""
        await super().setup(setup)
        if setup.audio_out_sample_rate != SAMPLE_RATE:
            logger.warning("the pipeline's output audio is %d Hz: the avatar's images lead their sound by a frame or "
                           "two; for lips in sync use PipelineParams(audio_out_sample_rate=%d)",
                           setup.audio_out_sample_rate, SAMPLE_RATE)

    async def start(self, frame: StartFrame) -> None:
        """Start the avatar's timeline (idle until the TTS speaks)."""
        await super().start(frame)
        self._player = self.create_task(self._play())

    async def stop(self, frame: EndFrame) -> None:
        """Finish what the TTS said, then end the timeline."""
        await super().stop(frame)
        if self.avatar.speaking:
            self.avatar.end()
        while self.avatar.speaking and self._player is not None and not self._player.done():
            await asyncio.sleep(1 / FPS)
        await self._end()

    async def cancel(self, frame: CancelFrame) -> None:
        """End the timeline now."""
        await super().cancel(frame)
        await self._end()

    async def cleanup(self) -> None:
        """End the timeline if it still runs."""
        await super().cleanup()
        await self._end()

    async def _end(self) -> None:
        self.avatar.close()
        if self._player is not None:
            await self.cancel_task(self._player)
            self._player = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """TTS audio and its end go to the avatar; an interruption stops it; the rest passes on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            if self.avatar.push(np.frombuffer(frame.audio, np.int16), frame.sample_rate, frame.num_channels):
                await self.start_ttfb_metrics()
            return
        if isinstance(frame, TTSStoppedFrame) and direction == FrameDirection.DOWNSTREAM:
            self.avatar.end(frame)  # pushed on after the utterance's last frame
            return
        if isinstance(frame, (InterruptionFrame, UserStartedSpeakingFrame)):
            self.avatar.interrupt()
        await self.push_frame(frame, direction)

    async def _play(self) -> None:
        async for event in self.avatar.events():
            if isinstance(event, Shown):
                await self.push_frame(_image(event.image, event.slot))
                if event.audio is not None:
                    await self.push_frame(_audio(event.audio, event.slot))
                if event.first:
                    await self.stop_ttfb_metrics()
            elif isinstance(event, Ended):
                await self._ended(event)

    async def _ended(self, event: Ended) -> None:
        if len(event.audio):
            await self.push_frame(TTSAudioRawFrame(event.audio.tobytes(), SAMPLE_RATE, 1))
        if event.dropped and self.metrics_enabled:
            await self.push_frame(MetricsFrame(data=[DroppedFramesMetricsData(processor=self.name, value=event.dropped)]))
        if event.marker is not None:
            await self.push_frame(event.marker)


def _image(bgr: np.ndarray, slot: int) -> OutputImageRawFrame:
    """A slot's image as an RGB frame, stamped with the slot's time and queued with the audio."""
    frame = OutputImageRawFrame(image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tobytes(), size=(bgr.shape[1], bgr.shape[0]),
                                format="RGB")
    frame.pts, frame.sync_with_audio = slot * _NS_PER_SLOT, True
    return frame


def _audio(samples: np.ndarray, slot: int) -> TTSAudioRawFrame:
    """A slot's 16 kHz mono samples, stamped with the slot's time."""
    frame = TTSAudioRawFrame(samples.tobytes(), SAMPLE_RATE, 1)
    frame.pts = slot * _NS_PER_SLOT
    return frame
