"""An aiortc viewer of `frame-gen serve` for the scenarios (no model, no torch: light to start)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from frame_generation_pipeline.app.serve.ice import limit_ice_addresses


def candidates(sdp: str) -> list[str]:
    """The addresses of every ICE candidate in an SDP."""
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


class Client:
    """Receives the avatar's video and audio; keeps the decoded frames (converted on demand)."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base, self.http = base, http
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video, self.audio, self.tasks, self.arrivals = [], [], [], []
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.on("track", lambda track: self.tasks.append(asyncio.ensure_future(self._read(track))))

    async def _read(self, track) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    self.arrivals.append(time.monotonic())
                (self.video if track.kind == "video" else self.audio).append(frame)
        except Exception:
            return

    async def connect(self) -> tuple[int, dict]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription.sdp
        async with self.http.post(f"{self.base}/offer", json={"sdp": offer, "type": "offer"}) as response:
            body = await response.json()
            if response.status != 200:
                return response.status, body
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))
        self.session = body["session"]
        body["offer_candidates"], body["answer_candidates"] = candidates(offer), candidates(body["sdp"])
        return 200, body

    async def close(self) -> None:
        """Close the peer connection (a vanished client's own sockets may be closed already) and stop reading."""
        with contextlib.suppress(Exception):
            await self.pc.close()
        for task in self.tasks:
            task.cancel()

    def size(self) -> list[int] | None:
        """[height, width, 3] of the last video frame received."""
        return [self.video[-1].height, self.video[-1].width, 3] if self.video else None


def audio_steps(client: Client) -> list[int]:
    """The distinct gaps between one audio frame's end and the next one's start ([0]: contiguous)."""
    return sorted({b.pts - a.pts - a.samples for a, b in zip(client.audio, client.audio[1:])})


async def visit(args: dict) -> None:
    """A visitor in a process of its own (serve_many_scenarios.py's join): connects when a line "go"
    comes on stdin (speaks, if asked) and reports its session; at the next line its video arrival
    times and audio steps; then waits to be killed."""
    limit_ice_addresses(("127.0.0.1",))
    lines = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        client = Client(args["base"], http)
        await lines.run_in_executor(None, sys.stdin.readline)
        status, body = await client.connect()
        print(json.dumps({"status": status, "session": getattr(client, "session", None), "body": body}), flush=True)
        if status != 200:
            return
        if args.get("speak"):
            async with http.post(f"{args['base']}/speak?session={client.session}", data=Path(args["clip"]).read_bytes()):
                pass
        await lines.run_in_executor(None, sys.stdin.readline)
        print(json.dumps({"arrivals": client.arrivals, "audio_steps": audio_steps(client)}), flush=True)
        await asyncio.sleep(600)


def mono(frame) -> np.ndarray:
    """An audio frame's samples, channels averaged (planar or interleaved)."""
    samples = frame.to_ndarray().astype(np.float32)
    samples = samples.T if frame.format.is_planar else samples.reshape(frame.samples, -1)
    return samples.mean(axis=1)


def save(client: Client, out: str) -> dict:
    """Write the received video (BGR frames and their pts) and audio (mono samples) for the test."""
    np.save(out + "_video.npy", np.stack([frame.to_ndarray(format="bgr24") for frame in client.video]))
    np.save(out + "_video_pts.npy", np.array([frame.pts for frame in client.video]))
    np.save(out + "_audio.npy", np.concatenate([mono(frame) for frame in client.audio]))
    return {"audio_rate": client.audio[0].sample_rate}


if __name__ == "__main__":
    asyncio.run(visit(json.loads(sys.argv[1])))
