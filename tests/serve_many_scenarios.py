"""Many visitors of `frame-gen serve` (scenarios of serve_scenarios.py, on its server): a visitor
joining while another speaks, and a soak of visitors coming and going."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path

import aiohttp
from webrtc_client import Client

from frame_generation_pipeline.app.serve.server import AvatarServer, Visitor
from frame_generation_pipeline.live.session import StreamingSession

CLIENT = str(Path(__file__).with_name("webrtc_client.py"))
#: How long after B's offer is answered its joining is watched: its upload, its encoding, its first batches.
JOINING_SECONDS = 2.0
#: Thread pools that start threads as they are needed, up to a bound, and keep them: asyncio's default
#: executor (min(32, CPUs + 4)) and the shared model's network streams (model.streams).
POOLS = ("asyncio_", "live-network")


async def visitor(args: dict, base: str, speak: bool) -> asyncio.subprocess.Process:
    """A visitor process that connects at the line "go" and reports at the next line."""
    return await asyncio.create_subprocess_exec(
        sys.executable, CLIENT, json.dumps({**args, "base": base, "speak": speak}),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)


async def tell(process: asyncio.subprocess.Process, line: str = "go") -> dict:
    process.stdin.write(f"{line}\n".encode())
    await process.stdin.drain()
    return json.loads(await asyncio.wait_for(process.stdout.readline(), 120))


async def shown(http: aiohttp.ClientSession, base: str, session: str, frames: int) -> dict:
    """The session's stats once its first utterance has been placed and has had `frames` slots
    (bounded wait)."""
    for _ in range(900):
        async with http.get(f"{base}/stats?session={session}") as response:
            stats = await response.json()
        if stats["utterances"] and stats["utterances"][0]["frames"] + stats["utterances"][0]["dropped"] >= frames:
            return stats
        await asyncio.sleep(0.1)
    raise TimeoutError(f"session {session} showed no {frames} frames of its utterance")


async def scenario_join(args: dict, base: str, server: AvatarServer) -> dict:
    """A speaks the 3 s clip; once its speech is on screen, B connects and speaks the 0.6 s clip (its
    rendering shares the model with A's while B joins); A's video arrival times and audio steps come back."""
    # both started (imports paid) now; B's shorter clip: A's 3 s rendered beside B's 3 s was 8 CPU-s more
    a, b = await visitor(args, base, True), await visitor({**args, "clip": args["short_clip"]}, base, True)
    found = {}
    async with aiohttp.ClientSession() as http:
        first = await tell(a)
        await shown(http, base, first["session"], 10)
        found["join"] = time.monotonic()
        found["b_status"] = (await tell(b))["status"]
        await asyncio.sleep(JOINING_SECONDS)  # B's offer answered; its upload decoded, encoded, rendering
        found["joined"] = time.monotonic()
        report = await tell(a, "report")
        found.update(arrivals=report["arrivals"], audio_steps=report["audio_steps"])
    for process in (a, b):
        process.kill()
        await process.wait()
    return found


def usage() -> dict:
    """The server process's resident memory (MiB), open file descriptors, threads (all, in the
    pools, and those of sessions) and the visitors and live sessions still alive as objects (after
    a garbage collection: anything that holds one keeps all it holds)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    names = [thread.name for thread in threading.enumerate()]
    gc.collect()
    alive = [type(item) for item in gc.get_objects() if isinstance(item, (Visitor, StreamingSession))]
    return {"rss_mib": int(status["VmRSS"].split()[0]) / 1024, "fds": len(os.listdir("/proc/self/fd")),
            "threads": int(status["Threads"]), "pool_threads": sum(name.startswith(POOLS) for name in names),
            "session_threads": sum(name.startswith(("live-render", "session-pump")) for name in names),
            "visitor_objects": alive.count(Visitor), "session_objects": alive.count(StreamingSession)}


def vanish(client: Client) -> None:
    """Stop every packet of the visitor at once, without a goodbye (as a closed laptop does)."""
    for transceiver in client.pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        for protocol in connection._protocols:
            protocol.transport.close()


async def scenario_soak(args: dict, base: str, server: AvatarServer) -> dict:
    """`visitors` visitors one after another: connect, speak the 1 s clip, leave (every second
    vanishes without a goodbye and is waited for); usage after the first and after the last."""
    clip = Path(args["second_clip"]).read_bytes()
    found = {"vanished_gone_s": []}
    async with aiohttp.ClientSession() as http:
        for number in range(args["visitors"]):
            client = Client(base, http)
            status, _ = await client.connect()
            assert status == 200, status
            async with http.post(f"{base}/speak?session={client.session}", data=clip) as response:
                assert response.status == 202
            await shown(http, base, client.session, 0)  # its rendering has begun
            await asyncio.sleep(0.5)
            if number % 2 == 1:
                vanish(client)
                left = time.monotonic()
                while client.session in server.visitors and time.monotonic() - left < 60:
                    await asyncio.sleep(0.1)
                found["vanished_gone_s"].append(round(time.monotonic() - left, 2))
            else:
                async with http.delete(f"{base}/session?session={client.session}") as response:
                    assert response.status == 200
            await client.close()
            del client
            await asyncio.sleep(0.3)
            if number == 0:
                found["first"] = usage()
        found["last"] = usage()
        async with http.get(f"{base}/health") as response:
            found["health_sessions"] = (await response.json())["sessions"]
        found["live_threads"] = sorted({thread.name.rstrip("0123456789_") for thread in threading.enumerate()})
    return found
