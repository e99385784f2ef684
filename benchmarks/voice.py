"""Voice benchmark: `flock /tmp/bench.lock python benchmarks/voice.py` (the [voice] and [serve] extras,
Debian's chromium; a quiet machine; not part of `make test`).

1. Text to first audio sample: the local voice (audio/voice.py) loaded once, then for each text the
   seconds from the call to its first sentence's speech, and to the whole, beside the speech's length.
2. Press to speech in the page: `frame-gen serve --demo` in a process of its own on 127.0.0.1, its page
   in headless Chromium; --repeat times each, Say (typed text) and Speak file (the same text said as a
   WAV file): the page's "press to speech" (from the press to the first screen refresh at which the
   received audio carries sound) beside the server's "arrival to first frame" for that utterance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TEXTS = {"short": "Hello there.",
         "paragraph": "Hello, I am the demo avatar. Type anything and I say it. "
                      "Every sentence starts as soon as it is made, so a long text starts after its first."}
#: Chromium's switches for WebRTC on loopback, headless.
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--no-first-run", "--allow-loopback-in-peer-connection",
                 "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required"]


def text_to_speech(repeat: int) -> dict:
    """Seconds to the first sentence and to the whole of each text (median of `repeat`), and the load."""
    from frame_generation_pipeline.audio.voice import Voice

    started = time.perf_counter()
    voice = Voice()
    found: dict = {"load_s": round(time.perf_counter() - started, 3)}
    for name, text in TEXTS.items():
        firsts, wholes, seconds = [], [], 0.0
        for _ in range(repeat):
            started = time.perf_counter()
            stream = voice.stream(text)
            speech = [next(stream)]
            firsts.append(time.perf_counter() - started)
            speech += list(stream)
            wholes.append(time.perf_counter() - started)
            seconds = sum(len(part) for part in speech) / 16000
        found[name] = {"sentences": len(speech), "speech_s": round(seconds, 2),
                       "first_sample_s": round(sorted(firsts)[len(firsts) // 2], 3),
                       "whole_s": round(sorted(wholes)[len(wholes) // 2], 3)}
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def press_to_speech(base: str, wav: Path, repeat: int, chromium: str) -> dict:
    """The page's press-to-speech and the server's arrival-to-first-frame, for Say and Speak file."""
    from playwright.async_api import async_playwright

    found: dict = {"say": [], "speak_file": []}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = await browser.new_page()
        await page.goto(base)
        await page.click("#connect")
        await page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=120000)
        await page.set_input_files("#file", str(wav))
        await page.fill("#text", TEXTS["short"])
        for _ in range(repeat):
            for kind, button in (("say", "#say"), ("speak_file", "#speak")):
                await page.click(button)
                await page.wait_for_function("document.getElementById('press').textContent.endsWith(' s')", timeout=60000)
                press = float((await page.text_content("#press"))[:-2])
                await page.wait_for_timeout(4000)  # the utterance is over, and its report is in /stats
                session = await page.text_content("#session")
                stats = json.loads(await page.evaluate(f"fetch('/stats?session={session}').then((r) => r.text())"))
                last = stats["utterances"][-1]  # the short text is one sentence: one utterance either way
                found[kind].append({"press_to_speech_s": press, "server_first_frame_s": last["first_frame_latency_s"]})
        await browser.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--output", default=str(Path(__file__).with_name("voice_results.json")))
    args = parser.parse_args()
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    results: dict = {"machine": {"cpu": platform.processor() or re.sub(r".*model name\s*:\s*", "", next(
        (line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line), "")),
        "cores": os.cpu_count(), "flags": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags],
        "load_average": os.getloadavg()}}
    results["text_to_speech"] = text_to_speech(args.repeat)
    from frame_generation_pipeline.app.demo.speech import write_wav
    from frame_generation_pipeline.audio.voice import default_voice

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="voice-bench-") as folder:
        wav = write_wav(Path(folder) / "hello.wav", default_voice().speech(TEXTS["short"]))
        server = subprocess.Popen([sys.executable, "-m", "frame_generation_pipeline", "serve", "--demo", "--port", str(port),
                                   "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for _ in range(600):  # until it has loaded and warmed up (it accepts connections before)
                time.sleep(0.5)
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=60):
                        break
                except OSError:
                    if server.poll() is not None:
                        raise SystemExit(server.stderr.read().decode() if server.stderr else "the server stopped") from None
            results["page"] = asyncio.run(press_to_speech(f"http://127.0.0.1:{port}", wav, args.repeat, args.chromium))
        finally:
            server.terminate()
            server.wait(60)
    Path(args.output).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
