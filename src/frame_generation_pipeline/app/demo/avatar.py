"""The demo avatar: its scene, its shipped trained checkpoint, and its seeded audio encoder.

The checkpoint `data/avatar_ave.pth` is a SyncTalk_2D 328 ave U-Net trained by
`tools/train_demo_avatar.py` on this scene (the drawn face of `face.py`, swaying gently on a calm
background, whose lips follow the speech). Its audio features come from an ave encoder whose
weights are drawn from a seed (`demo_audio_encoder_state`): NumPy's PCG64 uniform draws are the
same on every machine, so the encoder is regenerated bit for bit instead of shipped.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ...models.audio_encoder import BLOCKS, AudioEncoderNet
from . import face, synthetic

#: The scene: templates of this size, the face drifting over this many positions.
WIDTH, HEIGHT, TEMPLATE_COUNT = 1280, 720, 24
#: The mouth the templates show (closed lips): the network learned to ignore the template's mouth.
REST_MOUTH: synthetic.Mouth = (0.0, 0.5)
ENCODER_SEED = 20260
#: SHA-256 of the encoder's tensors (names and bytes in state_dict order), as training used them.
ENCODER_SHA256 = "a9770269418be3759bd8dfcc678dfe9150d2a905f17c75b9b5db6798f62680de"
CHECKPOINT = "data/avatar_ave.pth"
#: Speech the avatar was not trained on (espeak-ng, a voice and sentence outside the training set), its
#: sentence (also said in the local voice where the [voice] extra is installed), and the silence around it.
SPEECH = "data/demo_speech.wav"
SENTENCE = "Hello, I am the demo avatar. Watch my mouth move as I speak."
PAD_SECONDS = 0.4


def face_box(k: int) -> tuple[float, float, float]:
    """The face box (x, y, size) of scene position k: the head swaying gently around the frame's centre."""
    size = 0.42 * HEIGHT
    phase = 2 * np.pi * k / TEMPLATE_COUNT
    return WIDTH / 2 - size / 2 + 0.03 * WIDTH * np.sin(phase), 0.19 * HEIGHT + 0.02 * HEIGHT * np.cos(phase), size


def draw_scene(k: int, mouth: synthetic.Mouth, head: np.ndarray | None = None) -> np.ndarray:
    """Scene position k with `mouth`, BGR uint8 (`head`: `face.draw_head` of position k, if at hand)."""
    return face.draw_avatar(WIDTH, HEIGHT, k, face_box(k), mouth, head)


def make_avatar_templates(root: str | os.PathLike[str]) -> Path:
    """Write the avatar's template folder (frames with the rest mouth, landmarks, parsing)."""
    scene = (lambda k, _points, _box, mouth: draw_scene(k, mouth), lambda box: face.draw_parsing(WIDTH, HEIGHT, box))
    return synthetic.make_templates(root, TEMPLATE_COUNT, WIDTH, HEIGHT, parsing=True, face_box=face_box,
                                    mouth=lambda _k: REST_MOUTH, scene=scene)


def demo_audio_encoder_state(seed: int = ENCODER_SEED) -> dict[str, torch.Tensor]:
    """The demo's ave audio encoder weights, drawn from `seed` identically on every machine.

    Convolutions are uniform with He variance (half of it in residual blocks, so activations
    stay in range through the 13 blocks), biases zero; BatchNorm is the identity (mean 0,
    variance 1, scale 1, shift 0).
    """
    rng = np.random.default_rng(seed)
    with torch.device("meta"):
        layout = AudioEncoderNet().state_dict()
    state = {}
    for key, meta in layout.items():
        block, _, _, name = key.split(".")
        shape = tuple(meta.shape)
        if key.endswith("conv_block.0.weight"):
            fan_in = int(np.prod(shape[1:]))
            gain = 1.0 if BLOCKS[int(block)][5] else 2.0
            bound = np.sqrt(3.0 * gain / fan_in)
            values = (2.0 * rng.random(shape) - 1.0) * bound
        elif name in ("weight", "running_var"):
            values = np.ones(shape)
        else:
            values = np.zeros(shape)
        state[key] = torch.from_numpy(np.asarray(values, dtype=np.int64 if name == "num_batches_tracked" else np.float32))
    return state


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state_dict's names and tensor bytes, in order."""
    digest = hashlib.sha256()
    for key, tensor in state.items():
        digest.update(key.encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_demo_audio_encoder(path: str | os.PathLike[str]) -> Path:
    """Save the demo's audio encoder where the pipeline reads an `audio_visual_encoder.pth`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(demo_audio_encoder_state(), path)
    return path


@contextmanager
def packaged(name: str) -> Iterator[Path]:
    """A file path for one of the package's data files (CHECKPOINT, SPEECH) while the block runs."""
    with resources.as_file(resources.files(__package__).joinpath(name)) as path:
        yield Path(path)
