"""The voice-agent adapters: Pipecat's SyncTalkVideoService under `run_test` with a fake TTS (2 s of
24 kHz speech in 20 ms chunks) and LiveKit's SyncTalkVideoGenerator driven as AvatarRunner drives it;
both on a real-time live session; and the Pipecat example end to end over WebRTC."""

from __future__ import annotations

import asyncio
import time

import cv2
import numpy as np
import pytest
import soundfile

from frame_generation_pipeline import FrameGenerationPipeline, TemplateSet
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
from frame_generation_pipeline.audio.mel import frames_for_samples
from frame_generation_pipeline.audio.speech import load_speech
from frame_generation_pipeline.errors import ArgumentTypeError, ConfigurationError
from frame_generation_pipeline.inputs.templates import ping_pong_index
from frame_generation_pipeline.live.pacing import DEFAULT_MARGIN
from frame_generation_pipeline.models.audio_encoder import AudioEncoder
from frame_generation_pipeline.models.ave_stream import LOOKAHEAD_SECONDS
from frame_generation_pipeline.models.silence import rest_window
from frame_generation_pipeline.render.blend import NO_BLEND, Blend
from frame_generation_pipeline.render.cropped import compose, crop_template

from .test_serve import in_namespace, offset_of

soxr = pytest.importorskip("soxr")
TTS_RATE, CHUNK = 24000, 480  # a TTS's 20 ms chunks at 24 kHz
SIZE = (160, 120)  # width, height of the templates
NS_PER_SLOT = 40_000_000


@pytest.fixture(scope="module")
def agent_world(tmp_path_factory, checkpoints, encoder_path):
    root = tmp_path_factory.mktemp("agents")
    speech16 = load_speech(write_speech_like_wav(root / "speech.wav", 2.0, seed=4))
    tts = (soxr.resample(speech16, 16000, TTS_RATE) * 32767).astype(np.int16)  # what the fake TTS says
    heard = soxr.resample(tts.astype(np.float32) / 32768, TTS_RATE, 16000)  # the speech at 16 kHz, one shot
    return {"root": root, "tts": tts, "heard": np.round(heard * 32768).clip(-32768, 32767).astype(np.int16),
            "heard_float": heard, "encoder": AudioEncoder(encoder_path, device="cpu"),
            "pipeline": FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="onnxruntime", precision="fp32"),
            "exact": FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="torch"),
            "templates": synthetic.make_templates(root / "tpl3", 3, *SIZE, parsing=False),
            "one_template": synthetic.make_templates(root / "tpl1", 1, *SIZE, parsing=False)}


# --- Pipecat ------------------------------------------------------------------------------------

def _tts_frames(tts: np.ndarray) -> list:
    from pipecat.frames.frames import TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame

    chunks = [TTSAudioRawFrame(tts[i : i + CHUNK].tobytes(), TTS_RATE, 1) for i in range(0, len(tts), CHUNK)]
    return [TTSStartedFrame(), *chunks, TTSStoppedFrame()]


def _run(service, frames) -> list:
    from pipecat.pipeline.worker import PipelineParams
    from pipecat.tests.utils import run_test

    down, _ = asyncio.run(run_test(service, frames_to_send=frames, pipeline_params=PipelineParams(enable_metrics=True),
                                   start_timeout=30))
    return list(down)


def _slots(down: list) -> list[tuple[int, bytes, bytes | None]]:
    """(slot, RGB image, its audio or None) of every image the service pushed, in order."""
    from pipecat.frames.frames import OutputImageRawFrame, TTSAudioRawFrame

    slots = []
    for i, frame in enumerate(down):
        if isinstance(frame, OutputImageRawFrame):
            after = down[i + 1] if i + 1 < len(down) else None
            audio = after.audio if isinstance(after, TTSAudioRawFrame) and after.pts == frame.pts else None
            slots.append((frame.pts // NS_PER_SLOT, frame.image, audio))
    return slots


def _timed(service) -> dict:
    """Wall-clock times (time.time, as Pipecat's metrics) around the service's work, recorded as it
    runs: "audio_in", when its first TTS audio frame went into process_frame and when that call
    returned; "pushed", (frame, when) for every frame it pushed."""
    from pipecat.frames.frames import TTSAudioRawFrame
    from pipecat.processors.frame_processor import FrameDirection

    times: dict = {"audio_in": None, "pushed": []}
    process, push = service.process_frame, service.push_frame

    async def process_frame(frame, direction):
        began = time.time()
        await process(frame, direction)
        if isinstance(frame, TTSAudioRawFrame) and times["audio_in"] is None:
            times["audio_in"] = (began, time.time())

    async def push_frame(frame, direction=FrameDirection.DOWNSTREAM):
        times["pushed"].append((frame, time.time()))
        await push(frame, direction)

    service.process_frame, service.push_frame = process_frame, push_frame
    return times


def _template_rgb(folder, index: int) -> bytes:
    return cv2.cvtColor(TemplateSet.from_folder(folder).load(index).image, cv2.COLOR_BGR2RGB).tobytes()


def _idle_rgb(session, index: int) -> set[bytes]:
    """What an idle slot on template `index` may show in real time: its rest frame (the render of silence,
    computed here as offline, pasted as the session pastes), or (a cold start, while it is computed) the
    template as it is."""
    cropped = crop_template(session.templates.load(index))
    output = session.model.run(cropped.network_input[None], rest_window(session.encoder)[None])[0]
    return {cv2.cvtColor(image, cv2.COLOR_BGR2RGB).tobytes()
            for image in (compose(cropped, output, session.driver.blend), cropped.template.image)}


def test_pipecat_service_shows_the_tts_speech_at_25_fps_with_its_audio(agent_world):
    from pipecat.frames.frames import MetricsFrame, OutputImageRawFrame, TTSAudioRawFrame, TTSStoppedFrame
    from pipecat.metrics.metrics import TTFBMetricsData

    from frame_generation_pipeline.integrations.pipecat import SyncTalkVideoService

    service = SyncTalkVideoService(pipeline=agent_world["pipeline"], template_dir=agent_world["templates"],
                                   audio_encoder=agent_world["encoder"])
    times = _timed(service)
    down = _run(service, _tts_frames(agent_world["tts"]))
    images = [frame for frame in down if isinstance(frame, OutputImageRawFrame)]
    assert {(frame.size, frame.format) for frame in images} == {(SIZE, "RGB")}
    slots = _slots(down)
    assert [slot for slot, _, _ in slots] == list(range(len(slots))), "one image per slot, every slot, in order"
    speech = [i for i, (_, _, audio) in enumerate(slots) if audio is not None]
    session, said = service.avatar.session, len(agent_world["heard"])
    assert len(speech) == session.frames_for(said) and speech == list(range(speech[0], speech[0] + len(speech))), \
        "2 s of speech and its run into silence"
    idle = {index: _idle_rgb(session, index) for index in range(3)}
    assert all(image in idle[ping_pong_index(slot, 3)] for slot, image, audio in slots if audio is None), "idle: the schedule"
    heard = np.concatenate([np.frombuffer(f.audio, np.int16) for f in down if isinstance(f, TTSAudioRawFrame)])
    assert np.array_equal(heard[:said], agent_world["heard"]) and not heard[said:].any(), \
        "every sample of the speech at 16 kHz, once, in order, then the silence of its last frames"
    timeline = np.concatenate([np.frombuffer(audio, np.int16) if audio else np.zeros(640, np.int16)
                               for _, _, audio in slots]).astype(np.float32)
    offset = offset_of(agent_world["heard_float"], timeline) - speech[0] * 640
    assert abs(offset) <= 640, f"the audio is {offset} samples off its frames"
    last_image = max(i for i, frame in enumerate(down) if isinstance(frame, OutputImageRawFrame) and
                     frame.pts // NS_PER_SLOT == slots[speech[-1]][0])
    assert [i for i, frame in enumerate(down) if isinstance(frame, TTSStoppedFrame)][0] > last_image
    ttfb = [d for f in down if isinstance(f, MetricsFrame) for d in f.data if isinstance(d, TTFBMetricsData) and d.value > 0]
    assert len(ttfb) == 1
    # TTFB runs from the first TTS audio in to the first speech image out: within the times taken
    # around those two events in this run; and no shorter than the start delay the live session
    # planned for the utterance (the lookahead, one batch at the measured speed, the margin).
    first_in, first_back = times["audio_in"]
    [image_at] = [at for frame, at in times["pushed"] if isinstance(frame, OutputImageRawFrame)
                  and frame.pts == slots[speech[0]][0] * NS_PER_SLOT]
    [measured_at] = [at for frame, at in times["pushed"] if isinstance(frame, MetricsFrame) and
                     any(isinstance(d, TTFBMetricsData) and d.value > 0 for d in frame.data)]
    value = ttfb[0].value
    assert image_at - first_back <= value <= measured_at - first_in, \
        f"TTFB {value:.3f} s; first audio in to first speech image out: {image_at - first_back:.3f}-{measured_at - first_in:.3f} s"
    [report] = service.avatar.session.stats.utterances
    assert report.start_delay_s >= LOOKAHEAD_SECONDS + DEFAULT_MARGIN, f"planned start delay {report.start_delay_s:.3f} s"
    assert value >= report.start_delay_s - (first_back - first_in), \
        f"TTFB {value:.3f} s under the planned start delay {report.start_delay_s:.3f} s"


def test_pipecat_service_with_the_exact_backend_shows_the_offline_frames(agent_world):
    from frame_generation_pipeline.integrations.pipecat import SyncTalkVideoService

    short = agent_world["tts"][: int(0.4 * TTS_RATE)]
    heard = soxr.resample(short.astype(np.float32) / 32768, TTS_RATE, 16000)
    wav = agent_world["root"] / "heard.wav"
    soundfile.write(wav, np.concatenate([heard, np.zeros(16000, np.float32)]), 16000, subtype="FLOAT")  # then silence
    pipeline, templates = agent_world["exact"], TemplateSet.from_folder(agent_world["one_template"])
    service = SyncTalkVideoService(pipeline=pipeline, template_dir=agent_world["one_template"],
                                   audio_encoder=agent_world["encoder"], policy="delay", start_margin=3.0, blend=NO_BLEND,
                                   half_rate=False)  # every frame, waited for
    frames = service.avatar.session.frames_for(len(heard))
    speech = [image for _, image, audio in _slots(_run(service, _tts_frames(short))) if audio is not None]
    assert len(speech) == frames > frames_for_samples(len(heard), "heard"), (len(speech), frames)
    features = pipeline.features(audio=wav, audio_encoder=agent_world["encoder"])
    for index in range(0, frames, 3):  # every third frame rendered offline on its own (each frame's model inputs: test_live_session.py)
        frame = next(pipeline.generator.iter_frames(templates, features, first_frame=index, frame_count=1))
        assert speech[index] == cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).tobytes(), f"speech frame {index}"


async def _interrupted(service, frames, after_speech_frames: int, then_images: int) -> list:
    """Frames the service pushes, with an interruption (as Pipecat's own, from downstream) once
    `after_speech_frames` of speech audio have come out, and an end `then_images` images later."""
    from pipecat.frames.frames import EndFrame, InterruptionFrame, OutputImageRawFrame, TTSAudioRawFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.workers.runner import WorkerRunner

    class Listener(FrameProcessor):
        def __init__(self):
            super().__init__()
            self.down, self.spoken, self.images, self.done = [], 0, None, asyncio.Event()

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if direction == FrameDirection.DOWNSTREAM:
                self.down.append(frame)
                self.spoken += isinstance(frame, TTSAudioRawFrame) and self.images is None
                if self.images is None and self.spoken >= after_speech_frames:
                    self.images = 0
                    self.down.append(InterruptionFrame())  # where the listener talked over the avatar
                    await self.broadcast_interruption()
                elif self.images is not None and isinstance(frame, OutputImageRawFrame):
                    self.images += 1
                    if self.images >= then_images:
                        self.done.set()
            await self.push_frame(frame, direction)

    listener = Listener()
    worker = PipelineWorker(Pipeline([service, listener]), cancel_on_idle_timeout=False, params=PipelineParams())
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(worker, frame):
        started.set()

    async def feed():
        await asyncio.wait_for(started.wait(), 30)
        for frame in frames:
            await worker.queue_frame(frame)
        await asyncio.wait_for(listener.done.wait(), 120)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner()
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), feed())
    return listener.down


def test_pipecat_interruption_returns_to_idle_within_a_frame(agent_world):
    from pipecat.frames.frames import InterruptionFrame

    from frame_generation_pipeline.integrations.pipecat import SyncTalkVideoService

    service = SyncTalkVideoService(pipeline=agent_world["pipeline"], template_dir=agent_world["one_template"],
                                   audio_encoder=agent_world["encoder"])
    down = asyncio.run(_interrupted(service, _tts_frames(agent_world["tts"]), 25, 8))  # after 1 s of speech
    cut = next(i for i, frame in enumerate(down) if isinstance(frame, InterruptionFrame))
    before, after = _slots(down[:cut]), _slots(down[cut:])
    assert sum(audio is not None for _, _, audio in before) == 25, "interrupted after 1 s of speech"
    assert sum(audio is not None for _, _, audio in after[1:]) == 0, "no speech frame after the next one"
    idle = _idle_rgb(service.avatar.session, 0)
    assert len(after) >= 8 and all(image in idle for _, image, _ in after[1:]), "where the idle schedule stands"
    assert [slot for slot, _, _ in before + after] == list(range(len(before) + len(after))), "the timeline runs on"


def test_pipecat_example_streams_video_and_audio_in_sync_over_webrtc(agent_world, checkpoints, exports, encoder_path):
    root = agent_world["root"]
    clip = write_speech_like_wav(root / "said.wav", 1.5, seed=7)
    found = in_namespace("pipecat_scenario.py", "pipecat", {
        "checkpoint": str(checkpoints["ave"]), "onnx": str(exports["ave"]), "templates": str(agent_world["one_template"]),
        "encoder": str(encoder_path), "clip": str(clip), "seconds": 5.0, "out": str(root / "webrtc")}, timeout=180)
    assert found["offer_status"] == 200 and set(found["candidates"]) == {"127.0.0.1"}, "only loopback candidates"
    video = np.load(root / "webrtc_video.npy").astype(np.float32)
    video_times = np.load(root / "webrtc_video_arrivals.npy")
    audio, audio_times = np.load(root / "webrtc_audio.npy"), np.load(root / "webrtc_audio_times.npy")
    assert found["audio_rate"] == 48000 and found["audio_pts_steps"] == [0], "the audio arrived whole"
    assert video.shape[1:] == (SIZE[1], SIZE[0], 3) and len(video) >= 4 * 25 * 0.8, "about 25 fps of video"
    template = TemplateSet.from_folder(agent_world["one_template"]).load(0).image
    distance = np.abs(video - template).mean(axis=(1, 2, 3))
    speaking = distance > (distance.min() + distance.max()) / 2
    speech = np.flatnonzero(speaking)
    said = load_speech(clip)
    assert distance[~speaking].max() < 2.6 < distance[speaking].min(), \
        "idle frames are the template (about 2 from VP8), speech ones (feathered: about 3.3) are not"
    assert np.array_equal(speech, np.arange(speech[0], speech[0] + len(speech))) and speech[0] > 0, "one run of speech"
    assert abs(len(speech) - frames_for_samples(len(said), "said")) <= 2, "a frame for each 1/25 s of the speech"
    start = offset_of(said, audio[: len(audio) // 3 * 3].reshape(-1, 3).mean(axis=1)) * 3  # 48 kHz: to 16 kHz and back
    assert audio_times[-1] - audio_times[start] >= len(said) / 16000, "the speech was heard to its end"
    lead = video_times[speech[0]] - audio_times[start]
    # the transport draws its current image every 40 ms (video_out_framerate): an image set just after a draw goes
    # out one period later, then VP8 encodes it (12-30 ms measured on a quiet machine, 42-44 under load): within
    # two frames of its sound, never before it by more than one
    assert -1 / 25 <= lead <= 2 / 25, f"the first speech frame arrived {lead * 1000:.0f} ms after its sound"


# --- LiveKit ------------------------------------------------------------------------------------

async def _drive_generator(generator, speech: np.ndarray, clear_after: int | None = None, idle_after: int = 6) -> list:
    """Push `speech` (16 kHz int16) in 20 ms frames at 10x real time, then AudioSegmentEnd (as
    AvatarRunner's audio task does) while reading the generator (as its video task does); optionally
    clear_buffer once `clear_after` speech audio frames came out. Returns what came out, in order."""
    from livekit import rtc
    from livekit.agents.voice.avatar import AudioSegmentEnd

    async def push():
        for first in range(0, len(speech), 320):
            part = speech[first : first + 320]
            await generator.push_audio(rtc.AudioFrame(part.tobytes(), 16000, 1, len(part)))
            await asyncio.sleep(0.002)
        await generator.push_audio(AudioSegmentEnd())

    pusher = asyncio.ensure_future(push())
    out, spoken, idle, cleared = [], 0, None, False
    async for item in generator:
        out.append(item)
        if isinstance(item, rtc.AudioFrame):
            spoken += 1
        if clear_after is not None and not cleared and spoken >= clear_after:
            generator.clear_buffer()
            cleared, idle = True, 0
            out.append("cleared")
        elif isinstance(item, AudioSegmentEnd):
            idle = 0
        elif idle is not None and isinstance(item, rtc.VideoFrame):
            idle += 1
            if idle >= idle_after:
                break
    await pusher
    await generator.aclose()
    return out


def test_livekit_generator_plays_every_sample_once_with_25_frames_a_second(agent_world):
    from livekit import rtc
    from livekit.agents.voice.avatar import AudioSegmentEnd

    from frame_generation_pipeline.integrations.livekit import SyncTalkVideoGenerator

    generator = SyncTalkVideoGenerator(pipeline=agent_world["pipeline"], template_dir=agent_world["one_template"],
                                       audio_encoder=agent_world["encoder"])
    assert (generator.options.video_width, generator.options.video_height, generator.options.video_fps) == (*SIZE, 25)
    speech = agent_world["heard"]
    out = asyncio.run(_drive_generator(generator, speech))
    audio = [item for item in out if isinstance(item, rtc.AudioFrame)]
    heard = np.concatenate([np.frombuffer(frame.data, np.int16) for frame in audio])
    assert np.array_equal(heard[: len(speech)], speech) and not heard[len(speech) :].any(), \
        "every sample back exactly once, in order, none played fast; then the silence of its last frames"
    first = out.index(audio[0])
    end = next(i for i, item in enumerate(out) if isinstance(item, AudioSegmentEnd))
    video = [item for item in out[first - 1 : end] if isinstance(item, rtc.VideoFrame)]
    frames = generator.avatar.session.frames_for(len(speech))
    assert frames * 640 == len(heard) and abs(len(video) - frames) <= 1, "a video frame per 1/25 s of speech and its run on"
    assert end > out.index(audio[-1]) and all(isinstance(item, rtc.VideoFrame) for item in out[end + 1 :])
    assert {(frame.width, frame.height) for frame in out if isinstance(frame, rtc.VideoFrame)} == {SIZE}


def test_livekit_clear_buffer_stops_the_utterance_within_a_frame(agent_world):
    from livekit import rtc
    from livekit.agents.voice.avatar import AudioSegmentEnd

    from frame_generation_pipeline.integrations.livekit import SyncTalkVideoGenerator

    generator = SyncTalkVideoGenerator(pipeline=agent_world["pipeline"], template_dir=agent_world["one_template"],
                                       audio_encoder=agent_world["encoder"])
    out = asyncio.run(_drive_generator(generator, agent_world["heard"], clear_after=25))
    after = out[out.index("cleared") + 1 :]
    assert sum(isinstance(item, rtc.AudioFrame) for item in after) <= 1, "at most the slot in hand"
    assert not any(isinstance(item, AudioSegmentEnd) for item in after), "an interrupted segment is not ended"
    assert sum(isinstance(item, rtc.VideoFrame) for item in after) >= 6, "the idle avatar goes on"



def test_the_adapters_take_a_hubert_model_and_the_paste_as_a_blend(agent_world, checkpoints, hubert_model):
    from frame_generation_pipeline.integrations.avatar import open_session
    from frame_generation_pipeline.integrations.livekit import SyncTalkVideoGenerator
    from frame_generation_pipeline.models.hubert import HubertEncoder

    session = open_session(checkpoint=checkpoints["hubert"], template_dir=agent_world["one_template"],
                           hubert_model=hubert_model, backend="torch", device="cpu", blend=Blend("feather", 6))
    try:
        assert session.model.mode.name == "hubert", "the mode follows the audio model"
        assert isinstance(session.encoder, HubertEncoder)
        assert (session.driver.blend.mode, session.driver.blend.width) == ("feather", 6)
    finally:
        session.close(drain=False)
    with pytest.raises(ConfigurationError, match="--hubert-model computes hubert features"):
        SyncTalkVideoGenerator(pipeline=agent_world["pipeline"], template_dir=agent_world["one_template"],
                               hubert_model=hubert_model)
    with pytest.raises(ArgumentTypeError, match="blend must be a Blend"):
        open_session(pipeline=agent_world["pipeline"], template_dir=agent_world["one_template"],
                     audio_encoder=agent_world["encoder"], blend="feather")
