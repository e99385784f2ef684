"""SyncTalkVideoGenerator: the live avatar as a LiveKit Agents `VideoGenerator`, and the launcher
that runs it with `AvatarRunner` in the agent's process or as a worker of its own.

The agent's audio (any rate, pushed as fast as it comes) becomes utterances of the live engine;
out come, one slot every 1/25 s, a video frame and, while speaking, the slot's 16 kHz audio, with
`AudioSegmentEnd` after an utterance's last frame. Extra `[livekit]` (docs/live.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import cv2
import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    DataStreamAudioReceiver,
    QueueAudioOutput,
    VideoGenerator,
)

from ..contract import SAMPLE_RATE
from ..live.slot import FPS
from .avatar import Avatar, Shown, open_session


class SyncTalkVideoGenerator(VideoGenerator):
    """A talking avatar of a trained SyncTalk_2D model for `AvatarRunner`.

    Args: as SyncTalkVideoService's: `policy`, and the options of `integrations.avatar.open_session`
    (`checkpoint` and the model options or `pipeline`, `template_dir`, `audio_encoder` or
    `hubert_model`, `parsing`, `start_frame`, `start_margin`, `blend`...).
    `options` is the AvatarOptions the runner needs (the template's size, 25 fps, 16 kHz mono).
    """

    def __init__(self, *, policy: str = "drop", **options: Any) -> None:
        session = open_session(**options)
        self.avatar = Avatar(session, policy)
        height, width = session.template_image(session.start_frame).shape[:2]
        self.options = AvatarOptions(video_width=width, video_height=height, video_fps=FPS,
                                     audio_sample_rate=SAMPLE_RATE, audio_channels=1)

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        """Add the agent's speech to the utterance; AudioSegmentEnd ends it (and comes back after its last frame)."""
        if isinstance(frame, AudioSegmentEnd):
            self.avatar.end(frame)
        else:
            self.avatar.push(np.frombuffer(frame.data, np.int16), frame.sample_rate, frame.num_channels)

    def clear_buffer(self) -> None:
        """Interrupt: what was pushed and not yet shown is dropped; the next slot is idle."""
        self.avatar.interrupt()

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        """Every slot as it is due: its video frame, then (speaking) its audio; segment ends in order."""
        return self._stream()

    async def _stream(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        async for event in self.avatar.events():
            if isinstance(event, Shown):
                rgba = cv2.cvtColor(event.image, cv2.COLOR_BGR2RGBA)
                yield rtc.VideoFrame(rgba.shape[1], rgba.shape[0], rtc.VideoBufferType.RGBA, rgba.tobytes())
                if event.audio is not None:
                    yield _audio_frame(event.audio)
            else:
                if len(event.audio):
                    yield _audio_frame(event.audio)
                if event.marker is not None:
                    yield event.marker

    async def aclose(self) -> None:
        """End the avatar's timeline (iteration ends)."""
        self.avatar.close()


def _audio_frame(samples: np.ndarray) -> rtc.AudioFrame:
    return rtc.AudioFrame(samples.tobytes(), SAMPLE_RATE, 1, len(samples))


async def start_in_process(generator: SyncTalkVideoGenerator, agent_session: Any, room: rtc.Room) -> AvatarRunner:
    """Run the avatar in the agent's own process: the agent's audio reaches it through a queue, and
    the runner publishes its video and audio in `room` as the agent. Call before `agent_session.start`."""
    audio = QueueAudioOutput(sample_rate=SAMPLE_RATE)
    runner = AvatarRunner(room, audio_recv=audio, video_gen=generator, options=generator.options)
    await runner.start()
    agent_session.output.audio = audio
    return runner


async def run_worker(generator: SyncTalkVideoGenerator, url: str, token: str) -> None:
    """Run the avatar as a participant of its own (a worker process): join the room at `url` with
    `token`, take the agent's audio from its DataStreamAudioOutput, publish video and audio, and
    return when the agent or the room goes."""
    room = rtc.Room()
    await room.connect(url, token)
    runner = AvatarRunner(room, audio_recv=DataStreamAudioReceiver(room), video_gen=generator, options=generator.options)
    gone = asyncio.Event()
    room.on("disconnected", lambda *_: gone.set())
    room.on("participant_disconnected",
            lambda participant: gone.set() if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT else None)
    try:
        await runner.start()
        await gone.wait()
    finally:
        await runner.aclose()
        await generator.aclose()
        await room.disconnect()
