"""The page of `frame-gen serve` in headless Chromium (Debian's, driven by playwright), run by
test_serve.py inside a network namespace with only loopback. Prints one JSON object of findings."""

from __future__ import annotations

import asyncio
import json
import sys

from playwright.async_api import async_playwright
from serve_scenarios import start

#: Loopback WebRTC needs the first switch; the second keeps host candidates as addresses, not mDNS names.
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
]


async def scenario_page(args: dict) -> dict:
    runner, base, server = await start(args)
    found = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=args["chromium"], args=CHROMIUM_ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1000, "height": 900})
        await page.goto(base)
        await page.click("#connect")
        await page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=60000)
        await page.set_input_files("#file", args["clip"])
        await page.click("#speak")
        await page.wait_for_function("document.getElementById('status').textContent.startsWith('Speaking')", timeout=30000)
        found["status"] = await page.text_content("#status")
        found["current_time_first"] = await page.evaluate("document.getElementById('video').currentTime")
        await page.wait_for_function("document.getElementById('frames').textContent.split(' / ')[0] > 5", timeout=120000)
        found["current_time_later"] = await page.evaluate("document.getElementById('video').currentTime")
        found["video_width"] = await page.evaluate("document.getElementById('video').videoWidth")
        found["video_height"] = await page.evaluate("document.getElementById('video').videoHeight")
        found["latency_text"] = await page.text_content("#latency")
        found["speech_frames"] = int((await page.text_content("#frames")).split(" / ")[0])
        await page.screenshot(path=args["screenshot"], full_page=True)
        found["screenshot"] = args["screenshot"]
        await page.click("#disconnect")
        await browser.close()
    await runner.cleanup()
    return found


if __name__ == "__main__":
    print("RESULT " + json.dumps(asyncio.run(scenario_page(json.loads(sys.argv[2])))))
