"""WebRTC scenarios of `frame-gen serve`, run by test_serve.py inside a network namespace that has
only loopback (so no traffic can reach another address): one server (the model loaded and warmed up
once) meets the visitors of every scenario in turn, each scenario starting once the last one's
visitors are gone. Prints one JSON object of findings per scenario."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
import traceback
from pathlib import Path

import aiohttp
from aiohttp import web
from serve_many_scenarios import vanish
from webrtc_client import Client, audio_steps, save

from frame_generation_pipeline import FrameGenerationPipeline
from frame_generation_pipeline.app.serve.server import AvatarServer, ServerSettings
from frame_generation_pipeline.inputs.templates import TemplateSet
from frame_generation_pipeline.models.audio_encoder import AudioEncoder


async def start(args: dict, **settings) -> tuple[web.AppRunner, str, AvatarServer]:
    pipeline = FrameGenerationPipeline(args["checkpoint"], device="cpu", onnx_path=args.get("onnx"),
                                       backend="onnxruntime" if args.get("onnx") else "auto")
    server = AvatarServer(pipeline, TemplateSet.from_folder(args["templates"]), AudioEncoder(args["encoder"], device="cpu"),
                          ServerSettings(ice_addresses=("127.0.0.1",), **settings))
    runner = web.AppRunner(server.app())
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}", server


def cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 1)


async def scenario_speak(args: dict, base: str, server: AvatarServer) -> dict:
    found = {"cpu": [cpu()]}
    async with aiohttp.ClientSession() as http:
        client = Client(base, http)
        status, body = await client.connect()
        found["offer_status"] = status
        found["candidates"] = body["offer_candidates"] + body["answer_candidates"]
        await asyncio.sleep(1.0)
        found["cpu"].append(cpu())
        clip = Path(args["speak_clip"]).read_bytes()
        async with http.post(f"{base}/speak?session={client.session}", data=clip) as response:
            found["speak"] = [response.status, await response.json()]
        for _ in range(600):  # until the utterance has been shown, and a second beyond
            await asyncio.sleep(0.1)
            async with http.get(f"{base}/stats?session={client.session}") as response:
                stats = await response.json()
            utterances = stats["utterances"]
            if utterances and utterances[0]["frames"] + utterances[0]["dropped"] >= args["frames"]:
                await asyncio.sleep(1.0)
                break
        found["stats"] = stats
        found["cpu"].append(cpu())
        async with http.get(f"{base}/health") as response:
            found["health"] = await response.json()
        async with http.get(f"{base}/metrics") as response:
            found["metrics"] = [response.status, response.headers["Content-Type"], await response.text()]
        found.update(await bad_requests(http, base, client.session))
        async with http.delete(f"{base}/session?session={client.session}") as response:
            found["delete"] = response.status
        await client.pc.close()
        found.update(save(client, args["out"]))
        found["audio_pts_steps"] = audio_steps(client)
        async with http.get(f"{base}/health") as response:
            found["sessions_after"] = (await response.json())["sessions"]
    return found


async def bad_requests(http: aiohttp.ClientSession, base: str, session: str) -> dict:
    """Each abuse the server must answer with a status and a reason."""
    probe = Client(base, http)
    await probe.pc.setLocalDescription(await probe.pc.createOffer())
    offer = probe.pc.localDescription.sdp
    await probe.pc.close()
    answers = {}
    cases = {
        "offer_not_json": ("post", "/offer", {"data": b"hello"}),
        "offer_wrong_type": ("post", "/offer", {"json": {"sdp": "v=0", "type": "answer"}}),
        "offer_malformed_sdp": ("post", "/offer", {"json": {"sdp": "v=0\r\nthis is not sdp\r\n", "type": "offer"}}),
        "offer_not_sdp": ("post", "/offer", {"json": {"sdp": "hello", "type": "offer"}}),
        "offer_no_setup": ("post", "/offer", {"json": {"sdp": offer.replace("a=setup:actpass\r\n", ""),
                                                        "type": "offer"}}),
        "stats_no_session": ("get", "/stats", {}),
        "speak_not_audio": ("post", f"/speak?session={session}", {"data": b"definitely not audio" * 100}),
        "speak_empty": ("post", f"/speak?session={session}", {"data": b""}),
        "speak_too_large": ("post", f"/speak?session={session}", {"data": b"\0" * (21 << 20)}),
        "speak_unknown_session": ("post", "/speak?session=nosuch", {"data": b"x"}),
        "say_unknown_session": ("post", "/say?session=nosuch", {"json": {"text": "hello"}}),
        "delete_unknown_session": ("delete", "/session?session=nosuch", {}),
    }
    for name, (method, path, kwargs) in cases.items():
        async with getattr(http, method)(f"{base}{path}", **kwargs) as response:
            answers[name] = [response.status, (await response.json()).get("error", "")]
    return {"bad": answers}


async def scenario_load(args: dict, base: str, server: AvatarServer) -> dict:
    """Five visitors in this process (the fifth is one too many); the first speaks, and vanishes
    mid-utterance without a goodbye once each has had two seconds of video."""
    found = {"statuses": []}
    async with aiohttp.ClientSession() as http:
        visitors = []
        for _ in range(5):
            client = Client(base, http)
            status, body = await client.connect()
            found["statuses"].append(status)
            if status == 200:
                visitors.append(client)
            else:
                found["fifth"] = body
                await client.pc.close()
        async with http.post(f"{base}/speak?session={visitors[0].session}", data=Path(args["short_clip"]).read_bytes()):
            pass
        await asyncio.sleep(2.0)
        found["frames"] = [len(client.video) for client in visitors]
        found["sizes"] = [client.size() for client in visitors]
        found["sessions_before"] = len(server.visitors)
        vanishing = visitors[0]
        vanish(vanishing)
        found["vanished_gone_s"] = await gone(server, {vanishing.session})
        found["sessions_left"] = sorted(server.visitors)
        found["vanished"] = vanishing.session
        for client in visitors:
            await client.close()
    return found


async def gone(server: AvatarServer, sessions: set[str], limit: float = 60.0) -> float | None:
    """Seconds until none of `sessions` is among the server's visitors (None: still there after `limit`)."""
    began = time.monotonic()
    while sessions & set(server.visitors):
        if time.monotonic() - began > limit:
            return None
        await asyncio.sleep(0.1)
    return round(time.monotonic() - began, 2)


async def scenario_all(args: dict) -> dict:
    """Each scenario named in args["scenarios"] on one server, in that order; a scenario that
    raises reports its traceback, and each reports the visitors it left behind (once they were
    given a minute to go: the next scenario starts with none)."""
    from browser_scenario import scenario_page
    from serve_many_scenarios import scenario_join, scenario_soak

    scenarios = {"speak": scenario_speak, "load": scenario_load, "join": scenario_join, "soak": scenario_soak,
                 "page": scenario_page}
    # One server for all: up to 4 sessions (load), 0.5 s of start slack so that a busy test machine
    # drops no frame (speak, join), consent checks every 0.5 s so that a vanished visitor goes soon.
    runner, base, server = await start(args, max_sessions=4, start_margin=0.5, consent_interval=0.5)
    found = {}
    for name in args["scenarios"]:
        try:
            found[name] = await scenarios[name](args, base, server)
        except Exception:
            found[name] = {"error": traceback.format_exc()}
        await gone(server, set(server.visitors))
        found[name]["left_behind"] = sorted(server.visitors)
    await runner.cleanup()
    return found


def main(scenarios: dict) -> None:
    """Run the scenario named by argv[1] with the JSON settings in argv[2]; print its findings."""
    print("RESULT " + json.dumps(asyncio.run(scenarios[sys.argv[1]](json.loads(sys.argv[2])))))


if __name__ == "__main__":
    main({"all": scenario_all})
