"""Shared pieces of the command line: the parser class, help formatting, value types, option groups."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from ...contract import AUDIO_MODELS, BLEND_MODES, DEFAULT_BLEND_WIDTH, MODES, ONNX_OPSETS
from ...errors import ConfigurationError
from ...live.slot import IDLE_CHOICES, RENDERED
from ...models.backends import BACKEND_CHOICES
from ...outputs.video import DEFAULT_CRF, DEFAULT_PRESET, PRESETS
from ...precisions import PRECISION_CHOICES, describe_auto, where_they_run
from ...render.blend import Blend
from ...render.template_cache import DEFAULT_TEMPLATE_CACHE_MB

#: What no --blend means where frames are shown (`blend_from`).
SHOWN_BLEND = "feather; none with --exact"
HUBERT_HELP = ("local hubert model folder to compute hubert features from --audio "
               "(huggingface-cli download facebook/hubert-large-ls960-ft --local-dir DIR)")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit status 2, and which takes
    options only as spelled in full (no prefix of one, so an unknown option is never another's start)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; a default shown once, and only where there is one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text  # a help that already says its default (or %(default)s)
            and not action.required
            and default not in (None, False, argparse.SUPPRESS, [], ())
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1)


def port_number(text: str) -> int:
    """A TCP port, 1..65535."""
    return _int_within(text, 1, 65535)


def ip_address(text: str) -> str:
    """An IPv4 or IPv6 address, as written."""
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IP address (e.g. 127.0.0.1 or ::1), got {text!r}") from None
    return text


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _finite_float(text, "greater than 0", lambda value: value > 0)


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    return _finite_float(text, "at least 0", lambda value: value >= 0)


def _finite_float(text: str, condition: str, holds: Callable[[float], bool]) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or not holds(value):
        raise argparse.ArgumentTypeError(f"must be a finite number {condition}, got {text!r}")
    return value


def crf_value(text: str) -> int:
    """An x264 crf, 0..51."""
    return _int_within(text, 0, 51)


def _int_within(text: str, low: int, high: int) -> int:
    value = _int_at_least(text, low)
    if value > high:
        raise argparse.ArgumentTypeError(f"must be within {low}..{high}, got {value}")
    return value


def opset_value(text: str) -> int:
    """An ONNX opset this package exports (11..20)."""
    value = positive_int(text)
    if value not in ONNX_OPSETS:
        raise argparse.ArgumentTypeError(f"must be within {ONNX_OPSETS.start}..{ONNX_OPSETS.stop - 1}, got {value}")
    return value


def add_common(parser: argparse.ArgumentParser) -> None:
    """-q/--quiet and --debug, which every subcommand takes."""
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but warnings and errors")
    parser.add_argument("--debug", action="store_true", help="debug logs, and tracebacks on errors")


def add_device(parser: argparse.ArgumentParser, default_text: str = "CUDA when available, else cpu") -> None:
    """--device."""
    parser.add_argument("--device", default=None, help=f"cpu, cuda, cuda:N or auto (default: {default_text})")


def add_model(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--checkpoint (`required` or not), --mode, --device, --backend, --exact, --onnx, --batch-size, --precision."""
    parser.add_argument("--checkpoint", required=required, help="SyncTalk_2D 328 checkpoint (.pth)")
    parser.add_argument("--mode", default=None, choices=tuple(MODES),
                        help="audio feature mode of the checkpoint (default: hubert with --hubert-model, else ave)")
    add_device(parser)
    parser.add_argument(
        "--backend", default="auto", choices=BACKEND_CHOICES,
        help="auto: the fastest installed for the device and precision (docs/contract.md, what each precision promises)",
    )
    parser.add_argument("--exact", action="store_true", help="frames bit-identical to upstream: --backend torch on the CPU, "
                        "with upstream's paste (--blend none, unless --blend feather is given)")
    parser.add_argument("--onnx", default=None, help="an exported .onnx of this checkpoint for onnxruntime/openvino "
                        "(default: export once into the cache)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="frames per network call (default: per backend; at most 8, where a larger one adds no speed)")
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help=f"auto: {describe_auto()}; {where_they_run()}")
    parser.add_argument("--template-cache-mb", type=non_negative_int, default=DEFAULT_TEMPLATE_CACHE_MB,
                        help="memory for the network's template half, 6.3 MB per template kept (0: none)")


def add_render_inputs(parser: argparse.ArgumentParser, blend_default: str = SHOWN_BLEND) -> None:
    """--template-dir, the features or the speech + encoder, --start-frame, --max-frames, --parsing, the
    blend options (`blend_default`: what no --blend means)."""
    parser.add_argument("--template-dir", required=True, help="folder with full_body_img/, landmarks/ [, parsing/]")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--audio-features", default=None, help="audio features (.npy, or .bin + .bin.json), one row per frame")
    source.add_argument("--audio-encoder", default=None, help="ave audio encoder (.pth) to compute features from --audio")
    source.add_argument("--hubert-model", default=None, help=HUBERT_HELP)
    parser.add_argument("--start-frame", type=non_negative_int, default=0, help="first template frame to use")
    parser.add_argument("--max-frames", type=positive_int, default=None, help="render only the first N frames (a preview)")
    parser.add_argument("--parsing", action="store_true", help="keep parsing-masked pixels from the template")
    add_blend(parser, blend_default)


def add_blend(parser: argparse.ArgumentParser, default: str = SHOWN_BLEND) -> None:
    """--blend, --blend-width, --color-match (how the generated square joins the template; `default`
    says what its absence means)."""
    parser.add_argument("--blend", default=None, choices=BLEND_MODES,
                        help="feather: fade the generated square into the template; none: upstream's hard paste, "
                             f"whose edge shows as a box where the square differs from the template (default: {default})")
    parser.add_argument("--blend-width", type=positive_int, default=DEFAULT_BLEND_WIDTH, metavar="PX",
                        help="feather: frame pixels from the square's edge to full weight")
    parser.add_argument("--color-match", action="store_true",
                        help="feather: first match the square's colours to the template's near its edge")


def blend_from(args: argparse.Namespace, exact: bool = False) -> Blend:
    """The blend flags as one Blend: --blend as given, else upstream's hard paste where the frames
    must be upstream's (--exact, or `exact`: a reference bundle), else the feather. A combination it
    refuses raises ConfigurationError."""
    mode = args.blend or ("none" if exact or getattr(args, "exact", False) else "feather")
    if args.color_match and mode == "none":
        why = "--blend none" if args.blend else "--exact" if getattr(args, "exact", False) else "a reference bundle"
        raise ConfigurationError(f"--color-match works on the feathered paste; {why} gives upstream's hard paste: "
                                 "add --blend feather or drop --color-match")
    return Blend(mode, args.blend_width, args.color_match)


def add_audio_model(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--audio-encoder or --hubert-model, one of them `required`: the model that computes features from speech."""
    model = parser.add_mutually_exclusive_group(required=required)
    model.add_argument("--audio-encoder", default=None, help="ave audio encoder (audio_visual_encoder.pth)")
    model.add_argument("--hubert-model", default=None, help=HUBERT_HELP)


def audio_model_option(args: argparse.Namespace) -> str | None:
    """Which audio model the arguments give ("audio_encoder", "hubert_model"), or None."""
    return next((name for name in AUDIO_MODELS if getattr(args, name, None) is not None), None)


def add_encoding(parser: argparse.ArgumentParser) -> None:
    """--fps, --crf, --preset."""
    parser.add_argument("--fps", type=positive_float, default=None, help="frame rate (default: 25 for ave/hubert, 20 for wenet)")
    parser.add_argument("--crf", type=crf_value, default=DEFAULT_CRF, help="x264 quality 0..51, lower is better")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=PRESETS, help="x264 speed preset")


class _Refused(argparse.Action):
    """An option its command does not take, refused naming what to give instead (see `refuse`)."""

    def __init__(self, option_strings: list[str], dest: str, hint: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.hint = hint

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> NoReturn:
        parser.error(f"argument {option_string}: {self.hint}")


def refuse(parser: argparse.ArgumentParser, option: str, hint: str) -> None:
    """Refuse `option`, an option users reach for that `parser` does not take, with `hint` (hidden from help)."""
    parser.add_argument(option, action=_Refused, hint=hint, nargs="*", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


Handler = Callable[[argparse.Namespace], int]


def subcommand(
    commands: argparse._SubParsersAction, name: str, handler: Handler, summary: str, description: str, *examples: str
) -> argparse.ArgumentParser:
    """Add subcommand `name` with its help, examples and the common options."""
    parser = commands.add_parser(
        name, help=summary, description=description, formatter_class=Formatter,
        epilog="example:\n" + "\n".join(f"  {example}" for example in examples),
    )
    parser.set_defaults(handler=handler)
    add_common(parser)
    return parser


def add_idle(parser: argparse.ArgumentParser) -> None:
    """--idle: what the avatar shows between utterances."""
    parser.add_argument("--idle", default=RENDERED, choices=IDLE_CHOICES,
                        help="rendered: each template's rest frame (the network's render of silence: the mouth at "
                             "rest; speech runs on into it); template: the templates as they are (docs/live.md)")
