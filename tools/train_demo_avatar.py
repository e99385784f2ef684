"""Train the demo avatar: a SyncTalk_2D 328 ave U-Net for the drawn face of `app/demo`.

What it draws. The demo's scene (`app/demo/avatar.py`, drawn by `app/demo/face.py`: 1280x720, a
shaded head with hair on a calm gradient, swaying over 24 positions, 110 landmarks per position
that the drawing follows), with lips that follow the speech being "said". The rule, per 25 fps
video frame i, on the 16 kHz speech in a 64 ms Hann window centred on the frame's middle
((i + 0.5) / 25 s):
  - opening = clip((L + 30) / 25, 0, 1), L = the window's loudness in dB below the clip's loudest
    frame: 30 dB below is closed lips, 5 dB below or louder wide open;
  - spread = clip((c - 300) / 900, 0, 1), c = the spectral centroid (Hz, 100-6000 Hz) of the
    window (voiced espeak-ng frames: 10th to 90th percentile 300-3700 Hz, median 850): dark
    vowels ("oo") round the lips, bright ones ("ee") and hisses widen them; 0.5 when closed;
  - both smoothed over three frames (1/4, 1/2, 1/4).
Frame i of a clip shows scene position `ping_pong_schedule(F, 24)[i]` (the template a render
would use for it), JPEG-compressed as the templates are.

The speech. espeak-ng (Debian's package, at development time) saying SENTENCES in VOICES, each
clip padded with 0.4 s of silence before and after, plus the repository's own clip
(tests/data/talk_hb_6s.wav). The demo's clip (`app/demo/data/demo_speech.wav`) is a voice and a
sentence outside these, made with `--demo-speech`. Features: the ave encoder whose weights
`avatar.demo_audio_encoder_state` draws from a seed (regenerated bit for bit; its digest is checked).

One sample (docs/contract.md, /work/shared/TRAINING.md). Target: frame i's 320 crop, exactly as a
render cuts it from the landmarks. Network input: a reference crop from a random other frame j
showing the same scene position (so its mouth differs, and the network learns to take the mouth
from the audio, while everything else can be copied, as at inference where the reference is the
template itself), and frame i's crop masked as at inference. Audio: feature rows i-8..i+7.

Loss: L1 between output and target, weighted 6x inside an ellipse around the largest mouth
(`face.MOUTH_CENTRE`, `face.MOUTH_REACH`; normalised by the mean weight). Adam (betas 0.9,
0.99), lr 2e-3 (--lr) after 10 warm-up steps, cosine down to 2e-5 at the last step; batch 4; channels_last, and bf16 autocast where the CPU has
AVX512_BF16 or AMX, fp32 otherwise (benchmarks/train_step.py on the 2-core AMD EPYC with
AVX512_BF16, shared with other work: bf16 + channels_last x1.49 the fp32 step, bf16 alone x1.20,
channels_last alone x1.11). After the last step BatchNorm running statistics are
measured again in fp32 over 12 batches (cumulative average), so inference (fp32, eval mode) sees
statistics of the final weights. Saved as fp16, the package's `app/demo/data/avatar_ave.pth`.

Reproducible from --seed (data, sampling order, initial weights) and --init (weights to start
from instead of random ones); bf16 and thread counts change the rounding, not the recipe.

The shipped checkpoint (7 Dec 2026, this face at 1280x720) was fine-tuned from the previous
shipped one (the old 640x360 face, 253 steps from random weights: commit 3ae0ddb's
`app/demo/data/avatar_ave.pth`), in two runs on the 2-core AMD EPYC with AVX2 only (no AVX-512,
no bf16: fp32), shared with other engineers' tests:
  1. `--init <3ae0ddb's checkpoint> --steps 100` (seed 0, lr 2e-3): the data set (2316 frames)
     built in 164 s, then 100 steps in 28 min; a step took 4-5 s when the machine was quiet and
     up to 59 s when it was busy (median 18 s);
  2. `--init <run 1's checkpoint> --steps 120 --lr 5e-4 --seed 1`: 120 steps in 14 min (median
     5 s a step).
Loss, means of 20 steps (whole crop / mouth region L1): run 1, steps 1-20 0.084 / 0.084, 21-40
0.056 / 0.076, 41-60 0.042 / 0.067, 61-80 0.036 / 0.060, 81-100 0.035 / 0.061; run 2, steps
1-20 0.036 / 0.063, 41-60 0.033 / 0.058, 101-120 0.033 / 0.059. So short a training learns
when and how far the mouth opens, not its detail: open, the rendered mouth is a dark lens with
a faint lip rim, without the teeth and lip colour of the drawn one.

Run: PYTHONPATH=src python tools/train_demo_avatar.py --work /tmp/avatar --install [--steps N] [--init CHECKPOINT]
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from frame_generation_pipeline.app.demo import avatar, face, synthetic
from frame_generation_pipeline.app.demo.speech import write_wav
from frame_generation_pipeline.audio.speech import load_speech
from frame_generation_pipeline.contract import SAMPLE_RATE, get_mode
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.inputs.landmarks import crop_box, parse_landmarks
from frame_generation_pipeline.inputs.templates import ping_pong_schedule
from frame_generation_pipeline.models.audio_encoder import AudioEncoder
from frame_generation_pipeline.models.checkpoints import load_unet_state
from frame_generation_pipeline.models.network import SyncTalkUNet
from frame_generation_pipeline.render.arithmetic import crop_region, inner_region, mask_region, resize_crop

logger = logging.getLogger("train_demo_avatar")
ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = ROOT / "src" / "frame_generation_pipeline" / "app" / "demo"

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp+f2", "en-us+f4", "en-gb+m3", "en-us+m7")
SENTENCES = (
    "The quick brown fox jumps over the lazy dog, and then it sleeps.",
    "Open the window, please; the room is warm and quiet today.",
    "We measured every frame twice, before anyone looked at the video.",
    "Shall we meet at noon? I will bring the maps and some food.",
)
DEMO_VOICE = "en-us-nyc"
STEPS, BATCH, LR, WARMUP, FINAL_LR = 260, 4, 2e-3, 10, 2e-5
MOUTH_WEIGHT = 6.0
FPS = 25


def espeak(voice: str, text: str, path: Path, speed: int = 150) -> Path:
    """Write espeak-ng's rendering of `text` in `voice` to a WAV file."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


def padded(samples: np.ndarray) -> np.ndarray:
    pad = np.zeros(int(avatar.PAD_SECONDS * SAMPLE_RATE), np.float32)
    return np.concatenate([pad, samples, pad])


def mouth_track(samples: np.ndarray, frames: int) -> np.ndarray:
    """(frames, 2) mouth (opening, spread) per 25 fps frame from loudness and spectral centroid."""
    size = 1024
    window = np.hanning(size)
    padded_samples = np.concatenate([np.zeros(size), samples, np.zeros(size)])
    freqs = np.fft.rfftfreq(size, 1 / SAMPLE_RATE)
    band = (freqs >= 100) & (freqs <= 6000)
    loudness, centroid = np.empty(frames), np.empty(frames)
    for i in range(frames):
        centre = int((i + 0.5) / FPS * SAMPLE_RATE) + size
        chunk = padded_samples[centre - size // 2: centre + size // 2] * window
        power = np.abs(np.fft.rfft(chunk)) ** 2
        loudness[i] = 10 * np.log10(power[band].sum() + 1e-9)
        centroid[i] = (freqs[band] * power[band]).sum() / (power[band].sum() + 1e-12)
    opening = np.clip((loudness - loudness.max() + 30) / 25, 0, 1)
    spread = np.where(opening > 0, np.clip((centroid - 300) / 900, 0, 1), 0.5)
    track = np.stack([opening, spread], axis=1)
    smooth = track.copy()
    smooth[1:-1] = 0.25 * track[:-2] + 0.5 * track[1:-1] + 0.25 * track[2:]
    return smooth


def training_speech(work: Path) -> list[tuple[str, np.ndarray]]:
    """(name, 16 kHz samples) of every training clip: espeak-ng voices x sentences, and the repo's clip."""
    clips = []
    for v, voice in enumerate(VOICES):
        for s, sentence in enumerate(SENTENCES):
            if (v + s) % 2:  # half the pairs: every voice says two sentences, every sentence four voices
                continue
            path = espeak(voice, sentence, work / f"speech_{v}_{s}.wav", speed=140 + 10 * (v % 3))
            clips.append((path.stem, padded(load_speech(path))))
    clips.append(("talk_hb_6s", load_speech(ROOT / "tests" / "data" / "talk_hb_6s.wav")))
    return clips


class Scene:
    """The avatar's 24 scene positions: landmarks, crop boxes and mouth-weight maps."""

    def __init__(self) -> None:
        self.points = synthetic.template_points(avatar.TEMPLATE_COUNT, avatar.face_box)
        self.boxes = [crop_box(parse_landmarks(synthetic.landmark_text(p))) for p in self.points]
        self.weights = np.stack([self._mouth_weight(k) for k in range(avatar.TEMPLATE_COUNT)])
        self.heads: dict[int, np.ndarray] = {}

    def crop(self, k: int, mouth: tuple[float, float]) -> np.ndarray:
        """Scene k with `mouth`, drawn, JPEG-compressed and cut to its 320x320 crop as a render cuts it."""
        if k not in self.heads:
            self.heads[k] = face.draw_head(avatar.WIDTH, avatar.HEIGHT, avatar.face_box(k))
        frame = avatar.draw_scene(k, mouth, self.heads[k])
        _, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, synthetic.JPEG_QUALITY])
        decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        return inner_region(resize_crop(crop_region(decoded, self.boxes[k])))

    def _mouth_weight(self, k: int) -> np.ndarray:
        x0, y0, size = avatar.face_box(k)
        box = self.boxes[k]
        scale = 328 / (box.xmax - box.xmin)
        centre = ((x0 + face.MOUTH_CENTRE[0] * size - box.xmin) * scale - 4,
                  (y0 + face.MOUTH_CENTRE[1] * size - box.ymin) * scale - 4)
        axes = (face.MOUTH_REACH[0] * size * scale, face.MOUTH_REACH[1] * size * scale)
        mask = np.zeros((320, 320), np.float32)
        cv2.ellipse(mask, (round(centre[0]), round(centre[1])), (round(axes[0]), round(axes[1])), 0, 0, 360, 1.0, -1)
        return 1 + (MOUTH_WEIGHT - 1) * mask


def build_dataset(work: Path, scene: Scene) -> dict[str, np.ndarray]:
    """Every training frame pre-rendered: crops (N, 320, 320, 3) uint8, scene position, audio window, mouth."""
    encoder_path = avatar.write_demo_audio_encoder(work / "audio_visual_encoder.pth")
    digest = avatar.state_sha256(avatar.demo_audio_encoder_state())
    if digest != avatar.ENCODER_SHA256:
        raise SystemExit(f"the seeded audio encoder changed: {digest} != {avatar.ENCODER_SHA256}")
    encoder = AudioEncoder(encoder_path, device="cpu")
    crops, positions, windows, mouths = [], [], [], []
    for name, samples in training_speech(work):
        features = AudioFeatures(encoder.features_from_samples(samples, name), "ave")
        track = mouth_track(samples, len(features))
        for i, k in enumerate(ping_pong_schedule(len(features), avatar.TEMPLATE_COUNT)):
            crops.append(scene.crop(k, (float(track[i, 0]), float(track[i, 1]))))
            positions.append(k)
            windows.append(features.window(i))
            mouths.append(track[i])
        logger.info("%s: %d frames (%.1f s)", name, len(features), len(samples) / SAMPLE_RATE)
    return {"crops": np.stack(crops), "positions": np.array(positions), "windows": np.stack(windows).astype(np.float32),
            "mouths": np.stack(mouths)}


def batch_tensors(data: dict[str, np.ndarray], weights: np.ndarray, rng: np.random.Generator,
                  size: int) -> tuple[torch.Tensor, ...]:
    """(images, audio, target, weight) of `size` random frames, each with a same-position reference."""
    positions = data["positions"]
    chosen = rng.choice(len(positions), size, replace=False)
    images, targets = [], []
    for i in chosen:
        others = np.flatnonzero(positions == positions[i])
        j = rng.choice(others[others != i])
        target = data["crops"][i]
        images.append(np.concatenate([data["crops"][j], mask_region(target)], axis=2).transpose(2, 0, 1))
        targets.append(target.transpose(2, 0, 1))
    scale = np.float32(255.0)
    return (torch.from_numpy(np.stack(images).astype(np.float32) / scale), torch.from_numpy(data["windows"][chosen]),
            torch.from_numpy(np.stack(targets).astype(np.float32) / scale),
            torch.from_numpy(weights[positions[chosen]][:, None]))


def learning_rate(step: int, steps: int, peak: float = LR) -> float:
    if step < WARMUP:
        return peak * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, steps - WARMUP - 1)
    return FINAL_LR + 0.5 * (peak - FINAL_LR) * (1 + math.cos(math.pi * progress))


def has_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text().split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def recalibrate_batchnorm(net: SyncTalkUNet, data: dict[str, np.ndarray], weights: np.ndarray,
                          rng: np.random.Generator, batches: int = 12) -> None:
    """Running statistics measured again in fp32 over `batches` batches (cumulative average)."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(batches):
            images, audio, _, _ = batch_tensors(data, weights, rng, BATCH)
            net(images, audio)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1


def save_fp16(net: SyncTalkUNet, path: Path) -> None:
    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    scene = Scene()
    started = time.perf_counter()
    dataset_file = work / "dataset.npz"
    if dataset_file.exists():
        data = dict(np.load(dataset_file))
    else:
        data = build_dataset(work, scene)
        np.savez(dataset_file, **data)
    logger.info("dataset: %d frames, built or loaded in %.0f s", len(data["positions"]), time.perf_counter() - started)
    net = SyncTalkUNet("ave")
    if args.init:
        net.load_state_dict(load_unet_state(args.init, get_mode("ave")))
        logger.info("starting from %s", args.init)
    net = net.train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.99))
    bf16 = args.bf16 == "on" or (args.bf16 == "auto" and has_bf16())
    logger.info("training %d steps, batch %d, bf16 autocast %s, %d threads", args.steps, BATCH, bf16, torch.get_num_threads())
    started = time.perf_counter()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr)
        images, audio, target, weight = batch_tensors(data, scene.weights, rng, BATCH)
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = net(images, audio)
        error = (output.float() - target).abs()
        loss = (error * weight).mean() / weight.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        mouth = float((error.detach() * (weight > 1)).sum() / (weight > 1).sum() / 3)
        logger.info("step %d/%d loss %.4f mouth L1 %.4f lr %.2e elapsed %.0f s", step + 1, args.steps, float(loss.detach()), mouth,
                    learning_rate(step, args.steps, args.lr), time.perf_counter() - started)
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            torch.save(net.state_dict(), work / "partial.pth")
        if step + 1 == args.stop_after:
            break
        if time.perf_counter() - started > 60 * args.max_minutes:
            logger.info("stopping after step %d: --max-minutes %g reached (the schedule did not finish)", step + 1, args.max_minutes)
            break
    recalibrate_batchnorm(net, data, scene.weights, rng)
    save_fp16(net, work / "avatar_ave.pth")
    logger.info("done in %.0f s; %s", time.perf_counter() - started, work / "avatar_ave.pth")
    if args.install:
        shutil.copyfile(work / "avatar_ave.pth", PACKAGE_DATA / avatar.CHECKPOINT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the speech, the data set, the log's checkpoints")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=20)
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this step (the schedule still planned for --steps)")
    parser.add_argument("--max-minutes", type=float, default=float("inf"), help="stop training early after this long")
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--lr", type=float, default=LR, help="the peak learning rate")
    parser.add_argument("--init", default=None, help="start from this ave checkpoint's weights (default: random, from --seed)")
    parser.add_argument("--install", action="store_true", help="copy the result into the package data")
    parser.add_argument("--demo-speech", action="store_true", help="only write the demo's speech clip into the package data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.demo_speech:
        Path(args.work).mkdir(parents=True, exist_ok=True)
        raw = espeak(DEMO_VOICE, avatar.SENTENCE, Path(args.work) / "demo_raw.wav")
        write_wav(PACKAGE_DATA / avatar.SPEECH, padded(load_speech(raw)))
        return
    train(args)


if __name__ == "__main__":
    main()
