"""Serve benchmark: `python benchmarks/serve.py` (a quiet machine; not part of `make test`).

Runs `frame-gen serve` (onnxruntime by default, random weights, generated templates) in a process
of its own on 127.0.0.1 and visits it with aiortc clients from this process (ICE on 127.0.0.1 only).

- Memory per visitor: the server's RSS with 1 visitor connected and idle, and with --max-sessions
  visitors connected and idle, at the first size; (RSS_max - RSS_1) / (max - 1) per additional one.
- Sharing the model: for each size and N in --counts, N visitors speak the same --seconds clip at
  once, for each of --speech: `file` uploads it through /speak (known length: the delay policy, its
  start waits for the visitor's share of the model), `mic` sends it as the visitor's microphone
  track (open speech: the drop policy). Reported per visitor: frames shown and dropped, those shown
  as a repeat of the one before (half rate, below real time) and the start delay (from /stats once
  every utterance is over).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Visitor:
    """An aiortc viewer that reads (and discards) the avatar's video and audio."""

    def __init__(self, base: str, http, microphone: str | None = None) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.contrib.media import MediaPlayer

        self.base, self.http = base, http
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        if microphone is None:
            self.pc.addTransceiver("audio", direction="recvonly")
        else:  # the clip as this visitor's microphone: it plays once the connection is up
            self.player = MediaPlayer(microphone)
            self.pc.addTransceiver(self.player.audio, direction="sendrecv")
        self.tasks: list[asyncio.Task] = []
        self.pc.on("track", lambda track: self.tasks.append(asyncio.ensure_future(self._read(track))))

    async def _read(self, track) -> None:
        while True:
            try:
                await track.recv()
            except Exception:
                return

    async def connect(self) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with self.http.post(f"{self.base}/offer", json={"sdp": self.pc.localDescription.sdp, "type": "offer"}) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"offer refused: {response.status} {body}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))
        self.session = body["session"]

    async def stats(self) -> dict:
        async with self.http.get(f"{self.base}/stats?session={self.session}") as response:
            return await response.json()

    async def close(self) -> None:
        await self.pc.close()
        for task in self.tasks:
            task.cancel()


class Server:
    """`frame-gen serve` in a child process, on a free loopback port."""

    def __init__(self, data: dict, templates: str, backend: str, max_sessions: int, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "frame_generation_pipeline", "serve", "--checkpoint", data["checkpoint"],
                   "--backend", backend, "--template-dir", templates, "--audio-encoder", data["encoder"],
                   "--port", str(self.port), "--max-sessions", str(max_sessions), "--ice-address", "127.0.0.1", "--quiet",
                   *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.base = f"http://127.0.0.1:{self.port}"

    async def ready(self, http) -> None:
        for _ in range(1200):
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.process.stderr.read()[-2000:]}")
            try:
                async with http.get(f"{self.base}/health") as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.25)
        raise RuntimeError("serve did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=60)


async def memory(data: dict, templates: str, backend: str, count: int, settle: float, extra: tuple[str, ...] = ()) -> dict:
    """Server RSS with 1 and with `count` visitors connected and idle."""
    import aiohttp

    server = Server(data, templates, backend, count, extra)
    visitors = []
    try:
        async with aiohttp.ClientSession() as http:
            await server.ready(http)
            idle = rss_mib(server.process.pid)
            for number in range(count):
                visitors.append(Visitor(server.base, http))
                await visitors[-1].connect()
                await asyncio.sleep(settle)
                if number == 0:
                    one = rss_mib(server.process.pid)
            many = rss_mib(server.process.pid)
            for visitor in visitors:
                await visitor.close()
    finally:
        server.stop()
    return {"rss_no_visitor_mib": round(idle, 1), "rss_1_mib": round(one, 1), f"rss_{count}_mib": round(many, 1),
            "per_additional_visitor_mib": round((many - one) / max(count - 1, 1), 2)}


async def sharing(data: dict, templates: str, backend: str, count: int, settle: float, speech: str,
                  extra: tuple[str, ...] = ()) -> dict:
    """`count` visitors speak the clip at once (`speech`: "file" through /speak, "mic" as their
    microphone): frames shown and dropped per visitor."""
    import aiohttp

    server = Server(data, templates, backend, count, extra)
    try:
        async with aiohttp.ClientSession() as http:
            await server.ready(http)
            visitors = [Visitor(server.base, http, data["speech"] if speech == "mic" else None) for _ in range(count)]
            await asyncio.gather(*(visitor.connect() for visitor in visitors))
            if speech == "file":
                await asyncio.sleep(settle)
                clip = Path(data["speech"]).read_bytes()
                for visitor in visitors:
                    async with http.post(f"{server.base}/speak?session={visitor.session}", data=clip) as response:
                        assert response.status == 202, await response.text()
            started, last, still = time.monotonic(), None, 0
            while still < 4:  # until every visitor's speech has had its slots: counts that stopped growing
                await asyncio.sleep(0.5)
                stats = [await visitor.stats() for visitor in visitors]
                totals = [sum(u["frames"] + u["dropped"] for u in s["utterances"]) for s in stats]
                still = still + 1 if totals == last and all(totals) else 0
                last = totals
                if time.monotonic() - started > 180:
                    raise RuntimeError(f"speech not over after 180 s: {stats}")
            for visitor in visitors:
                await visitor.close()
    finally:
        server.stop()
    return {"speech": speech, "visitors": count, "frames": data["frames"],
            "shown": [sum(u["frames"] for u in s["utterances"]) for s in stats],
            "dropped": [sum(u["dropped"] for u in s["utterances"]) for s in stats],
            "repeated": [sum(u.get("repeated", 0) for u in s["utterances"]) for s in stats],
            "start_delay_s": [[round(u["start_delay_s"], 2) for u in s["utterances"]] for s in stats]}


def main() -> None:
    """Measure and print one JSON line per run, then write them all to --json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--counts", default="1,2,3", help="visitors speaking at once")
    parser.add_argument("--max-sessions", type=int, default=4, help="visitors connected for the memory measure")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the spoken clip")
    parser.add_argument("--speech", default="file,mic", help="how visitors speak: file (/speak), mic (their microphone)")
    parser.add_argument("--templates", type=int, default=50, help="template frames")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--serve-args", default="", help="more options for frame-gen serve, e.g. '--batch-size 2'")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait after connecting")
    parser.add_argument("--json", default=str(HERE / "serve_results.json"))
    args = parser.parse_args()

    from frame_generation_pipeline.app.demo import synthetic
    from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
    from frame_generation_pipeline.app.serve.ice import limit_ice_addresses
    from frame_generation_pipeline.audio.speech import load_speech
    from frame_generation_pipeline.devices import cpu_summary
    from frame_generation_pipeline.models.audio_encoder import AudioEncoder
    from frame_generation_pipeline.models.silence import run_on

    limit_ice_addresses(("127.0.0.1",))
    extra = tuple(args.serve_args.split())
    results: dict = {"cpu": cpu_summary(), "cpus": os.cpu_count(), "backend": args.backend, "serve_args": args.serve_args,
                     "seconds": args.seconds,
                     "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="fgp-serve-bench-") as tmp:
        os.environ["FRAME_GEN_CACHE_DIR"] = str(Path(tmp) / "cache")
        folder = Path(tmp)
        speech = write_speech_like_wav(folder / "speech.wav", args.seconds)
        data = {"checkpoint": str(synthetic.save_random_checkpoint(folder / "ave.pth", "ave")),
                "encoder": str(synthetic.save_random_audio_encoder(folder / "enc.pth")), "speech": str(speech),
                "frames": run_on(AudioEncoder, len(load_speech(speech)), str(speech)).frames}  # with its run into silence
        for number, size in enumerate(args.sizes.split(",")):
            width, height = map(int, size.split("x"))
            templates = str(synthetic.make_templates(folder / f"tpl-{size}", args.templates, width, height, parsing=False))
            runs: dict = {"sharing": []}
            if number == 0:
                runs["memory"] = asyncio.run(memory(data, templates, args.backend, args.max_sessions, args.settle, extra))
                print(json.dumps({"size": size, **runs["memory"]}), flush=True)
            for speech in args.speech.split(","):
                for count in map(int, args.counts.split(",")):
                    runs["sharing"].append(asyncio.run(sharing(data, templates, args.backend, count, args.settle, speech,
                                                               extra)))
                    print(json.dumps({"size": size, **runs["sharing"][-1]}), flush=True)
            results["sizes"][size] = runs
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
