"""Where a live frame's CPU goes, stage by stage: `python benchmarks/live_stages.py` (a quiet machine).

For each --sizes, on generated templates and a random-weight checkpoint (onnxruntime), one frame
of a live session is timed stage by stage in process CPU time (every thread of the process: the
network's and the encoders' worker threads included), as core-ms per frame:

- the network: a first visit (whole, keeping the skips), the rest (what a cached frame runs), the whole (batch 2);
- to pixels and the paste into the template frame (the session's compose);
- the audio: the mel and encoder of one slot of speech pushed in 20 ms chunks, the slot's samples
  as av frames, and Opus (what aiortc does to them);
- the video frame handed to aiortc: BGR into an av frame, its conversion to yuv420p (done by the
  encoder when it is not already yuv420p) and the same conversion by OpenCV; scaling to 640 wide;
- the WebRTC encoders: aiortc's own H.264 (libx264 with its options: no preset, so x264's medium)
  and VP8 (the server's default), and libx264 with faster presets under aiortc's other options.

Prints one table per size and writes benchmarks/live_stages_results.json with the CPU flags.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def per_frame_ms(action: Callable[[int], object], count: int, warm: int = 3) -> float:
    """Process CPU core-ms per call of `action(i)` over `count` calls (after `warm` untimed ones)."""
    for i in range(warm):
        action(i)
    start = time.process_time()
    for i in range(count):
        action(warm + i)
    return 1000 * (time.process_time() - start) / count


def measure_size(width: int, height: int, folder: Path, frames: int) -> dict[str, float]:
    """core-ms per live frame of every stage at one frame size."""
    import av
    import cv2
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from frame_generation_pipeline import FrameGenerationPipeline
    from frame_generation_pipeline.app.demo import synthetic
    from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
    from frame_generation_pipeline.app.serve.media import audio_frames, video_frame
    from frame_generation_pipeline.audio.speech import load_speech
    from frame_generation_pipeline.inputs.templates import TemplateSet
    from frame_generation_pipeline.live.shared import LiveModel
    from frame_generation_pipeline.live.slot import SLOT_SAMPLES
    from frame_generation_pipeline.models.audio_encoder import AudioEncoder
    from frame_generation_pipeline.models.ave_stream import FeatureStream
    from frame_generation_pipeline.render.arithmetic import to_pixels

    checkpoint = synthetic.save_random_checkpoint(folder / "ave.pth", "ave")
    encoder = AudioEncoder(synthetic.save_random_audio_encoder(folder / "enc.pth"), device="cpu")
    templates = TemplateSet.from_folder(synthetic.make_templates(folder / f"tpl-{width}", 25, width, height, parsing=False))
    pipeline = FrameGenerationPipeline(checkpoint, device="cpu", backend="onnxruntime")
    model = pipeline.model
    live = LiveModel(model, templates, encoder)
    inputs = live.network_inputs([0, 1])
    audio = np.random.default_rng(0).standard_normal((2, *model.mode.audio_shape)).astype(np.float32)
    skips = model.first_visit(inputs, audio)[1]
    rows: dict[str, float] = {
        "network: first visit (whole, keeping the skips)": per_frame_ms(lambda _: model.first_visit(inputs, audio), frames // 2) / 2,
        "network: the rest (a cached frame)": per_frame_ms(lambda _: model.rest(inputs, skips, audio), frames // 2) / 2,
        "network: whole": per_frame_ms(lambda _: model.run(inputs, audio), frames // 2) / 2,
    }
    output = model.run(inputs, audio)[0]
    rows["to pixels"] = per_frame_ms(lambda _: to_pixels(output), frames)
    pixels = to_pixels(output)
    images = [live.compose(i % len(templates), pixels) for i in range(frames + 3)]
    rows["paste into the template"] = per_frame_ms(lambda i: live.compose(i % len(templates), pixels), frames)

    speech = load_speech(write_speech_like_wav(folder / "speech.wav", (frames + 20) / 25))
    stream = FeatureStream(encoder)

    def push_slot(i: int) -> None:
        for half in (0, 1):
            first = i * SLOT_SAMPLES + half * SLOT_SAMPLES // 2
            stream.push(speech[first : first + SLOT_SAMPLES // 2])

    rows["audio: mel + encoder window"] = per_frame_ms(push_slot, frames)
    rows["audio: slot samples to av frames"] = per_frame_ms(lambda i: audio_frames(speech[i * SLOT_SAMPLES:][:SLOT_SAMPLES], i),
                                                            frames)
    opus = get_encoder(RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2))
    slot_frames = [audio_frames(speech[i * SLOT_SAMPLES:][:SLOT_SAMPLES], i) for i in range(frames + 3)]
    rows["audio: Opus (aiortc)"] = per_frame_ms(lambda i: [opus.encode(f) for f in slot_frames[i]], frames)

    rows["video: BGR into an av frame"] = per_frame_ms(lambda i: av.VideoFrame.from_ndarray(images[i], format="bgr24"), frames)
    bgr = [av.VideoFrame.from_ndarray(image, format="bgr24") for image in images]
    rows["video: to yuv420p (swscale, in the encoder)"] = per_frame_ms(lambda i: bgr[i].reformat(format="yuv420p"), frames)
    rows["video: to yuv420p (OpenCV) into an av frame"] = per_frame_ms(lambda i: video_frame(images[i], i, None), frames)
    if width > 640:
        rows["video: scale to 640 wide"] = per_frame_ms(lambda i: cv2.resize(images[i], (640, 360), interpolation=cv2.INTER_AREA),
                                                        frames)
    yuv = [video_frame(image, i, None) for i, image in enumerate(images)]  # what the server's encoders get
    for label, mime in (("H.264", "video/H264"), ("VP8", "video/VP8")):
        codec = get_encoder(RTCRtpCodecParameters(mimeType=mime, clockRate=90000))
        rows[f"encode: aiortc {label} (its options)"] = per_frame_ms(lambda i, codec=codec: codec.encode(yuv[i]), frames)
    for preset in ("veryfast", "superfast", "ultrafast"):
        x264 = _x264(width, height, preset)
        rows[f"encode: libx264 {preset} (aiortc's other options)"] = per_frame_ms(lambda i, c=x264: list(c.encode(yuv[i])), frames)
    return rows


def _x264(width: int, height: int, preset: str):
    """libx264 as aiortc opens it (baseline, level 3.1, zerolatency, 30 fps, 1 Mbit/s) at `preset`:
    what a faster preset would buy (aiortc has no option for it)."""
    import fractions

    import av

    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.bit_rate, codec.pix_fmt = width, height, 1_000_000, "yuv420p"
    codec.framerate, codec.time_base = fractions.Fraction(30, 1), fractions.Fraction(1, 30)
    codec.options = {"level": "31", "tune": "zerolatency", "preset": preset}
    codec.profile = "Baseline"
    return codec


def main() -> None:
    """Measure every size, print the tables, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--frames", type=int, default=50, help="frames timed per stage")
    parser.add_argument("--json", default=str(HERE / "live_stages_results.json"))
    args = parser.parse_args()

    from frame_generation_pipeline.devices import cpu_summary

    results: dict = {"cpu": cpu_summary(), "cpus": os.cpu_count(), "frames": args.frames, "sizes": {}}
    print(f"CPU: {results['cpu']}, {results['cpus']} CPUs; process CPU core-ms per live frame")
    with tempfile.TemporaryDirectory(prefix="fgp-live-stages-") as tmp:
        os.environ["FRAME_GEN_CACHE_DIR"] = str(Path(tmp) / "cache")
        for size in args.sizes.split(","):
            width, height = map(int, size.split("x"))
            rows = measure_size(width, height, Path(tmp), args.frames)
            results["sizes"][size] = rows
            print(f"\n{size:<52}{'core-ms':>9}")
            for name, value in rows.items():
                print(f"{name:<52}{value:>9.2f}")
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
