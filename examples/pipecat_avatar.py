"""A Pipecat pipeline with the SyncTalk_2D avatar: a local TTS says typed text (or a fake TTS a WAV
file), the avatar renders it, SmallWebRTCTransport sends video and audio to the browser page served here.

    pip install '.[pipecat,voice]'
    python examples/pipecat_avatar.py --text "Hello! I run entirely on this machine."
    # open http://127.0.0.1:7860/ and press Connect: the demo avatar says it, again after each 5 s
    python examples/pipecat_avatar.py --checkpoint 5.pth --template-dir dataset/May \\
        --audio-encoder audio_visual_encoder.pth --speech hello.wav
    # your avatar says hello.wav (a fake TTS: no [voice] needed)

Nothing is downloaded: the page is served from this file, the voice comes from its package
(LocalTTSService, the [voice] extra). For a voice agent, put an STT and an LLM before the TTS in
place of TextSource.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile

import numpy as np
from aiohttp import web
from pipecat.frames.frames import Frame, TTSAudioRawFrame, TTSSpeakFrame, TTSStartedFrame, TTSStoppedFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.workers.runner import WorkerRunner

from frame_generation_pipeline.app.demo.run import make_demo_inputs
from frame_generation_pipeline.audio.speech import load_speech
from frame_generation_pipeline.contract import SAMPLE_RATE
from frame_generation_pipeline.integrations.pipecat import SyncTalkVideoService
from frame_generation_pipeline.integrations.pipecat_tts import LocalTTSService

PAGE = """<!doctype html><title>avatar</title><video id=v autoplay playsinline></video><br>
<button id=b>Connect</button><script>
b.onclick = async () => {
  const pc = new RTCPeerConnection();
  // audio first, then video: SmallWebRTCTransport sends on the transceivers in that order
  pc.addTransceiver("audio", {direction: "recvonly"}); pc.addTransceiver("video", {direction: "recvonly"});
  const stream = new MediaStream(); v.srcObject = stream;
  pc.ontrack = (e) => stream.addTrack(e.track);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => {
    if (pc.iceGatheringState === "complete") r();
    else pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r();
  });
  const answer = await (await fetch("/api/offer", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({sdp: pc.localDescription.sdp, type: "offer"})})).json();
  await pc.setRemoteDescription(answer);
};
</script>"""


class FileTTS(FrameProcessor):
    """A fake TTS: says `speech` (16 kHz) as 24 kHz 20 ms chunks every `every` seconds, once started."""

    def __init__(self, speech: np.ndarray, every: float) -> None:
        super().__init__()
        import soxr

        self.audio = (soxr.resample(speech, 16000, 24000) * 32767).astype(np.int16)
        self.every = every

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass every frame on (this TTS speaks by itself, not from text)."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)

    async def speak_forever(self) -> None:
        """Say the speech, wait, say it again."""
        while True:
            await self.push_frame(TTSStartedFrame())
            for first in range(0, len(self.audio), 480):
                await self.push_frame(TTSAudioRawFrame(self.audio[first : first + 480].tobytes(), 24000, 1))
            await self.push_frame(TTSStoppedFrame())
            await asyncio.sleep(len(self.audio) / 24000 + self.every)


class TextSource(FrameProcessor):
    """Stands in for an LLM: asks the TTS after it to say `text`, again `every` seconds after each saying."""

    #: A generous guess of a word's length in speech, to wait out the saying before the pause.
    SECONDS_PER_WORD = 0.5

    def __init__(self, text: str, every: float) -> None:
        super().__init__()
        self.text, self.every = text, every

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass every frame on."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)

    async def speak_forever(self) -> None:
        """Say the text, wait, say it again."""
        while True:
            await self.push_frame(TTSSpeakFrame(self.text))
            await asyncio.sleep(self.SECONDS_PER_WORD * len(self.text.split()) + self.every)


def speakers(args: argparse.Namespace) -> tuple[FrameProcessor, list[FrameProcessor]]:
    """What speaks: (the processor whose speak_forever starts it, the processors before the avatar)."""
    if args.text is not None:
        source = TextSource(args.text, args.every)
        return source, [source, LocalTTSService()]
    tts = FileTTS(load_speech(args.speech), args.every)
    return tts, [tts]


def build(args: argparse.Namespace, connection: SmallWebRTCConnection):
    """The pipeline of one visitor: TTS -> avatar -> WebRTC output; returns (worker, speaker, transport)."""
    avatar = SyncTalkVideoService(checkpoint=args.checkpoint, template_dir=args.template_dir,
                                  audio_encoder=args.audio_encoder, backend=args.backend, device=args.device,
                                  onnx=args.onnx, start_margin=args.start_margin, idle=args.idle)
    width, height = avatar.avatar.session.template_image(0).shape[1::-1]
    transport = SmallWebRTCTransport(connection, TransportParams(
        audio_out_enabled=True, video_out_enabled=True, video_out_width=width, video_out_height=height,
        video_out_framerate=25))
    speaker, before = speakers(args)
    worker = PipelineWorker(Pipeline([transport.input(), *before, avatar, transport.output()]), params=PipelineParams(
        enable_metrics=True, audio_out_sample_rate=SAMPLE_RATE))  # the avatar's 16 kHz as is: in step with its frames
    return worker, speaker, transport


def app(args: argparse.Namespace) -> web.Application:
    """The page and the offer endpoint; each offer starts a pipeline of its own."""
    tasks: set[asyncio.Future] = set()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        connection = SmallWebRTCConnection(ice_servers=[])
        await connection.initialize(sdp=body["sdp"], type=body["type"])
        worker, speaker, transport = build(args, connection)

        speaking: list[asyncio.Future] = []

        @transport.event_handler("on_client_connected")
        async def connected(transport, client):
            speaking.append(_keep(tasks, speaker.speak_forever()))

        @transport.event_handler("on_client_disconnected")
        async def disconnected(transport, client):
            for task in speaking:
                task.cancel()
            await worker.cancel()

        _keep(tasks, _run(worker))
        return web.json_response(connection.get_answer())

    async def stop(application: web.Application) -> None:
        pending = list(tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    application = web.Application()
    application.add_routes([web.get("/", page), web.post("/api/offer", offer)])
    application.on_shutdown.append(stop)
    return application


def _keep(tasks: set[asyncio.Future], coroutine) -> asyncio.Future:
    """Run `coroutine` as a task held in `tasks` until it is done."""
    task = asyncio.ensure_future(coroutine)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


async def _run(worker: PipelineWorker) -> None:
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="your avatar's checkpoint (default: the demo avatar)")
    parser.add_argument("--template-dir", default=None, help="with --checkpoint: its template folder")
    parser.add_argument("--audio-encoder", default=None, help="with --checkpoint: audio_visual_encoder.pth")
    parser.add_argument("--text", default=None, help="what the local TTS says (the [voice] extra)")
    parser.add_argument("--speech", default=None, help="a WAV file the fake TTS says instead (default with the demo avatar: "
                        "its sentence)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds of silence between two sayings")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--device", default=None)
    parser.add_argument("--onnx", default=None, help="an exported .onnx of the checkpoint (default: the export cache)")
    parser.add_argument("--start-margin", type=float, default=0.1, help="slack before each utterance's first frame")
    parser.add_argument("--idle", choices=("rendered", "template"), default="rendered",
                        help="between sayings: each template's rest frame (the mouth at rest), or the templates as they are")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    own = (args.checkpoint, args.template_dir, args.audio_encoder)
    if args.text is not None and args.speech is not None:
        parser.error("give --text or --speech, not both")
    if any(value is not None for value in own) and (None in own or (args.speech is None and args.text is None)):
        parser.error("your own avatar needs --checkpoint, --template-dir, --audio-encoder and --speech or --text "
                     "(give none of the first three for the demo avatar)")
    return args


def main() -> None:
    """Serve the page and the offer endpoint on 127.0.0.1 (the demo avatar's files in a temporary folder when no checkpoint is given)."""
    args = options()
    with tempfile.TemporaryDirectory(prefix="pipecat-demo-") as folder:
        if args.checkpoint is None:
            demo = make_demo_inputs(folder, speech=args.text is None)
            args.checkpoint, args.template_dir, args.audio_encoder = demo.checkpoint, demo.template_dir, demo.audio_encoder
            args.speech = args.speech or (None if args.text is not None else demo.audio)
        web.run_app(app(args), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
