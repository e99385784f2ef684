"""A simulated viewer of a live session (`frame-gen live`): speech files pushed in chunks, idle gaps
between them, and what a viewer would see and hear written to a video, frames and a report."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import wave
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ...audio.ffmpeg import AudioInfo
from ...audio.speech import load_speech
from ...contract import SAMPLE_RATE
from ...errors import StreamError
from ...files import atomic_directory, atomic_file, write_bytes
from ...live.pacing import DELAY
from ...live.screen import Screen, to_int16
from ...live.session import StreamingSession
from ...live.slot import FPS
from ...models.ave_stream import LOOKAHEAD_SECONDS
from ...outputs.frames import encode_image
from ...outputs.video import encode_frames, mux_audio
from ...plan import RenderPlan

logger = logging.getLogger(__name__)


def push_speech(session: StreamingSession, files: Sequence[Path | AudioInfo], chunk_ms: float, realtime: bool, gap_seconds: float,
                policy: str) -> None:
    """The producer: each file (a path, or its probe) decoded and pushed (in chunks, paced by the clock when `realtime`),
    idle gaps between files, then the session closed."""
    chunk = max(1, int(SAMPLE_RATE * chunk_ms / 1000))
    try:
        for number, path in enumerate(files):
            if number:
                if realtime:
                    session.clock.sleep(gap_seconds)
                else:
                    session.idle(round(gap_seconds * FPS))
            samples = load_speech(path)
            if policy == DELAY:
                session.say(samples)
                if realtime:
                    session.clock.sleep(len(samples) / SAMPLE_RATE)
                continue
            started = session.clock.now()
            for first in range(0, len(samples), chunk):
                session.push_audio(samples[first : first + chunk])
                if realtime:
                    session.clock.sleep(started + (first + chunk) / SAMPLE_RATE - session.clock.now())
            session.end_of_speech()
    except StreamError:
        if not session.closed:
            raise  # else the viewer has gone (an error or Ctrl-C) and closed the session: stop pushing
    finally:
        session.close()


def simulate_viewer(
    session: StreamingSession, plan: RenderPlan, frames_dir: str | os.PathLike[str] | None = None,
    chunk_ms: float = 20.0, realtime: bool = False, gap_seconds: float = 1.0, policy: str = "drop",
) -> dict:
    """Push a live plan's speech files into `session` from a producer thread and record every slot as a
    viewer gets it (the plan, from plan_render("live", ...), has probed them and checked the outputs).

    `plan.output` gets the video with the audio as heard (a dropped slot repeats the last image);
    `frames_dir` gets each slot's image losslessly. Returns the report (also the session's stats).
    """
    output = plan.output
    producer = threading.Thread(target=push_speech, args=(session, plan.audio, chunk_ms, realtime, gap_seconds, policy),
                                name="live-producer", daemon=True)
    try:
        with contextlib.ExitStack() as stack:
            video_path = stack.enter_context(atomic_file(output))
            folder = stack.enter_context(atomic_directory(frames_dir, "live --frames-dir")) if frames_dir is not None else None
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".live-", dir=output.parent)))
            slots = _record(session, producer, scratch, folder, output)
            mux_audio(scratch / "video.mp4", scratch / "audio.wav", video_path, slots / FPS)
    finally:  # also on an error or Ctrl-C: no render thread may still be in the network when the process exits
        session.close(drain=False)
        session.join()
    return report(session, realtime, policy)


def _record(session: StreamingSession, producer: threading.Thread, scratch: Path, folder: Path | None,
            name: Path) -> int:
    """Consume every slot into a silent video, a WAV of the audio and (optionally) lossless frames
    (`name`: the output to name in errors)."""
    with wave.open(str(scratch / "audio.wav"), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(SAMPLE_RATE)
        producer.start()
        slots = encode_frames(_shown(session, audio, folder), scratch / "video.mp4", FPS, name=name)
        producer.join()
    return slots


def _shown(session: StreamingSession, audio: wave.Wave_write, folder: Path | None) -> Iterator[np.ndarray]:
    """Each slot's image as a viewer sees it (a dropped slot repeats the last one), its audio written
    to `audio` and its image, losslessly, into `folder`."""
    screen = Screen(session.idle_image)
    for frame in session:
        image = screen.show(frame)
        audio.writeframes(to_int16(frame.audio).astype("<i2").tobytes())
        if folder is not None:
            path = folder / f"{frame.slot:06d}.png"
            write_bytes(path, encode_image(image, path))
        yield image


def report(session: StreamingSession, realtime: bool, policy: str) -> dict:
    """The figures of a session: latency, frames, drops, render speed against real time."""
    stats = session.stats
    return {
        "first_frame_latency_s": stats.first_frame_latency_s,
        "lookahead_s": LOOKAHEAD_SECONDS,
        "frames": stats.slots,
        "speech_frames": stats.speech_frames,
        "idle_frames": stats.idle_frames,
        "idle_rendered": stats.idle_rendered,
        "idle_raw": stats.idle_raw,
        "dropped_frames": stats.dropped_frames,
        "repeated_frames": stats.repeated_frames,
        "speech_images": stats.speech_frames - stats.repeated_frames,
        "render_fps": session.rate.frames_per_second,
        "realtime_factor": session.rate.frames_per_second / FPS,
        "realtime": realtime,
        "policy": policy,
        "backend": session.model.name,
        "precision": session.model.precision,
        "fidelity_db": session.live.fidelity_db,
        "batch_size": session.batch_size,
        "utterances": [asdict(utterance) for utterance in stats.utterances],
    }


def write_report(data: dict, path: str | os.PathLike[str]) -> None:
    """The report as JSON, written atomically."""
    with atomic_file(path) as temporary:
        temporary.write_text(json.dumps(data, indent=1) + "\n")
