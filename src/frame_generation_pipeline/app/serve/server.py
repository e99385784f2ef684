"""`frame-gen serve`: the live avatar over WebRTC (aiohttp + aiortc) and the page to talk through it.

One model, template set and audio encoder are loaded once and shared; each visitor gets a session
of its own (timeline, streaming state, tracks) on one LiveModel: one cropped-template cache, one
warm-up and fair turns at the model for all. Nothing slow runs on the event loop: the LiveModel is
built and warmed up in a worker thread when the server starts, sessions are made in one, and each
session's frames are converted in its pump thread. Routes: `GET /` the page, `GET /health`,
`GET /metrics`, `POST /offer`, `POST /speak?session=ID` and
`POST /say?session=ID` (speech_routes.py), `GET /stats?session=ID`,
`DELETE /session?session=ID`. Every bad request is answered with a status and a one-line JSON
reason; the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from ...devices import tune_allocator
from ...errors import first_line
from ...inputs.templates import TemplateSet
from ...live.pacing import SERVE_MARGIN
from ...live.session import StreamingSession, live_batch_size
from ...live.shared import LiveModel
from ...live.slot import RENDERED
from ...models.audio_encoder import AudioEncoder
from ...models.backends.base import InferenceBackend
from ...pipeline import FrameGenerationPipeline
from ...render.blend import FEATHER, Blend
from .ice import CONSENT_INTERVAL, configure_ice
from .media import SessionMedia, feed_microphone
from .metrics import CONTENT_TYPE, ServerMetrics
from .sdp import ADVICE, offer_problem
from .speech_routes import MAX_UPLOAD_BYTES, SpeechRoutes
from .speech_routes import reason as _reason

logger = logging.getLogger(__name__)

#: Seconds an ended session's threads are given to stop.
JOIN_SECONDS = 5.0


@dataclass
class Visitor:
    """One connected visitor: the peer connection, the live session and its media."""

    id: str
    pc: RTCPeerConnection
    session: StreamingSession
    media: SessionMedia
    tasks: list[asyncio.Task] = field(default_factory=list)
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)  # held while one /speak or /say queues its parts
    ending: bool = False


#: The video codecs a server can prefer (the visitor may still only take the other). VP8 is the
#: default: aiortc's VP8 encoder costs a quarter (720p) to a sixth (640x480) of its H.264 encoder's
#: CPU (x264 at its default preset) per frame (docs/live.md, "Where a live frame's CPU goes").
VIDEO_CODECS = {"vp8": "video/VP8", "h264": "video/H264"}


@dataclass
class ServerSettings:
    """What `frame-gen serve` was started with (beyond the model)."""

    max_sessions: int = 4
    token: str | None = None
    ice_addresses: tuple[str, ...] = ()
    video_width: int | None = None
    video_codec: str = "vp8"
    use_parsing: bool = False
    start_margin: float = SERVE_MARGIN
    blend: Blend = FEATHER
    idle: str = RENDERED
    consent_interval: float = CONSENT_INTERVAL


class AvatarServer:
    """The shared model and the sessions of the connected visitors."""

    def __init__(self, pipeline: FrameGenerationPipeline, templates: TemplateSet, encoder: AudioEncoder,
                 settings: ServerSettings) -> None:
        self.pipeline, self.templates, self.encoder, self.settings = pipeline, templates, encoder, settings
        tune_allocator()  # the server owns its process; the library never changes it
        self.visitors: dict[str, Visitor] = {}
        self.metrics = ServerMetrics(lambda: len(self.visitors))
        self.live: LiveModel | None = None
        self.model: InferenceBackend = pipeline.model  # the one for these templates once started (model_for)
        self._lock = asyncio.Lock()  # guards the count of visitors (and of those joining), nothing slow
        self._joining = 0

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._errors, self._auth], client_max_size=MAX_UPLOAD_BYTES)
        static = Path(str(resources.files(__package__).joinpath("static")))
        # aiohttp takes a plain function as a handler (its stubs ask for a coroutine function).
        app.router.add_get("/", lambda _request: web.FileResponse(static / "index.html"))  # type: ignore[arg-type,return-value]
        app.router.add_static("/static/", static)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics_text)
        app.router.add_post("/offer", self.offer)
        SpeechRoutes(self._visitor).add_to(app)  # /speak and /say
        app.router.add_get("/stats", self.stats)
        app.router.add_delete("/session", self.delete)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _start(self, _app: web.Application) -> None:
        """Install the ICE settings (once, process-wide: see ice.py), then build and warm up the
        shared LiveModel in a worker thread."""
        configure_ice(self.settings.ice_addresses, self.settings.consent_interval)
        self.live = await asyncio.to_thread(self._warmed_up)

    def _warmed_up(self) -> LiveModel:
        self.model = model = self.pipeline.model_for(self.templates, self.encoder)  # precision auto: walked on these templates
        live = LiveModel(model, self.templates, self.encoder, on_batch=self.metrics.batch,
                         template_cache=self.pipeline.template_cache, rest_in_background=self.settings.idle == RENDERED)
        live.fidelity_db = self.pipeline.fidelity_db(self.templates, self.encoder)
        self.metrics.arithmetic(model.name, model.precision, live.fidelity_db)
        live.warm_up(live_batch_size(self.pipeline.batch_of(model), model))
        return live

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.content_type == "application/json" or exc.status < 400:
                raise
            return _reason(exc.status, exc.reason)

    @web.middleware
    async def _auth(self, request: web.Request, handler) -> web.StreamResponse:
        token = self.settings.token
        public = request.method == "GET" and (request.path == "/" or request.path.startswith("/static/"))
        if token and not public:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _reason(401, "missing or wrong Authorization: Bearer token")
        return await handler(request)

    async def health(self, _request: web.Request) -> web.Response:
        """Status, sessions, backend and device."""
        return web.json_response({"status": "ok", "sessions": len(self.visitors), "max_sessions": self.settings.max_sessions,
                                  "backend": self.pipeline.backend, "device": self.pipeline.device})

    async def metrics_text(self, _request: web.Request) -> web.Response:
        """Sessions, frames rendered, shown and dropped, first-frame latency, render seconds (Prometheus)."""
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def offer(self, request: web.Request) -> web.Response:
        """Start a session from the browser's SDP offer; answer with ours and the session id."""
        try:
            body = await request.json()
            sdp, kind = body["sdp"], body["type"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            return _reason(400, 'expected JSON {"sdp": ..., "type": "offer"}')
        if kind != "offer" or not isinstance(sdp, str):
            return _reason(400, f"expected an SDP offer, got type {kind!r}")
        if problem := offer_problem(sdp):
            return _reason(400, problem)
        if self.live is None:
            return _reason(503, "the server is still starting: try again in a few seconds")
        async with self._lock:
            if len(self.visitors) + self._joining >= self.settings.max_sessions:
                return _reason(503, f"all {self.settings.max_sessions} sessions are in use: try again later")
            self._joining += 1
        try:
            session = await asyncio.to_thread(StreamingSession.on, self.live, batch_size=self.pipeline.batch_of(self.model),
                                              realtime=True, margin=self.settings.start_margin,
                                              blend=self.settings.blend, idle=self.settings.idle)
        finally:
            async with self._lock:
                self._joining -= 1
        visitor = self._new_visitor(session)
        try:
            await visitor.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await visitor.pc.setLocalDescription(await visitor.pc.createAnswer())
        except Exception as exc:  # aiortc raises ValueError and others for SDP it cannot use
            await self._end(visitor.id, "refused offer")
            return _reason(400, f"the SDP offer could not be negotiated (no codec or transport in common: {first_line(exc)}): {ADVICE}")
        logger.info("session %s started (%d of %d)", visitor.id, len(self.visitors), self.settings.max_sessions)
        return web.json_response({"sdp": visitor.pc.localDescription.sdp, "type": "answer", "session": visitor.id})

    def _new_visitor(self, session: StreamingSession) -> Visitor:
        session_id = uuid.uuid4().hex[:12]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        media = SessionMedia(session, asyncio.get_running_loop(), self.settings.video_width, self.metrics)
        visitor = Visitor(session_id, pc, session, media)
        video = pc.addTransceiver(media.video, direction="sendonly")
        preferred = VIDEO_CODECS[self.settings.video_codec]
        codecs = RTCRtpSender.getCapabilities("video").codecs
        video.setCodecPreferences([c for c in codecs if c.mimeType == preferred] +
                                  [c for c in codecs if c.mimeType != preferred])
        pc.addTransceiver(media.audio, direction="sendrecv")

        @pc.on("track")
        def on_track(track) -> None:
            if track.kind == "audio":
                visitor.tasks.append(asyncio.ensure_future(feed_microphone(track, session)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                media.start()  # both tracks are read from now on: they begin with the same slot
            elif pc.connectionState in ("failed", "closed"):
                await self._end(session_id, f"connection {pc.connectionState}")

        self.visitors[session_id] = visitor
        return visitor

    def _visitor(self, request: web.Request) -> Visitor:
        session_id = request.query.get("session", "")
        if not session_id:
            raise web.HTTPBadRequest(reason="the session parameter is missing: give ?session=ID (from POST /offer)")
        if session_id not in self.visitors:
            raise web.HTTPNotFound(reason=f"no session {session_id!r}")
        return self.visitors[session_id]

    async def stats(self, request: web.Request) -> web.Response:
        """Live figures of a session: latency to first frame, frames/s, dropped frames."""
        session = self._visitor(request).session
        stats = session.stats
        return web.json_response({"first_frame_latency_s": stats.first_frame_latency_s, "render_fps": session.rate.frames_per_second
                                  if session.rate.seconds_per_frame else None, "backend": self.model.name,
                                  "precision": self.model.precision, "fidelity_db": session.live.fidelity_db,
                                  "slots": stats.slots,
                                  "speech_frames": stats.speech_frames, "dropped_frames": stats.dropped_frames,
                                  "repeated_frames": stats.repeated_frames, "idle_frames": stats.idle_frames,
                                  "idle_rendered": stats.idle_rendered, "idle_raw": stats.idle_raw,
                                  "utterances": [asdict(u) for u in list(stats.utterances)[-8:]]})

    async def delete(self, request: web.Request) -> web.Response:
        """End a session."""
        visitor = self._visitor(request)
        await self._end(visitor.id, "ended by the visitor")
        return web.json_response({"session": visitor.id, "ended": True})

    async def _end(self, session_id: str, why: str) -> None:
        """End a visitor's session: its session, pump, render thread, tracks and connection all stop
        before it leaves the count (so /health says 0 only once everything is gone)."""
        visitor = self.visitors.get(session_id)
        if visitor is None or visitor.ending:
            return
        visitor.ending = True
        visitor.media.stop()
        for task in visitor.tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await visitor.pc.close()
        await asyncio.to_thread(visitor.media.join, JOIN_SECONDS)
        del self.visitors[session_id]
        logger.info("session %s ended: %s (%d left)", session_id, why, len(self.visitors))

    async def _shutdown(self, _app: web.Application) -> None:
        for session_id in list(self.visitors):
            await self._end(session_id, "server stopping")
        if self.live is not None:
            self.live.close()
