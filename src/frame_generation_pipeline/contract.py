"""The numbers of the per-frame contract (docs/contract.md): modes, tensor shapes, sizes, rates.

Every module that needs one of these imports it from here; none is written down twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from .errors import ConfigurationError

#: Consecutive feature rows the network sees for one output frame (rows i-8 .. i+7).
AUDIO_WINDOW = 16
#: Side of the square a crop is resized to before its 4-pixel ring is cut off.
CROP_SIZE = 328
#: Side of the square the network reads and writes.
MODEL_SIZE = 320
#: Width of the ring between CROP_SIZE and MODEL_SIZE.
BORDER = (CROP_SIZE - MODEL_SIZE) // 2
#: One network image input: [real BGR, masked BGR] / 255, channels first.
INPUT_SHAPE = (6, MODEL_SIZE, MODEL_SIZE)
#: One network output: BGR in [0, 1] after the sigmoid.
OUTPUT_SHAPE = (3, MODEL_SIZE, MODEL_SIZE)
#: Rows and columns of the inner 320x320 region that the mask blacks out (inclusive ranges 5..309, 5..314).
MASK_ROWS, MASK_COLS = slice(5, 310), slice(5, 315)
#: The optional step after the paste (render/blend.py): "none" is the exact paste, the contract's.
BLEND_MODES = ("none", "feather")
#: Default feather ramp, in frame pixels inward from the square's edge (docs/rendering.md, "Seamless paste").
DEFAULT_BLEND_WIDTH = 24
#: Speech is resampled to this rate (Hz) before the mel spectrogram.
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class ModeSpec:
    """Shapes and defaults of one audio mode.

    Attributes:
        name: "ave", "hubert" or "wenet".
        audio_shape: the shape of one network audio input (C, H, W), without the batch axis.
        fps: the frame rate the mode's checkpoints were trained for (one feature row per frame).
    """

    name: str
    audio_shape: tuple[int, int, int]
    fps: int

    @property
    def frame_width(self) -> int:
        """Number of feature values per output frame (one row of a per-frame feature array)."""
        return prod(self.audio_shape) // AUDIO_WINDOW


MODES: dict[str, ModeSpec] = {
    "ave": ModeSpec("ave", (32, 16, 16), 25),
    "hubert": ModeSpec("hubert", (32, 32, 32), 25),
    "wenet": ModeSpec("wenet", (256, 16, 32), 20),
}


def get_mode(name: str | ModeSpec) -> ModeSpec:
    """The spec of mode `name` (a ModeSpec passes through); ConfigurationError naming the choices."""
    if isinstance(name, ModeSpec):
        return name
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise ConfigurationError(f"unknown mode {name!r}: expected one of {', '.join(MODES)}") from None


#: ONNX opsets the exports are made and checked for (11 for older mobile runtimes).
ONNX_OPSETS = range(11, 21)

#: The audio models that compute features from speech, by their option name, and the mode of those features.
AUDIO_MODELS = {"audio_encoder": "ave", "hubert_model": "hubert"}


def mode_for_audio_model(mode: str | None, audio_model: str | None, feature_files: bool = True) -> str:
    """The checkpoint's mode: `mode` as given, else the one audio model `audio_model` (a key of
    AUDIO_MODELS, or None) computes features for, else ave. A given mode that the audio model
    does not compute features for is refused (ave and hubert checkpoints look alike, so only an
    explicit mode can disagree); the refusal names --audio-features where `feature_files` are taken."""
    computed = AUDIO_MODELS[audio_model] if audio_model is not None else None
    if mode is not None and audio_model is not None and computed is not None and get_mode(mode).name != computed:
        option = "--" + audio_model.replace("_", "-")
        models = [f"--{key.replace('_', '-')}" for key, made in AUDIO_MODELS.items() if made == get_mode(mode).name]
        give = " or ".join([*models, *(["--audio-features"] if feature_files else [])])
        if not give:
            raise ConfigurationError(f"{option} computes {computed} features, but --mode is {mode!r} and nothing here "
                                     f"computes {mode} features: use a checkpoint of mode {computed}")
        raise ConfigurationError(f"{option} computes {computed} features, but --mode is {mode!r}: give {give} for mode "
                                 f"{mode}, or a checkpoint of mode {computed}")
    return get_mode(mode or computed or "ave").name
