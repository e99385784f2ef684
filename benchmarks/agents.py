"""Voice-agent avatar benchmark: `python benchmarks/agents.py` (needs the [pipecat] and [livekit] extras).

On generated data (a random-weight checkpoint and encoder, speech-like audio, templates of --size),
a fake TTS hands each adapter an utterance of 24 kHz speech in 20 ms chunks, all at once (a TTS is
faster than real time). Reported per adapter and policy: the latency from the first TTS audio in to
the utterance's first frame out (Pipecat: its TTFB metric; LiveKit: the first speech audio frame the
generator yields), with the 0.45 s lookahead it contains, and the frames dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

CHUNK = 480


async def pipecat_latency(build, tts: np.ndarray) -> tuple[float, int]:
    """TTFB and dropped frames of SyncTalkVideoService under pipecat's run_test."""
    from pipecat.frames.frames import MetricsFrame, TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame
    from pipecat.metrics.metrics import TTFBMetricsData
    from pipecat.pipeline.worker import PipelineParams
    from pipecat.tests.utils import run_test

    from frame_generation_pipeline.integrations.pipecat import DroppedFramesMetricsData, SyncTalkVideoService

    frames = [TTSStartedFrame(), *(TTSAudioRawFrame(tts[i : i + CHUNK].tobytes(), 24000, 1)
                                   for i in range(0, len(tts), CHUNK)), TTSStoppedFrame()]
    down, _ = await run_test(build(SyncTalkVideoService), frames_to_send=frames, start_timeout=60,
                             pipeline_params=PipelineParams(enable_metrics=True))
    data = [d for f in down if isinstance(f, MetricsFrame) for d in f.data]
    ttfb = [d.value for d in data if isinstance(d, TTFBMetricsData) and d.value > 0]
    return ttfb[0], sum(d.value for d in data if isinstance(d, DroppedFramesMetricsData))


async def livekit_latency(build, tts: np.ndarray) -> tuple[float, int]:
    """First speech audio out after the first push, and dropped frames, of SyncTalkVideoGenerator."""
    from livekit import rtc
    from livekit.agents.voice.avatar import AudioSegmentEnd

    from frame_generation_pipeline.integrations.livekit import SyncTalkVideoGenerator

    generator = build(SyncTalkVideoGenerator)
    started = time.monotonic()
    for first in range(0, len(tts), CHUNK):
        await generator.push_audio(rtc.AudioFrame(tts[first : first + CHUNK].tobytes(), 24000, 1, CHUNK))
    await generator.push_audio(AudioSegmentEnd())
    latency = None
    async for item in generator:
        if latency is None and isinstance(item, rtc.AudioFrame):
            latency = time.monotonic() - started
        if isinstance(item, AudioSegmentEnd):
            break
    await generator.aclose()
    return latency, generator.avatar.session.stats.dropped_frames


def main() -> None:
    """Measure both adapters with both policies and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the utterance")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    import soxr

    from frame_generation_pipeline import FrameGenerationPipeline
    from frame_generation_pipeline.app.demo import synthetic
    from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
    from frame_generation_pipeline.audio.speech import load_speech
    from frame_generation_pipeline.models.audio_encoder import AudioEncoder

    width, height = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        templates = synthetic.make_templates(root / "tpl", 5, width, height, parsing=False)
        pipeline = FrameGenerationPipeline(synthetic.save_random_checkpoint(root / "ave.pth", "ave", seed=1),
                                           device="cpu", backend=args.backend)
        encoder = AudioEncoder(synthetic.save_random_audio_encoder(root / "enc.pth", seed=2), device="cpu")
        speech = load_speech(write_speech_like_wav(root / "speech.wav", args.seconds, seed=3))
        tts = (soxr.resample(speech, 16000, 24000) * 32767).astype(np.int16)
        for policy in ("drop", "delay"):
            def build(cls, policy=policy):
                return cls(pipeline=pipeline, template_dir=templates, audio_encoder=encoder, policy=policy)

            for name, measure in (("pipecat", pipecat_latency), ("livekit", livekit_latency)):
                latency, dropped = asyncio.run(measure(build, tts))
                rows.append({"adapter": name, "policy": policy, "backend": pipeline.backend, "size": args.size,
                             "seconds": args.seconds, "first_frame_s": round(latency, 3), "dropped": int(dropped)})
    print("| adapter | policy | backend | first frame (s) | dropped |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['adapter']} | {row['policy']} | {row['backend']} | {row['first_frame_s']:.2f} | {row['dropped']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
