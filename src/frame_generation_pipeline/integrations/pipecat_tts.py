"""LocalTTSService: a Pipecat TTS service that speaks with the local voice of the `[voice]` extra
(audio/voice.py), on this machine, sentence by sentence; put it before SyncTalkVideoService. Extras
`[pipecat]` and `[voice]`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import numpy as np
from pipecat.frames.frames import Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from ..audio.voice import Voice, default_voice
from ..contract import SAMPLE_RATE
from ..live.screen import to_int16


class LocalTTSService(TTSService):
    """Text frames in, the local voice's 16 kHz speech out as TTS audio frames (resampled by Pipecat
    to the pipeline's output rate), each sentence as soon as it is made.

    Args:
        voice: a loaded Voice (default: the installed voice package's, loaded once per process).
        **kwargs: passed on to Pipecat's TTSService.
    """

    def __init__(self, voice: Voice | None = None, **kwargs: Any) -> None:
        self.voice = voice or default_voice()  # BackendUnavailableError now, without the [voice] extra
        kwargs.setdefault("settings", TTSSettings(model=None, voice=self.voice.model.stem, language=None))
        super().__init__(push_start_frame=True, push_stop_frames=True, **kwargs)

    def can_generate_metrics(self) -> bool:
        """Time to first byte and usage are measured."""
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Speak `text`: its audio frames, each sentence pushed once it is made (nothing for text
        without words)."""
        if not text.strip():
            return
        await self.start_tts_usage_metrics(text)
        async for frame in self._stream_audio_frames_from_iterator(self._sentences(text), in_sample_rate=SAMPLE_RATE,
                                                                   context_id=context_id):
            await self.stop_ttfb_metrics()
            yield frame

    async def _sentences(self, text: str) -> AsyncIterator[bytes]:
        """Each sentence's 16 kHz int16 bytes, made in a worker thread."""
        try:
            sentences = await asyncio.to_thread(self.voice.sentences, text)
        except ValueError:  # only punctuation: nothing to say
            return
        for sentence in sentences:
            speech: np.ndarray = await asyncio.to_thread(self.voice.say, sentence)
            yield to_int16(speech).tobytes()
