"""The hubert audio model (a local `facebook/hubert-large-ls960-ft` folder): speech -> (F, 2, 1024) features.

transformers' Wav2Vec2 feature extractor normalises the 16 kHz speech (zero mean, unit variance
over the utterance) and HubertModel's `last_hidden_state` gives 50 rows of 1024 per second. Long
speech is read in clips of 320 * 1000 samples, each with the 400 - 320 overlap the front end's
first kernel needs, so no row is lost or doubled; the remainder is the last clip. An odd row count
drops its last row, and pairs of rows make one 25 fps frame (docs/contract.md, "The hubert path").
Nothing is ever downloaded: the folder is what `save_pretrained` writes. torch and transformers
are imported when a model is loaded (the row arithmetic and HubertStages need neither).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.ffmpeg import AudioInfo
from ..audio.speech import load_speech
from ..contract import SAMPLE_RATE
from ..devices import resolve_device
from ..errors import AudioError, BackendUnavailableError, ModelFileError, install_hint

logger = logging.getLogger(__name__)

#: The front end's first convolution: a kernel of 400 samples with stride 320 (50 rows per second).
KERNEL, STRIDE = 400, 320
#: Upstream's clip: 1000 rows of speech per forward pass.
CLIP_SAMPLES = STRIDE * 1000
HIDDEN = 1024
#: Rows per 25 fps frame.
ROWS_PER_FRAME = 2
HOW_TO_GET = ("get one on a machine with internet: `huggingface-cli download facebook/hubert-large-ls960-ft "
              "--local-dir DIR`")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_NEEDED = ("config.json", "preprocessor_config.json")


def expected_rows(samples: int) -> int:
    """Hidden-state rows of `samples` samples: (samples - 80) // 320 (none below one kernel)."""
    return max(0, (samples - (KERNEL - STRIDE)) // STRIDE)


def hubert_frames(samples: int) -> int:
    """Video frames (25 fps) of hubert features of `samples` samples: two rows each, an odd last row dropped."""
    return expected_rows(samples) // ROWS_PER_FRAME


def clip_bounds(samples: int, clip_samples: int = CLIP_SAMPLES) -> list[tuple[int, int]]:
    """[start, end) of each clip: clip k from k * clip, one clip plus the 80-sample overlap long,
    then the remainder when it holds at least one kernel."""
    if clip_samples <= 0 or clip_samples % STRIDE:
        raise ValueError(f"clip_samples must be a positive multiple of {STRIDE}, got {clip_samples}")
    whole = samples // clip_samples
    bounds = [(k * clip_samples, min(samples, (k + 1) * clip_samples + KERNEL - STRIDE)) for k in range(whole)]
    if samples - whole * clip_samples >= KERNEL:
        bounds.append((whole * clip_samples, samples))
    return bounds


def rows_to_features(hidden: np.ndarray) -> np.ndarray:
    """(rows, 1024) hidden states -> (rows // 2, 2, 1024) per-frame features (an odd last row dropped)."""
    even = len(hidden) - len(hidden) % ROWS_PER_FRAME
    return np.ascontiguousarray(hidden[:even], dtype=np.float32).reshape(-1, ROWS_PER_FRAME, HIDDEN)


@dataclass(frozen=True)
class HubertStages:
    """Every stage of the hubert path: the decoded speech, the normalised input, the hidden states."""

    samples: np.ndarray  # (S,) float32 at 16 kHz
    input_values: np.ndarray  # (S,) float32
    hidden: np.ndarray  # (rows, 1024) float32
    clip_samples: int = CLIP_SAMPLES

    @property
    def features(self) -> np.ndarray:
        """(F, 2, 1024) float32 per-frame features."""
        return rows_to_features(self.hidden)


def check_model_folder(folder: Path) -> None:
    """Refuse, in one line, a folder that is not a saved hubert model with its feature extractor."""
    if not folder.is_dir():
        raise ModelFileError(folder, f"no hubert model folder here: {HOW_TO_GET}")
    missing = [name for name in _NEEDED if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in _WEIGHTS):
        missing.append(" or ".join(_WEIGHTS))
    if missing:
        raise ModelFileError(folder, f"incomplete hubert model folder (missing {', '.join(missing)}): {HOW_TO_GET}")


class HubertEncoder:
    """A local hubert model folder loaded once, turning 16 kHz speech into hubert features.

    Args:
        model_dir: what `save_pretrained` writes (config.json, the weights, preprocessor_config.json).
        device: "cpu", "cuda", "cuda:N", or None / "auto".
        clip_samples: samples per forward pass (upstream: 320 * 1000; a multiple of 320).
    """

    def __init__(self, model_dir: str | os.PathLike[str], device: str | None = None,
                 clip_samples: int = CLIP_SAMPLES) -> None:
        self.model_dir = Path(model_dir)
        check_model_folder(self.model_dir)
        clip_bounds(0, clip_samples)  # refuses a clip that is not whole rows
        self.clip_samples = clip_samples
        self.device = resolve_device(device)
        import torch

        try:
            from transformers import HubertModel, Wav2Vec2FeatureExtractor
            from transformers.utils import logging as transformers_logging
        except ImportError:
            raise BackendUnavailableError(f"--hubert-model needs transformers: {install_hint('hubert')}") from None

        transformers_logging.disable_progress_bar()  # the library logs, it draws no bars
        try:
            self.processor = Wav2Vec2FeatureExtractor.from_pretrained(self.model_dir, local_files_only=True)
            model = HubertModel.from_pretrained(self.model_dir, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelFileError(self.model_dir, f"not a loadable hubert model ({exc}): {HOW_TO_GET}") from None
        if model.config.hidden_size != HIDDEN:
            raise ModelFileError(self.model_dir, f"hidden size {model.config.hidden_size}, SyncTalk_2D's hubert mode "
                                 f"reads {HIDDEN} (facebook/hubert-large-ls960-ft): {HOW_TO_GET}")
        self.model = model.eval().to(self.device)

    def normalise(self, samples: np.ndarray) -> np.ndarray:
        """16 kHz mono samples -> the feature extractor's input values (float32, same length)."""
        values = self.processor(np.asarray(samples, np.float32), sampling_rate=SAMPLE_RATE, return_tensors="np")
        return np.asarray(values.input_values[0], np.float32)

    def encode(self, input_values: np.ndarray) -> np.ndarray:
        """One clip of input values -> its (rows, 1024) float32 last hidden states."""
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(input_values, np.float32))[None].to(self.device)
            return self.model(tensor).last_hidden_state[0].cpu().numpy()

    def hidden_states(self, input_values: np.ndarray, source: str = "<audio>", clip_samples: int | None = None) -> np.ndarray:
        """All input values, clip by clip (of `clip_samples`, default the encoder's) -> (expected_rows, 1024)."""
        expected = expected_rows(len(input_values))
        if expected < ROWS_PER_FRAME:
            raise AudioError(source, f"speech of {len(input_values)} samples is too short for hubert features "
                             f"(at least {KERNEL + STRIDE} samples at 16 kHz give one frame)")
        hidden = np.concatenate([self.encode(input_values[start:end])
                                 for start, end in clip_bounds(len(input_values), clip_samples or self.clip_samples)])
        if len(hidden) != expected:
            raise AudioError(source, f"the hubert model gave {len(hidden)} rows, (samples - 80) // 320 is {expected}: "
                             "its front end is not hubert-large's")
        return hidden

    def stages(self, samples: np.ndarray, source: str = "<audio>") -> HubertStages:
        """Every stage from 16 kHz mono samples to features (what a reference bundle keeps)."""
        samples = np.asarray(samples, np.float32)
        input_values = self.normalise(samples)
        return HubertStages(samples, input_values, self.hidden_states(input_values, source), self.clip_samples)

    def features_from_samples(self, samples: np.ndarray, source: str = "<audio>") -> np.ndarray:
        """16 kHz mono samples -> (F, 2, 1024) float32 hubert features."""
        return self.stages(samples, source).features

    def features_from_audio(self, audio: str | os.PathLike[str] | AudioInfo) -> np.ndarray:
        """Decode a speech file (its first channel, at 16 kHz) into (F, 2, 1024) hubert features."""
        source = str(audio.path if isinstance(audio, AudioInfo) else audio)
        features = self.features_from_samples(load_speech(audio, first_channel=True), source)
        logger.info("%s: %d hubert feature rows", source, len(features))
        return features


def save_random_model(folder: str | os.PathLike[str], layers: int = 1, seed: int = 0) -> Path:
    """Write a random-weight hubert model (hubert-large's front end and width, `layers` small
    transformer layers) with its feature extractor into `folder`, as `save_pretrained` does."""
    import torch
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
