"""The routes that give a visitor's avatar something to say: `POST /speak` (an audio file, pushed
into the session as it is decoded, so that its speech starts after its first second) and
`POST /say` (text, spoken by the local voice of the `[voice]` extra one sentence at a time, each
sentence queued as known-length speech as soon as it is made). Same token, limits and one-line
reasons as every route."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from aiohttp import web

from ...audio.ffmpeg import probe_audio
from ...audio.mel import HOP, MEL_WINDOW
from ...audio.speech import stream_speech
from ...contract import SAMPLE_RATE
from ...errors import BackendUnavailableError, FrameGenerationError, first_line
from ...live.session import StreamingSession

if TYPE_CHECKING:  # the server imports this module: its Visitor only for the types
    from ...audio.voice import Voice
    from .server import Visitor

logger = logging.getLogger(__name__)

#: Largest upload to /speak, and the longest speech it may hold.
MAX_UPLOAD_BYTES = 20 << 20
MAX_SPEECH_SECONDS = 120.0
#: Seconds of a file decoded before its speech is pushed (then the rest, as it comes).
DECODE_SECONDS = 1.0
#: Longest text /say takes (characters), and the shortest speech a session takes (samples: one encoder window).
MAX_TEXT_CHARS = 1000
MIN_SPEECH_SAMPLES = MEL_WINDOW * HOP


def reason(status: int, why: str) -> web.Response:
    """A refusal: `status` with a one-line JSON reason."""
    return web.json_response({"error": why}, status=status)


class SpeechRoutes:
    """/speak and /say on the visitors that `visitor_of` finds for a request."""

    def __init__(self, visitor_of: Callable[[web.Request], Visitor]) -> None:
        self.visitor_of = visitor_of
        self._voice: asyncio.Task[Voice] | None = None

    def add_to(self, app: web.Application) -> None:
        """Register the routes, and load the voice (if installed) in a worker thread at startup."""
        app.router.add_post("/speak", self.speak)
        app.router.add_post("/say", self.say)
        app.on_startup.append(self._start_voice)

    async def _start_voice(self, _app: web.Application) -> None:
        self._voice = asyncio.ensure_future(asyncio.to_thread(_load_voice))

    async def speak(self, request: web.Request) -> web.Response:
        """Push an uploaded audio file (wav, mp3, flac, ogg...) into the session as it is decoded; 202
        with its duration (as the file states it) once its first second is queued."""
        visitor = self.visitor_of(request)
        if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
            return reason(413, f"upload of {request.content_length} bytes is over the {MAX_UPLOAD_BYTES >> 20} MB limit")
        body = await request.read()
        if not body:
            return reason(400, "the request body is empty: send an audio file")
        folder = tempfile.TemporaryDirectory(prefix="fgp-speak-")
        try:
            path = Path(folder.name) / "speech"
            path.write_bytes(body)
            info = await asyncio.to_thread(probe_audio, path)
            if info.duration is not None and info.duration > MAX_SPEECH_SECONDS:
                return reason(413, f"speech of {info.duration:.1f} s is over the {MAX_SPEECH_SECONDS:g} s limit")
            chunks = stream_speech(info, DECODE_SECONDS)
            first = await asyncio.to_thread(next, chunks, None)
        except FrameGenerationError as exc:
            folder.cleanup()
            return reason(415, f"not audio this server can decode ({getattr(exc, 'problem', str(exc))})")
        if first is None or (info.duration is not None and info.duration * SAMPLE_RATE < MIN_SPEECH_SAMPLES):
            folder.cleanup()
            return reason(400, f"speech of {info.duration or 0:.2f} s is shorter than {MIN_SPEECH_SAMPLES / SAMPLE_RATE:g} s")
        visitor.session.push_audio(first)
        visitor.tasks.append(asyncio.ensure_future(_push_rest(visitor.session, chunks, folder, len(first))))
        return web.json_response({"session": visitor.id, "duration": info.duration}, status=202)

    async def say(self, request: web.Request) -> web.Response:
        """Speak text with the local voice: 202 with the number of sentences once the first is queued."""
        visitor = self.visitor_of(request)
        if request.content_length is not None and request.content_length > 4 * MAX_TEXT_CHARS + 100:
            return reason(413, f"text over the {MAX_TEXT_CHARS} character limit")
        try:
            text = (await request.json())["text"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return reason(400, 'expected JSON {"text": "what to say"}')
        if not isinstance(text, str) or not text.strip():
            return reason(400, "the text is empty: type something to say")
        if len(text) > MAX_TEXT_CHARS:
            return reason(413, f"text of {len(text)} characters is over the {MAX_TEXT_CHARS} character limit")
        try:
            voice = await self._loaded_voice()
            sentences = await asyncio.to_thread(voice.sentences, text)
            first = await asyncio.to_thread(_sentence_speech, voice, sentences[0])
            visitor.session.say(first)
        except BackendUnavailableError as exc:
            return reason(501, f"this server has no voice: {first_line(exc)}")
        except FrameGenerationError as exc:
            return reason(400, first_line(exc))
        if len(sentences) > 1:
            visitor.tasks.append(asyncio.ensure_future(_say_rest(visitor.session, voice, sentences[1:])))
        return web.json_response({"session": visitor.id, "sentences": len(sentences),
                                  "first_sentence_s": round(len(first) / SAMPLE_RATE, 3)}, status=202)

    async def _loaded_voice(self) -> Voice:
        if self._voice is None:  # an app not started through add_to (startup hooks not run)
            self._voice = asyncio.ensure_future(asyncio.to_thread(_load_voice))
        return await asyncio.shield(self._voice)


def _load_voice() -> Voice:
    """The installed voice, loaded (BackendUnavailableError without the [voice] extra)."""
    from ...audio.voice import default_voice

    return default_voice()


def _sentence_speech(voice: Voice, phonemes: list[str]) -> np.ndarray:
    """A sentence's speech, padded with silence to the shortest a session takes."""
    speech = voice.say(phonemes)
    return np.pad(speech, (0, max(0, MIN_SPEECH_SAMPLES - len(speech))))


async def _push_rest(session: StreamingSession, chunks: Generator[np.ndarray, None, None], folder: tempfile.TemporaryDirectory,
                     pushed: int) -> None:
    """Push a file's remaining chunks as they are decoded, then end its utterance (also when the file
    fails midway or runs past the limit)."""
    try:
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            pushed += len(chunk)
            if pushed > MAX_SPEECH_SECONDS * SAMPLE_RATE:
                logger.warning("speech cut at the %g s limit", MAX_SPEECH_SECONDS)
                break
            session.push_audio(chunk)
    except FrameGenerationError as exc:
        logger.warning("speech ended early: %s", first_line(exc))
    finally:
        with contextlib.suppress(FrameGenerationError):
            session.end_of_speech()
        await asyncio.to_thread(chunks.close)  # ffmpeg stops
        folder.cleanup()


async def _say_rest(session: StreamingSession, voice: Voice, sentences: list[list[str]]) -> None:
    """Queue each further sentence as soon as it is made (until the session closes)."""
    try:
        for sentence in sentences:
            session.say(await asyncio.to_thread(_sentence_speech, voice, sentence))
    except FrameGenerationError as exc:
        logger.info("the rest of the text was not said: %s", first_line(exc))
