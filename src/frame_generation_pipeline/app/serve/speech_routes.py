"""The routes that give a visitor's avatar something to say: `POST /speak` (an audio file, decoded
as a stream and said as known-length speech, its first part as soon as its first seconds are
decoded where the session renders faster than real time) and
`POST /say` (text, spoken by the local voice of the `[voice]` extra one sentence at a time, each
sentence queued as known-length speech as soon as it is made). A visitor's requests are said in
the order they came, each whole: a second waits until the first's last part is queued. Same token,
limits and one-line reasons as every route."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from aiohttp import web

from ...audio.ffmpeg import probe_audio
from ...audio.mel import HOP, MEL_WINDOW
from ...audio.speech import stream_speech
from ...contract import SAMPLE_RATE
from ...errors import AudioError, BackendUnavailableError, FrameGenerationError, first_line
from ...live.session import StreamingSession

if TYPE_CHECKING:  # the [voice] extra is imported only when the voice loads
    from ...audio.voice import Voice

logger = logging.getLogger(__name__)

#: Largest upload to /speak, and the longest speech it may hold.
MAX_UPLOAD_BYTES = 20 << 20
MAX_SPEECH_SECONDS = 120.0
#: Seconds of a file decoded at a time; a file is said in two parts (its first 1-2 s, then the rest)
#: where the session renders at least SPLIT_FPS frames/s: its first part starts without waiting for
#: the whole file's encoding. Slower, known-length speech must be planned whole (the delay policy), so
#: it is said in one part.
DECODE_SECONDS = 1.0
SPLIT_SAMPLES = SAMPLE_RATE
SPLIT_FPS = 30.0
#: Longest text /say takes (characters), and the shortest speech a session takes (samples: one encoder window).
MAX_TEXT_CHARS = 1000
MIN_SPEECH_SAMPLES = MEL_WINDOW * HOP


class Speaker(Protocol):
    """What the routes need of a visitor (the server's Visitor): its id, session, tasks and turn
    (held while one request's parts are queued)."""

    id: str
    session: StreamingSession
    tasks: list[asyncio.Task]
    turn: asyncio.Lock


def reason(status: int, why: str) -> web.Response:
    """A refusal: `status` with a one-line JSON reason."""
    return web.json_response({"error": why}, status=status)


class SpeechRoutes:
    """/speak and /say on the visitors that `visitor_of` finds for a request."""

    def __init__(self, visitor_of: Callable[[web.Request], Speaker]) -> None:
        self.visitor_of = visitor_of
        self._voice: asyncio.Task[Voice] | None = None

    def add_to(self, app: web.Application) -> None:
        """Register the routes, and load the voice (if installed) in a worker thread at startup."""
        app.router.add_post("/speak", self.speak)
        app.router.add_post("/say", self.say)
        app.on_startup.append(self._start_voice)

    async def _start_voice(self, _app: web.Application) -> None:
        self._voice = asyncio.ensure_future(asyncio.to_thread(_load_voice))
        self._voice.add_done_callback(lambda task: task.cancelled() or task.exception())  # without [voice]: said on /say

    async def speak(self, request: web.Request) -> web.Response:
        """Say an uploaded audio file (wav, mp3, flac, ogg...) as known-length speech; 202 with its
        duration (as the file states it) once its first part is queued (file_parts)."""
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
                folder.cleanup()
                return reason(413, f"speech of {info.duration:.1f} s is over the {MAX_SPEECH_SECONDS:g} s limit")
            parts = file_parts(stream_speech(info, DECODE_SECONDS), visitor.session.rate.frames_per_second >= SPLIT_FPS)
            first = await asyncio.to_thread(next, parts, None)
        except FrameGenerationError as exc:
            folder.cleanup()
            return reason(415, f"not audio this server can decode ({getattr(exc, 'problem', str(exc))})")
        try:
            if first is None or len(first) < MIN_SPEECH_SAMPLES:
                seconds = 0 if first is None else len(first) / SAMPLE_RATE
                raise AudioError(path, f"holds {seconds:.2f} s of speech: a session takes at least {MIN_SPEECH_SAMPLES / SAMPLE_RATE:g} s")
            await _say_in_turn(visitor, first, parts, folder)
        except FrameGenerationError as exc:
            folder.cleanup()
            return reason(400, getattr(exc, "problem", str(exc)))
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
            rest = (_sentence_speech(voice, sentence) for sentence in sentences[1:])
            await _say_in_turn(visitor, first, rest)
        except BackendUnavailableError as exc:
            return reason(501, f"this server has no voice: {first_line(exc)}")
        except FrameGenerationError as exc:
            return reason(400, first_line(exc))
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


def file_parts(chunks: Iterator[np.ndarray], split: bool) -> Generator[np.ndarray, None, None]:
    """A file's decoded speech as the utterances to say: where `split`, its first 1-2 s (cut at their
    quietest 20 ms, so that the seam falls in a pause where there is one) as soon as they are decoded,
    then the rest; else all of it at once. Stops at MAX_SPEECH_SECONDS; the last part is padded to
    the shortest a session takes."""
    kept: list[np.ndarray] = []
    total = 0
    for chunk in chunks:
        chunk = chunk[: max(0, int(MAX_SPEECH_SECONDS * SAMPLE_RATE) - total)]
        kept.append(chunk)
        total += len(chunk)
        if split and total >= 2 * SPLIT_SAMPLES:
            speech = np.concatenate(kept)
            cut = quietest_cut(speech[: 2 * SPLIT_SAMPLES], SPLIT_SAMPLES)
            yield speech[:cut]
            kept, split = [speech[cut:]], False
        if total >= MAX_SPEECH_SECONDS * SAMPLE_RATE:
            logger.warning("speech cut at the %g s limit", MAX_SPEECH_SECONDS)
            break
    if kept:
        rest = np.concatenate(kept)
        yield np.pad(rest, (0, max(0, MIN_SPEECH_SAMPLES - len(rest)))) if len(rest) else rest


def quietest_cut(speech: np.ndarray, earliest: int) -> int:
    """The sample from `earliest` on at which the quietest 20 ms of `speech` begins."""
    step = SAMPLE_RATE // 50
    frames = speech[earliest : earliest + (len(speech) - earliest) // step * step].reshape(-1, step)
    return earliest + step * int(np.argmin(np.mean(frames**2, axis=1))) if len(frames) else len(speech)


async def _say_in_turn(visitor: Speaker, first: np.ndarray, rest: Iterator[np.ndarray],
                       folder: tempfile.TemporaryDirectory | None = None) -> None:
    """Say `first` once the visitor's earlier requests have queued their last parts, then `rest` in
    the background (_say_rest), keeping the turn until it is done: one request's parts are never
    interleaved with another's."""
    await visitor.turn.acquire()
    try:
        visitor.session.say(first)
    except BaseException:
        visitor.turn.release()
        raise
    task = asyncio.ensure_future(_say_rest(visitor.session, rest, folder))
    task.add_done_callback(lambda _task: visitor.turn.release())  # also when cancelled before it ran
    visitor.tasks.append(task)


async def _say_rest(session: StreamingSession, parts: Iterator[np.ndarray], folder: tempfile.TemporaryDirectory | None = None) -> None:
    """Say each further part (a sentence, the rest of a file) as soon as it is made, until the
    session closes or the parts fail; then let go of `folder` (the file's)."""
    try:
        while (part := await asyncio.to_thread(next, parts, None)) is not None:
            if len(part):
                session.say(part)
    except FrameGenerationError as exc:
        logger.info("the rest was not said: %s", first_line(exc))
    finally:
        if isinstance(parts, Generator):
            await asyncio.to_thread(parts.close)  # a file's: ffmpeg stops
        if folder is not None:
            folder.cleanup()
