"""The page of `frame-gen serve` in headless Chromium (Debian's, driven by playwright): a scenario of
serve_scenarios.py, on its server."""

from __future__ import annotations

from playwright.async_api import async_playwright

from frame_generation_pipeline.app.serve.server import AvatarServer

#: Loopback WebRTC needs the first switch; the second keeps host candidates as addresses, not mDNS names.
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
]


async def scenario_page(args: dict, base: str, server: AvatarServer) -> dict:
    """The page connects, plays the video, speaks the short clip; what it shows, and the server's own
    figures of its session once the utterance is over and the page has shown them."""
    found = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=args["chromium"], args=CHROMIUM_ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1000, "height": 900})
        await page.goto(base)
        await page.click("#connect")
        await page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=60000)
        await page.set_input_files("#file", args["short_clip"])
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
        shown = "document.getElementById('frames').textContent.split(' / ').map(Number)"
        await page.wait_for_function(f"{shown}[0] + {shown}[1] >= {args['short_frames']}", timeout=120000)
        found["page_final"] = {"frames": await page.text_content("#frames"), "latency": await page.text_content("#latency")}
        [visitor] = server.visitors.values()
        stats = visitor.session.stats  # as the server counts them, once the page shows the whole utterance
        found["server"] = {"speech_frames": stats.speech_frames, "dropped_frames": stats.dropped_frames,
                           "first_frame_latency_s": stats.first_frame_latency_s}
        await page.click("#disconnect")
        await browser.close()
    return found
