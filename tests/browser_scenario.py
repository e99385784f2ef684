"""The page of `frame-gen serve` in headless Chromium (Debian's, driven by playwright): a scenario of
serve_scenarios.py, on its server."""

from __future__ import annotations

import aiohttp
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
        found["file_press"] = await page.text_content("#press")
        found["say"] = await say_text(page, args, base, visitor)
        await page.click("#disconnect")
        await browser.close()
    return found


#: What the page's video and audio do, sampled at each screen refresh: how far the frame (drawn small,
#: its green channel) is from the first one sampled, the avatar at rest (mean absolute difference, 0-255),
#: and the RMS of the audio played out since the refresh before (from the receiver's totalAudioEnergy,
#: as the page measures its latency).
WATCH = """async () => {
  const video = document.getElementById('video'), canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 48;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  let rest = null, heard = await playedAudio();
  window.seen = [];
  (async () => {
    while (window.seen.length < 100000 && pc) {
      await new Promise(requestAnimationFrame);
      context.drawImage(video, 0, 0, 64, 48);
      const pixels = context.getImageData(0, 0, 64, 48).data;
      rest = rest || pixels;
      let away = 0;
      for (let i = 0; i < pixels.length; i += 4) away += Math.abs(pixels[i + 1] - rest[i + 1]);
      const now = await playedAudio(), seconds = now.seconds - heard.seconds;
      window.seen.push([away / (64 * 48), seconds > 0 ? Math.sqrt((now.energy - heard.energy) / seconds) : 0]);
      heard = now;
    }
  })();
}"""
#: Two sentences to say, and requests /say must refuse (with a status and a reason) while they are said.
TEXT = "Hello there. I say what you type."
BAD_SAYS = {"empty": {"json": {"text": "  "}}, "too_long": {"json": {"text": "word " * 250}},
            "not_json": {"data": b"hello"}, "punctuation_only": {"json": {"text": "... , ."}}}


async def say_text(page, args: dict, base: str, visitor) -> dict:
    """Type TEXT, press Say; while it is said, bad /say requests on the same session; what the page saw."""
    found = {}
    for _ in range(600):  # the file's utterance over (its run into silence included): what follows is rest
        if not visitor.session.timeline.utterances():
            break
        await page.wait_for_timeout(100)
    await page.wait_for_timeout(500)  # and its last frames through the page's jitter buffer
    await page.evaluate(WATCH)
    await page.wait_for_timeout(500)
    idle = len(await page.evaluate("window.seen"))
    before = len(visitor.session.stats.utterances)
    await page.fill("#text", TEXT)
    await page.click("#say")
    async with aiohttp.ClientSession() as http:
        found["bad"] = {}
        for name, kwargs in BAD_SAYS.items():
            async with http.post(f"{base}/say?session={visitor.id}", **kwargs) as response:
                found["bad"][name] = [response.status, (await response.json()).get("error", "")]
    await page.wait_for_function("document.getElementById('press').textContent.endsWith(' s')", timeout=60000)
    found["status"] = await page.text_content("#status")
    found["press"] = await page.text_content("#press")
    reports = lambda: list(visitor.session.stats.utterances)[before:]  # noqa: E731
    for _ in range(600):
        if len(reports()) == 2 and not visitor.session.timeline.utterances():  # both placed, and shown
            break
        await page.wait_for_timeout(100)
    await page.wait_for_timeout(1000)
    found["utterances"] = [{"frames": r.frames, "dropped": r.dropped, "policy": r.policy,
                            "first_frame_latency_s": r.first_frame_latency_s} for r in reports()]
    seen = await page.evaluate("window.seen")
    found["idle"], found["speaking"] = seen[:idle], seen[idle:]
    return found
