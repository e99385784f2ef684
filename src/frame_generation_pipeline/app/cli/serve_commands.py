"""The serve subcommand: the live avatar over WebRTC with its page."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import tempfile
from contextlib import nullcontext

from ...errors import ConfigurationError
from ...live.pacing import SERVE_MARGIN
from .arguments import (
    add_audio_model,
    add_blend,
    add_idle,
    add_model,
    blend_from,
    ip_address,
    non_negative_float,
    port_number,
    positive_int,
    subcommand,
)
from .from_args import pipeline_from


def run_serve(args: argparse.Namespace) -> int:
    """`frame-gen serve`: load once, serve until Ctrl-C or SIGTERM (exit 0)."""
    check_avatar_arguments(args)
    # a port in use is one line, before the server's modules (torch, aiortc: seconds) are imported
    with listen(args.host, args.port) as listener:
        try:
            from aiohttp import web

            from ..serve.server import AvatarServer, ServerSettings
        except ImportError as exc:
            from ...errors import BackendUnavailableError, install_hint

            raise BackendUnavailableError(f"serve needs aiohttp, aiortc and prometheus-client ({exc.name} is missing): "
                                          f"{install_hint('serve')}") from None
        from ...inputs.templates import TemplateSet

        with tempfile.TemporaryDirectory(prefix="frame-gen-demo-") if args.demo else nullcontext() as folder:
            if folder is not None:
                from ..demo.run import make_demo_inputs

                demo = make_demo_inputs(folder, speech=False)
                args.checkpoint, args.template_dir, args.audio_encoder = demo.checkpoint, demo.template_dir, demo.audio_encoder
                args.parsing = True
            templates = TemplateSet.from_folder(args.template_dir, args.parsing)
            blend = blend_from(args)  # checked before the model loads
            pipeline = pipeline_from(args)
            encoder = pipeline.audio_model(args.audio_encoder, args.hubert_model)
            settings = ServerSettings(args.max_sessions, args.token, tuple(args.ice_address), args.video_width, args.video_codec,
                                      args.parsing, args.start_margin, blend, args.idle)
            server = AvatarServer(pipeline, templates, encoder, settings)
            web.run_app(server.app(), sock=listener, print=None if args.quiet else print, handle_signals=True)
    return 0


def check_avatar_arguments(args: argparse.Namespace) -> None:
    """--demo, or --checkpoint, --template-dir and an audio model: ConfigurationError naming what is extra or missing."""
    given = {"--checkpoint": args.checkpoint, "--template-dir": args.template_dir,
             "--audio-encoder": args.audio_encoder, "--hubert-model": args.hubert_model}
    if args.demo:
        extra = [flag for flag, value in given.items() if value is not None]
        if extra:
            raise ConfigurationError(f"--demo serves the demo avatar with its own files: drop {', '.join(extra)}")
        return
    missing = [flag for flag in ("--checkpoint", "--template-dir") if given[flag] is None]
    if args.audio_encoder is None and args.hubert_model is None:
        missing.append("--audio-encoder (or --hubert-model)")
    if missing:
        raise ConfigurationError(f"missing {', '.join(missing)}: give your avatar's files, or --demo for the demo avatar")


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
        "frame-gen serve --demo",
    )
    serve.add_argument("--demo", action="store_true",
                       help="serve the demo avatar (shipped with the package): "
                            "no checkpoint, templates or encoder needed")
    add_model(serve, required=False)
    serve.add_argument("--template-dir", default=None, help="folder with full_body_img/, landmarks/ [, parsing/]")
    add_audio_model(serve, required=False)
    serve.add_argument("--parsing", action="store_true", help="keep parsing-masked pixels from the template")
    add_blend(serve)
    add_idle(serve)
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
