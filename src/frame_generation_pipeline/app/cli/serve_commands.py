"""The serve subcommand: the live avatar over WebRTC with its page."""

from __future__ import annotations

import argparse
import errno
import os
import socket

from ...errors import ConfigurationError
from ...live.timeline import SERVE_MARGIN
from .arguments import (
    add_audio_model,
    add_blend,
    add_model,
    blend_options,
    ip_address,
    non_negative_float,
    port_number,
    positive_int,
    subcommand,
)
from .prepare import pipeline_from


def run_serve(args: argparse.Namespace) -> int:
    """`frame-gen serve`: load once, serve until Ctrl-C or SIGTERM (exit 0)."""
    try:
        from aiohttp import web

        from ..serve.server import AvatarServer, ServerSettings
    except ImportError as exc:
        from ...errors import BackendUnavailableError, install_hint

        raise BackendUnavailableError(f"serve needs aiohttp, aiortc and prometheus-client ({exc.name} is missing): "
                                      f"{install_hint('serve')}") from None
    from ...inputs.templates import TemplateSet
    from ...render.blend import Blend

    listener = listen(args.host, args.port)  # a port in use is one line, before anything is loaded
    templates = TemplateSet.from_folder(args.template_dir, args.parsing)
    blend = Blend.from_settings(blend_options(args))  # checked before the model loads
    pipeline = pipeline_from(args)
    encoder = pipeline.audio_model(args.audio_encoder, args.hubert_model)
    settings = ServerSettings(args.max_sessions, args.token, tuple(args.ice_address), args.video_width, args.video_codec,
                              args.parsing, args.start_margin, blend)
    server = AvatarServer(pipeline, templates, encoder, settings)
    web.run_app(server.app(), sock=listener, print=None if args.quiet else print, handle_signals=True)
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port; ConfigurationError naming --host/--port when it cannot be had."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:  # socket.gaierror too: a name that does not resolve
        if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigurationError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigurationError(f"--port {port}: cannot listen on {host}:{port} ({reason}; "
                                 "is another server using it?)") from None


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `serve` to `commands`."""
    serve = subcommand(
        commands, "serve", run_serve, "serve the live avatar over WebRTC, with a page to talk through it",
        "Load the model once and serve the live avatar: open the page, connect, speak a file or turn the\n"
        "microphone on. Binds 127.0.0.1 unless --host says otherwise. Ctrl-C or SIGTERM close every\n"
        "connection and exit 0. Needs the [serve] extra (aiohttp, aiortc, prometheus-client).",
        "frame-gen serve --checkpoint 5.pth --template-dir dataset/May --audio-encoder audio_visual_encoder.pth",
    )
    add_model(serve)
    serve.add_argument("--template-dir", required=True, help="folder with full_body_img/, landmarks/ [, parsing/]")
    add_audio_model(serve)
    serve.add_argument("--parsing", action="store_true", help="keep parsing-masked pixels from the template")
    add_blend(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=port_number, default=8010, help="port to listen on")
    serve.add_argument("--max-sessions", type=positive_int, default=4, help="visitors at once (more get 503)")
    serve.add_argument("--token", default=None, help="require Authorization: Bearer TOKEN on every request but the page")
    serve.add_argument("--ice-address", action="append", type=ip_address, default=[], metavar="ADDR",
                       help="limit ICE host candidates to this address (repeatable; default: every interface)")
    serve.add_argument("--video-width", type=positive_int, default=None, help="scale the video down to this width")
    serve.add_argument("--video-codec", choices=("vp8", "h264"), default="vp8",
                       help="the video codec offered first (default vp8: a quarter to a sixth of aiortc's H.264 "
                            "encoder CPU; docs/live.md)")
    serve.add_argument("--start-margin", type=non_negative_float, default=SERVE_MARGIN, metavar="SECONDS",
                       help=f"slack before each utterance's first frame (default {SERVE_MARGIN}); raise it on a busy "
                            "machine whose /stats show dropped frames")
