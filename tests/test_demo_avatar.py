"""The demo avatar: its seeded audio encoder regenerates bit for bit, half-precision checkpoints
load as float32, and the shipped checkpoint opens its mouth with the speech (a random one does not)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from frame_generation_pipeline.app.demo import avatar, face, synthetic
from frame_generation_pipeline.app.demo.speech import write_wav
from frame_generation_pipeline.audio.speech import load_speech
from frame_generation_pipeline.contract import SAMPLE_RATE, get_mode
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.inputs.templates import TemplateSet, ping_pong_schedule
from frame_generation_pipeline.models.audio_encoder import AudioEncoder
from frame_generation_pipeline.models.backends.torch_backend import TorchBackend
from frame_generation_pipeline.models.checkpoints import load_unet_state, read_state_dict
from frame_generation_pipeline.models.network import SyncTalkUNet
from frame_generation_pipeline.render.generator import FrameRenderer

from .helpers import cli_status

FPS = 25
#: The start of the demo clip: 0.4 s of silence, then "Hello" (19 frames).
SECONDS = 0.8
#: Correlation between the mouth's opening and the speech's loudness the shipped avatar must reach.
MIN_CORRELATION = 0.7


def test_the_demo_audio_encoder_regenerates_bit_for_bit():
    assert avatar.state_sha256(avatar.demo_audio_encoder_state()) == avatar.ENCODER_SHA256


def test_half_precision_checkpoints_load_as_float32(tmp_path):
    torch.manual_seed(0)
    state = SyncTalkUNet("ave").state_dict()
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(half, tmp_path / "half.pth")
    loaded = load_unet_state(tmp_path / "half.pth", get_mode("ave"))
    assert all(loaded[k].dtype == (torch.float32 if v.is_floating_point() else v.dtype) for k, v in state.items())
    assert all(torch.equal(loaded[k], v.float()) for k, v in half.items())
    torch.save({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in avatar.demo_audio_encoder_state().items()},
               tmp_path / "encoder_bf16.pth")
    encoder = read_state_dict(tmp_path / "encoder_bf16.pth")
    assert {v.dtype for v in encoder.values()} == {torch.float32, torch.int64}


def _loudness(speech: np.ndarray, frames: int) -> np.ndarray:
    """dB of the RMS of 40 ms of speech around each frame's middle."""
    half = SAMPLE_RATE // FPS // 2
    centres = ((np.arange(frames) + 0.5) / FPS * SAMPLE_RATE).astype(int)
    return np.array([10 * np.log10(np.mean(speech[max(c - half, 0): c + half] ** 2) + 1e-8) for c in centres])


def _mouth_opening(frame: np.ndarray, template: int) -> float:
    """The dark (open-mouth) share of the box around the avatar's mouth, measured on the rendered pixels."""
    x0, y0, size = avatar.face_box(template)
    cx, cy = x0 + face.MOUTH_CENTRE[0] * size, y0 + face.MOUTH_CENTRE[1] * size
    region = frame[int(cy - 0.12 * size): int(cy + 0.12 * size), int(cx - 0.2 * size): int(cx + 0.2 * size)]
    return float((region.max(axis=2) < 100).mean())


def test_the_drawn_lips_open_where_the_measure_looks_and_change_nothing_else():
    head = face.draw_head(avatar.WIDTH, avatar.HEIGHT, avatar.face_box(5))
    closed, half, wide = (avatar.draw_scene(5, (opening, 0.5), head) for opening in (0.0, 0.4, 1.0))
    assert closed.shape == (avatar.HEIGHT, avatar.WIDTH, 3)
    assert _mouth_opening(closed, 5) < 0.02 < _mouth_opening(half, 5) < _mouth_opening(wide, 5)
    x0, y0, size = avatar.face_box(5)
    changed = np.argwhere((closed != wide).any(axis=2))
    reach = np.array(face.MOUTH_REACH[::-1]) * size
    centre = np.array([y0 + face.MOUTH_CENTRE[1] * size, x0 + face.MOUTH_CENTRE[0] * size])
    assert (np.abs(changed - centre) <= reach).all()


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("avatar")
    with avatar.packaged(avatar.SPEECH) as shipped:
        speech = load_speech(shipped)[: int(SECONDS * SAMPLE_RATE)]
    return {"root": root, "speech": speech, "wav": write_wav(root / "speech.wav", speech),
            "templates": TemplateSet.from_folder(avatar.make_avatar_templates(root / "template"), use_parsing=True),
            "encoder": avatar.write_demo_audio_encoder(root / "encoder.pth")}


def _openings_and_loudness(checkpoint, clip) -> tuple[np.ndarray, np.ndarray]:
    # torch with BatchNorm folded and channels_last: within 1-2 per value of the exact path, a third of its CPU
    model = TorchBackend(checkpoint, "ave", device="cpu", optimize=True)
    features = AudioFeatures(AudioEncoder(clip["encoder"], device="cpu").features_from_audio(clip["wav"]), "ave")
    frames = list(FrameRenderer(model).iter_frames(clip["templates"], features))
    schedule = ping_pong_schedule(len(frames), avatar.TEMPLATE_COUNT)
    openings = np.array([_mouth_opening(frame, k) for frame, k in zip(frames, schedule)])
    return openings, _loudness(clip["speech"], len(frames))


def test_the_shipped_avatar_opens_its_mouth_with_the_speech(demo_clip):
    with avatar.packaged(avatar.CHECKPOINT) as checkpoint:
        openings, loudness = _openings_and_loudness(checkpoint, demo_clip)
    correlation = np.corrcoef(openings, loudness)[0, 1]
    print("shipped", correlation, openings.round(3), loudness.round(1))
    assert correlation >= MIN_CORRELATION


def test_a_random_checkpoint_fails_the_same_bound(demo_clip):
    checkpoint = synthetic.save_random_checkpoint(demo_clip["root"] / "random.pth", "ave", seed=3)
    openings, loudness = _openings_and_loudness(checkpoint, demo_clip)
    correlation = np.corrcoef(openings, loudness)[0, 1] if openings.std() > 0 else 0.0
    print("random", correlation, openings.round(3), loudness.round(1))
    assert correlation < MIN_CORRELATION


@pytest.mark.parametrize(("argv", "message"), [
    (["--demo", "--checkpoint", "mine.pth"], "error: --demo serves the demo avatar with its own files: drop --checkpoint\n"),
    (["--template-dir", "tpl"], "error: missing --checkpoint, --audio-encoder (or --hubert-model): "
                                "give your avatar's files, or --demo for the demo avatar\n"),
])
def test_serve_takes_the_demo_avatar_or_all_of_your_own_files(argv, message, capsys):
    assert cli_status(["serve", *argv]) == 2
    assert capsys.readouterr().err == message
