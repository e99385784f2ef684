"""The live engine's feature streams: each utterance's feature rows computed while its speech
arrives, by the session's audio model (a SpeechEncoder: models/speech_encoder.py).

The streams themselves belong to their encoders: the ave FeatureStream (models/ave_stream.py,
rows equal to the offline rows, 0.45 s of lookahead) and HubertStream (models/hubert.py, whole for
known-length speech, in HubertWindows for open speech). The live modules take what they need of
them from here.
"""

from __future__ import annotations

from typing import Any

from ..models.ave_stream import LOOKAHEAD_SECONDS
from ..models.hubert import HubertWindows
from ..models.speech_encoder import FeatureRows, OpenSpeechWindows, SpeechEncoder

__all__ = ["LOOKAHEAD_SECONDS", "FeatureRows", "HubertWindows", "encoder_mode", "stream_for", "warm_up"]


def stream_for(encoder: SpeechEncoder[Any], known_length: bool, hubert: OpenSpeechWindows | None = None) -> FeatureRows:
    """The feature stream of one utterance for the session's audio model (`encoder.stream`)."""
    return encoder.stream(known_length, hubert)


def encoder_mode(encoder: SpeechEncoder[Any]) -> str:
    """The mode of the features the audio model computes."""
    return encoder.mode.name


def warm_up(encoder: SpeechEncoder[Any]) -> int:
    """Encode a little silence once (`encoder.warm_up`); the frames it stands for."""
    return encoder.warm_up()
