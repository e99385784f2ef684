"""The hubert audio model (a local `facebook/hubert-large-ls960-ft` folder): speech -> (F, 2, 1024) features.

transformers' Wav2Vec2 feature extractor normalises the 16 kHz speech (zero mean, unit variance
over the utterance) and HubertModel's `last_hidden_state` gives 50 rows of 1024 per second. Long
speech is read in clips of 320 * 1000 samples, each with the 400 - 320 overlap the front end's
first kernel needs, so no row is lost or doubled; the remainder is the last clip. An odd row count
drops its last row, and pairs of rows make one 25 fps frame (docs/contract.md, "The hubert path").
Nothing is ever downloaded: the folder is what `save_pretrained` writes. torch and transformers
are imported when a model is loaded (the row arithmetic, HubertStages and HubertStream need neither).
Live, HubertStream computes the rows of speech that arrives in pieces (docs/live.md, "hubert").
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.mel import frames_for_samples
from ..checks import require_int
from ..contract import AUDIO_WINDOW, SAMPLE_RATE, get_mode
from ..devices import resolve_device
from ..errors import AudioError, BackendUnavailableError, ModelFileError, install_hint
from .ave_stream import LOOKAHEAD_SECONDS
from .speech_encoder import OpenSpeechWindows, SpeechEncoder

logger = logging.getLogger(__name__)

#: The front end's first convolution: a kernel of 400 samples with stride 320 (50 rows per second).
KERNEL, STRIDE = 400, 320
#: Upstream's clip: 1000 rows of speech per forward pass.
CLIP_SAMPLES = STRIDE * 1000
HIDDEN = 1024
#: Rows per 25 fps frame.
ROWS_PER_FRAME = 2
_HALF = AUDIO_WINDOW // 2
HOW_TO_GET = ("get one on a machine with internet: `huggingface-cli download facebook/hubert-large-ls960-ft "
              "--local-dir DIR`")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_NEEDED = ("config.json", "preprocessor_config.json")


def expected_rows(samples: int) -> int:
    """Hidden-state rows of `samples` samples: (samples - 80) // 320 (none below one kernel)."""
    return max(0, (samples - (KERNEL - STRIDE)) // STRIDE)


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


class HubertEncoder(SpeechEncoder[HubertStages]):
    """A local hubert model folder loaded once, turning 16 kHz speech into (F, 2, 1024) hubert features.

    Args:
        model_dir: what `save_pretrained` writes (config.json, the weights, preprocessor_config.json).
        device: "cpu", "cuda", "cuda:N", or None / "auto".
        clip_samples: samples per forward pass (upstream: 320 * 1000; a multiple of 320).
    """

    mode = get_mode("hubert")
    first_channel = True  # upstream's hubert path reads a file's first channel

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

    @property
    def path(self) -> Path:
        """The model folder."""
        return self.model_dir

    @staticmethod
    def frame_count(samples: int, source: str = "<audio>") -> int:
        """Frames (25 fps) of hubert features of `samples` samples: two rows each, an odd last row
        dropped; speech shorter than the ave path's 0.2 s is refused (AudioError) as a render refuses it."""
        frames_for_samples(samples, source)
        return expected_rows(samples) // ROWS_PER_FRAME

    def stream(self, known_length: bool, windows: OpenSpeechWindows | None = None,
               source: str = "<stream>") -> HubertStream:
        """A HubertStream: whole when the length is known, else in `windows` (default HubertWindows())."""
        return HubertStream(self, known_length, windows, source)

    def warm_up(self) -> int:
        """Encode a second of silence; the frames it stands for."""
        self.encode(np.zeros(SAMPLE_RATE, np.float32))
        return SAMPLE_RATE // STRIDE // ROWS_PER_FRAME


@dataclass(frozen=True)
class HubertWindows:
    """How open speech is encoded live with hubert (rows: 50 per second): each forward pass makes
    `window` new rows, reading `context` rows of speech before them and `lookahead` rows after."""

    window: int = 25
    context: int = 50
    lookahead: int = 25

    def __post_init__(self) -> None:
        for name in ("window", "context", "lookahead"):
            require_int(getattr(self, name), name, 1 if name == "window" else 0)

    @property
    def lookahead_seconds(self) -> float:
        """Speech after a frame's time that it waits for, at worst: rows through its window's last
        (16 rows on), then the rest of that row's window and the lookahead (docs/live.md)."""
        rows = _HALF * ROWS_PER_FRAME + self.window - 1 + self.lookahead
        return (rows * STRIDE + KERNEL - STRIDE) / SAMPLE_RATE


class HubertStream:
    """The hubert feature rows of one utterance as its 16 kHz samples arrive, with FeatureStream's
    interface. A known-length utterance is encoded whole when it ends, as upstream encodes a file
    (its frames equal the offline ones); open speech is encoded in windows (HubertWindows) as
    soon as their lookahead has arrived, within the measured bound of the offline rows."""

    def __init__(self, encoder: HubertEncoder, known_length: bool, windows: OpenSpeechWindows | None = None,
                 source: str = "<stream>") -> None:
        self.encoder, self.known_length, self.settings, self.source = encoder, known_length, windows or HubertWindows(), source
        self._speech = np.empty(0, np.float32)
        self._speech_first = 0  # sample index of _speech[0]
        self._total = 0
        self._hidden = np.empty((0, HIDDEN), np.float32)
        self._hidden_first = 0  # row index of _hidden[0]
        self.rows = 0  # hidden rows computed so far
        self.count: int | None = None
        self.extra_lookahead_seconds = 0.0  # beyond the ave path's, which the session's start delay holds
        if not known_length:
            self.extra_lookahead_seconds = max(0.0, self.settings.lookahead_seconds - LOOKAHEAD_SECONDS)

    @property
    def windows(self) -> int:
        """Frames encoded so far (what the session times the encoder by)."""
        return self.rows // ROWS_PER_FRAME

    def push(self, samples: np.ndarray) -> None:
        """Take more speech (16 kHz mono float32); open speech encodes every window now complete."""
        self._speech = np.concatenate([self._speech, np.asarray(samples, np.float32)])
        self._total += len(samples)
        if not self.known_length:
            self._encode_windows(final=False)

    def finish(self) -> None:
        """The speech has ended: encode the rest; AudioError if it holds less than one frame."""
        total = expected_rows(self._total)
        if total < ROWS_PER_FRAME:
            raise AudioError(self.source, f"too short for hubert features: {self._total} samples")
        if self.known_length:
            self._hidden = self.encoder.stages(self._speech, self.source).hidden
            self.rows = len(self._hidden)
        else:
            self._encode_windows(final=True)
        self.count = total // ROWS_PER_FRAME

    def _encode_windows(self, final: bool) -> None:
        available = expected_rows(self._total)
        settings = self.settings
        while self.rows < available:
            end = self.rows + settings.window
            if not final and end + settings.lookahead > available:
                return
            left, right = max(0, self.rows - settings.context), min(end + settings.lookahead, available)
            begin = left * STRIDE - self._speech_first
            # the last window reads the speech to its end, as the offline normalisation does
            stop = len(self._speech) if final and right == available else begin + (right - left) * STRIDE + KERNEL - STRIDE
            span = self._speech[begin:stop]
            hidden = self.encoder.encode(self.encoder.normalise(span))
            end = min(end, available)
            self._hidden = np.concatenate([self._hidden, hidden[self.rows - left : end - left]])
            self.rows = end
            keep = max(0, self.rows - settings.context) * STRIDE - self._speech_first
            self._speech, self._speech_first = self._speech[keep:], self._speech_first + keep

    def ready(self, frame: int) -> bool:
        """True when frame `frame`'s audio window (frames frame-8..frame+7) is final."""
        if self.count is not None:
            return frame < self.count
        return self.rows >= (frame + _HALF) * ROWS_PER_FRAME

    def window(self, frame: int) -> np.ndarray:
        """The network audio input of frame `frame`: frames frame-8..frame+7 as (32, 32, 32) float32."""
        rows = np.zeros((AUDIO_WINDOW, ROWS_PER_FRAME * HIDDEN), np.float32)
        for k, j in enumerate(range(frame - _HALF, frame + _HALF)):
            if j >= 0 and (self.count is None or j < self.count):
                first = j * ROWS_PER_FRAME - self._hidden_first
                rows[k] = self._hidden[first : first + ROWS_PER_FRAME].reshape(-1)
        return rows.reshape(HubertEncoder.mode.audio_shape)

    def release(self, before_frame: int) -> None:
        """Forget the rows no frame from `before_frame` on reads (frames < before_frame - 8)."""
        drop = max(0, (before_frame - _HALF) * ROWS_PER_FRAME) - self._hidden_first
        if drop > 0:
            self._hidden, self._hidden_first = self._hidden[drop:], self._hidden_first + drop

    def held_rows(self) -> np.ndarray:
        """The hidden rows still held, (rows, 1024): all of them until `release` forgets some."""
        return self._hidden

    def state_bytes(self) -> int:
        """Memory held by the stream's arrays (open speech: bounded by the context and the lookahead)."""
        return self._speech.nbytes + self._hidden.nbytes
