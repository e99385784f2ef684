"""The Pipecat example (examples/pipecat_avatar.py) served and watched by an aiortc viewer, run by
test_integrations.py inside a network namespace that has only loopback. Saves what the viewer
received (with the time each frame's first packet reached it) and prints one JSON object of findings."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import socket
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from webrtc_client import candidates, mono

from frame_generation_pipeline.app.serve.ice import limit_ice_addresses

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pipecat_avatar.py"
#: receiver -> RTP timestamp -> when its first packet was handled (before any jitter buffer).
ARRIVALS: dict[RTCRtpReceiver, dict[int, float]] = {}


def record_arrivals() -> None:
    """Note the arrival of each RTP timestamp's first packet, per receiver."""
    handle = RTCRtpReceiver._handle_rtp_packet

    async def noted(self, packet, arrival_time_ms):
        ARRIVALS.setdefault(self, {}).setdefault(packet.timestamp, time.monotonic())
        await handle(self, packet, arrival_time_ms)

    RTCRtpReceiver._handle_rtp_packet = noted


def example():
    """The example script, imported from its file."""
    spec = importlib.util.spec_from_file_location("pipecat_avatar", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Viewer:
    """Receives audio and video as the example's page does (audio transceiver first)."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.receivers = {kind: self.pc.addTransceiver(kind, direction="recvonly").receiver for kind in ("audio", "video")}
        self.frames: dict[str, list] = {"audio": [], "video": []}
        self.tasks = []
        self.pc.on("track", lambda track: self.tasks.append(asyncio.ensure_future(self._read(track))))

    async def _read(self, track) -> None:
        try:
            while True:
                self.frames[track.kind].append(await track.recv())
        except MediaStreamError:  # the track ended
            return

    def arrivals(self, kind: str) -> list[float]:
        """When each received frame's first packet arrived (its pts counts from the first RTP timestamp)."""
        noted = ARRIVALS[self.receivers[kind]]
        origin = next(iter(noted))
        return [noted[(origin + frame.pts) & 0xFFFFFFFF] for frame in self.frames[kind]]


async def scenario(args: dict) -> dict:
    limit_ice_addresses(("127.0.0.1",))  # aioice skips loopback, the namespace's only interface
    record_arrivals()
    module = example()
    said = ["--text", args["text"]] if "text" in args else ["--speech", args["clip"]]  # the local TTS, or the fake one
    options = module.options(["--checkpoint", args["checkpoint"], "--template-dir", args["templates"],
                              "--audio-encoder", args["encoder"], *said, "--every", "600",
                              "--backend", args.get("backend", "onnxruntime"), "--start-margin", "1.0",
                              *(["--onnx", args["onnx"]] if "onnx" in args else []),
                              "--idle", "template"])  # idle frames are told from speech by their distance to the template
    runner = web.AppRunner(module.app(options))
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    viewer, found = Viewer(), {}
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    offer = viewer.pc.localDescription.sdp
    async with aiohttp.ClientSession() as http, http.post(f"http://127.0.0.1:{port}/api/offer",
                                                          json={"sdp": offer, "type": "offer"}) as response:
        found["offer_status"] = response.status
        answer = await response.json()
    found["candidates"] = candidates(offer) + candidates(answer["sdp"])
    await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    for _ in range(1200):  # until the viewer has heard `seconds` of audio
        await asyncio.sleep(0.05)
        if sum(frame.samples / frame.sample_rate for frame in viewer.frames["audio"]) >= args["seconds"]:
            break
    await viewer.pc.close()
    await asyncio.gather(*viewer.tasks)
    await runner.cleanup()
    out = args["out"]
    np.save(out + "_video.npy", np.stack([frame.to_ndarray(format="bgr24") for frame in viewer.frames["video"]]))
    np.save(out + "_video_arrivals.npy", np.array(viewer.arrivals("video")))
    audio = viewer.frames["audio"]
    np.save(out + "_audio.npy", np.concatenate([mono(frame) for frame in audio]))
    # a packet leaves once its last sample is due: each sample was due its remaining duration before
    np.save(out + "_audio_times.npy", np.concatenate([arrival - np.arange(frame.samples, 0, -1) / frame.sample_rate
                                                      for frame, arrival in zip(audio, viewer.arrivals("audio"))]))
    found["audio_rate"] = audio[0].sample_rate
    found["audio_pts_steps"] = sorted({b.pts - a.pts - a.samples for a, b in itertools.pairwise(audio)})
    return found


if __name__ == "__main__":
    result = asyncio.run(scenario(json.loads(sys.argv[2])))
    print("RESULT " + json.dumps(result), flush=True)
