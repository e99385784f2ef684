"""hubert benchmark: `python benchmarks/hubert.py --hubert-model DIR [--checkpoint hubert.pth]`.

1. Speed: the hubert model's cost per second of speech (whole utterances, upstream's clips) next
   to the network's cost per frame (25 frames make a second), on this machine's CPU.
2. Live windows: open speech encoded in windows (window, context, lookahead rows; 50 rows per
   second), pushed in 20 ms chunks; per setting the rows' largest and mean difference from the
   offline rows (also relative to the offline rows' standard deviation), the worst-case speech a
   frame waits for, and the encoder work relative to offline.

Without --hubert-model a random tiny model (hubert-large's front end and width, one small layer)
is measured: its numbers show the method, not the real model's. Without --checkpoint a random
hubert checkpoint is used (same cost as a trained one).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: (window, context, lookahead) rows measured.
SETTINGS = ((5, 50, 5), (10, 50, 10), (25, 25, 0), (25, 50, 25), (25, 100, 50), (50, 100, 50))


def speed(encoder, samples: np.ndarray, checkpoint: Path, backend: str, repeats: int) -> dict:
    """Encoder seconds per second of speech, and network seconds per frame."""
    from frame_generation_pipeline import FrameGenerationPipeline
    from frame_generation_pipeline.contract import INPUT_SHAPE

    encoder.features_from_samples(samples)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        encoder.features_from_samples(samples)
    per_second = (time.perf_counter() - started) / repeats / (len(samples) / 16000)
    pipeline = FrameGenerationPipeline(checkpoint, mode="hubert", device="cpu", backend=backend)
    batch = pipeline.batch_size
    images = np.zeros((batch, *INPUT_SHAPE), np.float32)
    audio = np.zeros((batch, *pipeline.mode.audio_shape), np.float32)
    pipeline.model.run(images, audio)
    started = time.perf_counter()
    for _ in range(repeats):
        pipeline.model.run(images, audio)
    per_frame = (time.perf_counter() - started) / repeats / batch
    return {"encoder_s_per_speech_s": per_second, "network_s_per_frame": per_frame, "network_backend": pipeline.backend,
            "batch": batch, "network_share_of_realtime": per_frame * 25}


def live_windows(encoder, samples: np.ndarray) -> list[dict]:
    """Each setting's rows against the offline rows."""
    from frame_generation_pipeline.models.hubert import HubertStream, HubertWindows

    offline = encoder.stages(samples).hidden
    scale = float(offline.std())
    rows = []
    for window, context, lookahead in SETTINGS:
        settings = HubertWindows(window, context, lookahead)
        stream = HubertStream(encoder, known_length=False, windows=settings)
        started = time.perf_counter()
        for first in range(0, len(samples), 320):
            stream.push(samples[first : first + 320])
        stream.finish()
        seconds = time.perf_counter() - started
        live = stream.held_rows()
        difference = np.abs(live - offline[: len(live)])
        rows.append({"window": window, "context": context, "lookahead": lookahead,
                     "max_difference": float(difference.max()), "mean_difference": float(difference.mean()),
                     "max_relative": float(difference.max()) / scale, "mean_relative": float(difference.mean()) / scale,
                     "waits_for_s": settings.lookahead_seconds, "work_vs_offline": (window + context + lookahead) / window,
                     "encode_s_per_speech_s": seconds / (len(samples) / 16000)})
    return rows


def main() -> None:
    """Measure and print both tables; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hubert-model", default=None, help="a local hubert model folder (default: a random tiny one)")
    parser.add_argument("--checkpoint", default=None, help="a hubert checkpoint (default: random weights)")
    parser.add_argument("--speech", default=None, help="a speech file (default: 6 s of the real speech in tests/data)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=str(HERE / "hubert_results.json"))
    args = parser.parse_args()
    from frame_generation_pipeline.app.demo import synthetic
    from frame_generation_pipeline.audio.speech import load_speech
    from frame_generation_pipeline.devices import cpu_summary
    from frame_generation_pipeline.models.hubert import HubertEncoder

    with tempfile.TemporaryDirectory() as scratch:
        model = Path(args.hubert_model or synthetic.save_random_hubert_model(Path(scratch) / "hubert-tiny"))
        checkpoint = Path(args.checkpoint or synthetic.save_random_checkpoint(Path(scratch) / "hubert.pth", "hubert"))
        speech = Path(args.speech or HERE.parent / "tests" / "data" / "talk_hb_6s.wav")
        encoder = HubertEncoder(model, device="cpu")
        samples = load_speech(speech, first_channel=True)
        result = {"cpu": cpu_summary(), "hubert_model": str(args.hubert_model or "random tiny (1 layer)"),
                  "speech": str(speech), "speed": speed(encoder, samples, checkpoint, args.backend, args.repeats),
                  "live_windows": live_windows(encoder, samples)}
    s = result["speed"]
    print(f"encoder: {s['encoder_s_per_speech_s']:.3f} s per second of speech; network ({s['network_backend']}, "
          f"batch {s['batch']}): {s['network_s_per_frame'] * 1000:.1f} ms per frame = {s['network_share_of_realtime']:.2f} s "
          "per second of video")
    print("window context lookahead | max diff  mean diff (x row std) | waits for | work x offline")
    for row in result["live_windows"]:
        print(f"{row['window']:>6} {row['context']:>7} {row['lookahead']:>9} | {row['max_difference']:.3g} "
              f"{row['mean_difference']:.3g} ({row['max_relative']:.3g}, {row['mean_relative']:.3g}) | "
              f"{row['waits_for_s']:.3f} s | {row['work_vs_offline']:.1f}")
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
