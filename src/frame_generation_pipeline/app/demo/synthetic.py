"""Generated stand-ins for real inputs: template folders, random-weight checkpoints, features.

Used by the demo and the tests; nothing here is needed to render real data. Landmarks follow the
110-point PFLD layout shipped in `data/pfld110_mean_face.txt` (x, y in 0..1 across a face box).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import torch

from ...contract import SAMPLE_RATE, get_mode
from ...devices import tune_allocator
from ...inputs.landmarks import landmark_text
from ...inputs.templates import IMAGE_DIR, LANDMARK_DIR, PARSING_DIR
from ...models.audio_encoder import AudioEncoderNet
from ...models.hubert import HIDDEN
from ...models.network import SyncTalkUNet

#: A face box (x, y, size) in pixels for template k.
FaceBoxFn = Callable[[int], tuple[float, float, float]]


def mean_face_layout() -> np.ndarray:
    """The 110-point PFLD mean face, (110, 2) float64, relative to a unit face box."""
    text = resources.files(__package__).joinpath("data/pfld110_mean_face.txt").read_text()
    return np.array(text.split(), dtype=np.float64).reshape(-1, 2)


def moving_face_box(width: int, height: int, count: int) -> FaceBoxFn:
    """A face box of about 40% of the frame height drifting slowly around the frame's centre."""

    def box(k: int) -> tuple[float, float, float]:
        size = 0.42 * height
        phase = 2 * np.pi * k / max(count, 1)
        x = width / 2 - size / 2 + 0.04 * width * np.sin(phase)
        y = 0.12 * height + 0.03 * height * np.cos(phase)
        return x, y, size

    return box


#: A mouth as (opening, spread), each in 0..1: 0 opening is closed lips, 1 wide open; spread
#: runs from rounded (0, as in "oo") to wide (1, as in "ee").
Mouth = tuple[float, float]
#: How a template folder's frames are drawn: (frame(k, landmarks, face box, mouth) -> BGR uint8,
#: parsing(face box) -> BGR uint8 parsing mask).
Scene = tuple[Callable[[int, np.ndarray, tuple[float, float, float], Mouth], np.ndarray],
              Callable[[tuple[float, float, float]], np.ndarray]]
_SUBPIXEL = 4  # cv2 drawing shift: coordinates in 1/16 pixel, so the mouth changes smoothly


def _ellipse(image: np.ndarray, centre: tuple[float, float], axes: tuple[float, float], colour: tuple[int, int, int]) -> None:
    scale = 1 << _SUBPIXEL
    cv2.ellipse(image, (round(centre[0] * scale), round(centre[1] * scale)),
                (round(axes[0] * scale), round(axes[1] * scale)), 0, 0, 360, colour, -1, cv2.LINE_AA, _SUBPIXEL)


def draw_mouth(image: np.ndarray, box: tuple[float, float, float], mouth: Mouth) -> None:
    """Draw lips and a dark open interior for `mouth` on the face in `box` (x, y, size), in place."""
    x0, y0, size = box
    opening, spread = mouth
    centre = (x0 + size / 2, y0 + 0.8 * size)
    half_width = size * (0.09 + 0.07 * spread)
    half_height = size * (0.006 + 0.075 * opening)
    _ellipse(image, centre, (half_width + 0.02 * size, half_height + 0.022 * size), (70, 60, 185))
    _ellipse(image, centre, (half_width, half_height), (45, 25, 60))


def draw_frame(width: int, height: int, k: int, points: np.ndarray, box: tuple[float, float, float], mouth: Mouth) -> np.ndarray:
    """Scene k (background phase, face box, landmarks drawn as dots, noise) with `mouth`, BGR uint8."""
    x0, y0, size = box
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = (110 + 60 * np.sin((xx + 7 * k) / 37.0)).astype(np.uint8)
    image[..., 1] = (90 + 50 * np.cos((yy - 5 * k) / 29.0)).astype(np.uint8)
    image[..., 2] = (100 + 50 * np.sin((xx + yy + 3 * k) / 53.0)).astype(np.uint8)
    centre = (int(x0 + size / 2), int(y0 + size * 0.55))
    cv2.ellipse(image, (centre[0], int(y0 + size * 1.35)), (int(size * 0.9), int(size * 0.5)), 0, 0, 360, (60, 40, 150), -1)
    cv2.ellipse(image, centre, (int(size * 0.45), int(size * 0.58)), 0, 0, 360, (120, 160, 215), -1)
    for eye in (0.33, 0.67):
        cv2.circle(image, (int(x0 + eye * size), int(y0 + 0.42 * size)), max(2, int(size * 0.05)), (40, 30, 30), -1)
    draw_mouth(image, box, mouth)
    for x, y in points.astype(int):
        cv2.circle(image, (int(x), int(y)), 1, (200, 220, 255), -1)
    noise = np.random.default_rng(k).integers(0, 6, image.shape, dtype=np.uint8)
    return cv2.add(image, noise)


def _talking_mouth(k: int) -> Mouth:
    return 0.6 * abs(np.sin(k / 2.0)), 0.5


def _draw_parsing(width: int, height: int, box: tuple[float, float, float]) -> np.ndarray:
    x0, y0, size = box
    parsing = np.zeros((height, width, 3), np.uint8)
    cv2.ellipse(parsing, (int(x0 + size / 2), int(y0 + size * 0.55)), (int(size * 0.45), int(size * 0.58)), 0, 0, 360, (255, 0, 0), -1)
    cv2.rectangle(parsing, (int(x0 + size * 0.3), int(y0 + size * 1.05)), (int(x0 + size * 0.7), height), (0, 0, 255), -1)
    cv2.rectangle(parsing, (int(x0), int(y0 + size * 1.15)), (int(x0 + size * 0.2), height), (255, 255, 255), -1)
    return parsing


def template_points(count: int, face_box: FaceBoxFn) -> list[np.ndarray]:
    """The 110 landmarks (float64, slightly jittered) of templates 0..count-1 placed by `face_box`."""
    layout = mean_face_layout()
    rng = np.random.default_rng(count)
    points = []
    for k in range(count):
        x0, y0, size = face_box(k)
        points.append(np.array([x0, y0]) + layout * size + rng.normal(0, 0.4, layout.shape))
    return points


def make_templates(
    root: str | os.PathLike[str],
    count: int,
    width: int = 640,
    height: int = 480,
    parsing: bool = True,
    face_box: FaceBoxFn | None = None,
    mouth: Callable[[int], Mouth] = _talking_mouth,
    scene: Scene | None = None,
) -> Path:
    """Write a template folder of `count` drawn frames with 110-point landmarks (and parsing masks).

    `face_box(k)` places the face of template k (by default it drifts around the centre),
    `mouth(k)` shapes its mouth (by default it opens and closes from template to template) and
    `scene` draws the frames and parsing masks (by default `draw_frame`'s face on its moving background).
    """
    root = Path(root)
    for name in (IMAGE_DIR, LANDMARK_DIR) + ((PARSING_DIR,) if parsing else ()):
        (root / name).mkdir(parents=True, exist_ok=True)
    face_box = face_box or moving_face_box(width, height, count)
    draw, draw_parsing = scene or (lambda k, points, box, shape: draw_frame(width, height, k, points, box, shape),
                                   lambda box: _draw_parsing(width, height, box))
    for k, points in enumerate(template_points(count, face_box)):
        image = draw(k, points, face_box(k), mouth(k))
        cv2.imwrite(str(root / IMAGE_DIR / f"{k}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        (root / LANDMARK_DIR / f"{k}.lms").write_text(landmark_text(points))
        if parsing:
            cv2.imwrite(str(root / PARSING_DIR / f"{k}.png"), draw_parsing(face_box(k)))
    return root


#: JPEG quality of the drawn template frames.
JPEG_QUALITY = 92


def _calibrate_batchnorm(net: torch.nn.Module, make_inputs: Callable[[], tuple], generator: torch.Generator) -> tuple:
    """Measure BatchNorm running statistics on two batches of `make_inputs()`, then randomise the
    affine scale and shift; return the last inputs."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(2):
            inputs = make_inputs()
            net(*inputs)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.6, 1.4, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
    return inputs


def random_unet_state(mode: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random-weight U-Net state_dict for `mode` with realistic, non-trivial BatchNorm statistics.

    Running statistics are measured on random inputs (so activations stay in a sane range through
    the whole network), then scale and shift are randomised.
    """
    tune_allocator()
    spec = get_mode(mode)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SyncTalkUNet(spec.name)
    images, audio = _calibrate_batchnorm(
        net,
        lambda: (torch.rand((1, 6, 320, 320), generator=generator), torch.randn((1, *spec.audio_shape), generator=generator)),
        generator,
    )
    with torch.no_grad():
        # Scale the output layer so the sigmoid's input has mean 0 and std 1.5: outputs then
        # spread over [0, 1] instead of saturating, as a trained network's do.
        captured = []
        hook = net.outc.register_forward_hook(lambda _m, _i, out: captured.append(out))
        net.eval()(images, audio)
        hook.remove()
        logits = captured[0]
        scale = 1.5 / logits.std()
        bias = net.outc.conv.bias
        assert bias is not None  # OutConv's convolution has a bias
        net.outc.conv.weight.mul_(scale)
        bias.mul_(scale).sub_(scale * logits.mean())
    return net.state_dict()


def save_random_checkpoint(path: str | os.PathLike[str], mode: str, seed: int = 0, prefix: str = "") -> Path:
    """Save `random_unet_state` as a checkpoint file (keys prefixed with `prefix`, e.g. "module.")."""
    state = {prefix + k: v for k, v in random_unet_state(mode, seed).items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def random_features(mode: str, frames: int, seed: int = 0) -> np.ndarray:
    """Smoothly varying per-frame audio features (frames, frame_width) float32 for `mode`."""
    spec = get_mode(mode)
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (frames + 4, spec.frame_width)).astype(np.float32)
    kernel = np.ones(5, np.float32) / 5
    smooth = np.apply_along_axis(lambda column: np.convolve(column, kernel, mode="valid"), 0, base)
    return np.ascontiguousarray(smooth[:frames], dtype=np.float32)


def random_audio_encoder_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random-weight ave audio encoder state_dict with measured BatchNorm statistics."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = AudioEncoderNet()
    _calibrate_batchnorm(net, lambda: (torch.rand((16, 1, 80, 16), generator=generator) * 8 - 4,), generator)
    return net.eval().state_dict()


def save_random_audio_encoder(path: str | os.PathLike[str], seed: int = 0, prefix: str = "") -> Path:
    """Save `random_audio_encoder_state` as upstream saves `audio_visual_encoder.pth`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({prefix + k: v for k, v in random_audio_encoder_state(seed).items()}, path)
    return path


def save_random_hubert_model(folder: str | os.PathLike[str], layers: int = 1, seed: int = 0) -> Path:
    """Write a random-weight hubert model (hubert-large's front end and width, `layers` small
    transformer layers) with its feature extractor into `folder`, as `save_pretrained` does."""
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    folder = Path(folder)
    config = HubertConfig(hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
                          feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
                          num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16)
    torch.manual_seed(seed)
    HubertModel(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(folder)
    return folder
