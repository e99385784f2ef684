"""The ave audio encoder (`audio_visual_encoder.pth`): speech -> (F, 512) ave features.

13 conv blocks (conv with bias, BatchNorm, ReLU after the residual add where there is one) map a
(1, 80, 16) log-mel window to 512 values. Features are [first, all windows, last]: F = n + 2 rows
for n windows, one row per 25 fps video frame.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..audio.mel import MEL_WINDOW, N_MELS, SpeechStages, frames_for_samples, log_mel_spectrogram, mel_windows
from ..contract import get_mode
from ..devices import resolve_device
from ..errors import CheckpointError
from ..files import file_sha256
from .ave_stream import FeatureStream
from .checkpoints import SWAPPED, describe_differences, layout_differences, looks_like_unet, read_state_dict
from .speech_encoder import OpenSpeechWindows, SpeechEncoder

if TYPE_CHECKING:
    from .export import ExportReport

logger = logging.getLogger(__name__)

#: (cin, cout, kernel, stride, padding, residual) of each block (docs/contract.md).
BLOCKS = (
    (1, 32, 3, 1, 1, False), (32, 32, 3, 1, 1, True), (32, 32, 3, 1, 1, True),
    (32, 64, 3, (3, 1), 1, False), (64, 64, 3, 1, 1, True), (64, 64, 3, 1, 1, True),
    (64, 128, 3, 3, 1, False), (128, 128, 3, 1, 1, True), (128, 128, 3, 1, 1, True),
    (128, 256, 3, (3, 2), 1, False), (256, 256, 3, 1, 1, True),
    (256, 512, 3, 1, 0, False), (512, 512, 1, 1, 0, False),
)
_PREFIXES = ("module.", "audio_encoder.")


class ConvBlock(nn.Module):
    """Conv2d (with bias) + BatchNorm2d, then ReLU, after adding the input when residual."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int], padding: int, residual: bool) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        return self.act(out + x if self.residual else out)


class AudioEncoderNet(nn.Sequential):
    """The encoder as a Sequential whose state_dict keys are upstream's (`0.conv_block.0.weight`...)."""

    def __init__(self) -> None:
        super().__init__(*(ConvBlock(*block) for block in BLOCKS))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 1, 80, 16) log-mel windows -> (B, 512)."""
        return super().forward(mel).flatten(1)


class AudioEncoder(SpeechEncoder[SpeechStages]):
    """A loaded `audio_visual_encoder.pth` that turns speech into (F, 512) ave features.

    Args:
        checkpoint_path: the encoder's state_dict (`module.` / `audio_encoder.` prefixes accepted).
        device: "cpu", "cuda", "cuda:N", or None / "auto".
    """

    mode = get_mode("ave")

    def __init__(self, checkpoint_path: str | os.PathLike[str], device: str | None = None) -> None:
        self.checkpoint_path = Path(checkpoint_path)
        self.device = resolve_device(device)
        state = read_state_dict(self.checkpoint_path, _PREFIXES)
        network = AudioEncoderNet()
        differences = layout_differences(state, {k: v.shape for k, v in network.state_dict().items()})
        if any(differences) and looks_like_unet(state):
            raise CheckpointError(self.checkpoint_path, f"holds a SyncTalk_2D U-Net, not the ave audio encoder: {SWAPPED}")
        if any(differences):
            raise CheckpointError(
                self.checkpoint_path, f"not an ave audio encoder checkpoint: {describe_differences(*differences)}"
            )
        network.load_state_dict(state)
        self.network = network.eval().to(self.device)

    def export_to_onnx(self, output_path: str | os.PathLike[str], opset_version: int = 17) -> ExportReport:
        """Export to ONNX (`mel` -> `features`, dynamic batch), checked in onnxruntime against torch."""
        from .export import export_audio_encoder

        return export_audio_encoder(self.network, output_path, opset_version, file_sha256(self.checkpoint_path))

    def encode_windows(self, windows: np.ndarray) -> np.ndarray:
        """(n, 1, 80, 16) mel windows -> (n, 512) float32 encodings.

        One window per forward pass: oneDNN picks batch-dependent kernels for most of these
        convolutions, and encodings must not depend on how many windows arrived together (a
        live stream encodes them as they come; docs/contract.md).
        """
        with torch.inference_mode():
            outputs = [self.network(torch.from_numpy(np.ascontiguousarray(window[None])).to(self.device)).cpu().numpy()
                       for window in windows]
        return np.concatenate(outputs).astype(np.float32, copy=False) if outputs else np.empty((0, 512), np.float32)

    def stages(self, samples: np.ndarray, source: str = "<audio>") -> SpeechStages:
        """Every stage from 16 kHz mono samples to features (what a reference bundle keeps)."""
        mel = log_mel_spectrogram(samples)
        windows = mel_windows(mel, source)
        encodings = self.encode_windows(windows)
        return SpeechStages(np.asarray(samples, np.float32), mel, windows, encodings)

    @property
    def path(self) -> Path:
        """The checkpoint file."""
        return self.checkpoint_path

    @staticmethod
    def frame_count(samples: int, source: str = "<audio>") -> int:
        """Frames of ave features of `samples` samples (windows + 2); AudioError below 0.2 s."""
        return frames_for_samples(samples, source)

    def stream(self, known_length: bool, windows: OpenSpeechWindows | None = None,
               source: str = "<stream>") -> FeatureStream:
        """A FeatureStream, encoding each window as soon as it is final (the same rows either way)."""
        return FeatureStream(self, source)

    def warm_up(self) -> int:
        """Encode one window of silence; the frames it stands for."""
        self.encode_windows(np.zeros((1, 1, N_MELS, MEL_WINDOW), np.float32))
        return 1
