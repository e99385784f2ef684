"""The rendering subcommands: video, frames, reference, features, export-onnx, verify-reference."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ...contract import MODES, get_mode
from ...errors import ConfigurationError, OutputError
from ...inputs.features import FEATURE_FORMATS
from .arguments import (
    add_audio_model,
    add_device,
    add_encoding,
    add_model,
    add_render_inputs,
    blend_from,
    opset_value,
    positive_float,
    positive_int,
    subcommand,
)
from .from_args import audio_model_from, pipeline_from, plan_from
from .messages import command_seconds, report

if TYPE_CHECKING:  # the CLI imports torch only in the commands that need it
    from ...models.audio_encoder import AudioEncoder
    from ...models.backends.torch_backend import TorchBackend


def render_options(args: argparse.Namespace, reference: bool = False, **extra):
    """RenderOptions from the parsed arguments (of a `reference` bundle: upstream's paste unless --blend says)."""
    from ...options import RenderOptions

    return RenderOptions(start_frame=args.start_frame, max_frames=args.max_frames, use_parsing=args.parsing,
                         show_progress=not args.quiet, blend=blend_from(args, reference), **extra)


def run_video(args: argparse.Namespace) -> int:
    """`frame-gen video`: render and encode one video."""
    plan, settings, encoder = plan_from(args, "video", args.output,
                                        render_options(args, fps=args.fps, crf=args.crf, preset=args.preset), feature_files=True)
    report(args, pipeline_from(args, settings, encoder).render(plan).summary(command_seconds(args)))
    return 0


def run_frames(args: argparse.Namespace) -> int:
    """`frame-gen frames`: render numbered image files into a folder."""
    plan, settings, encoder = plan_from(args, "frames", args.output_dir, render_options(args, image_format=args.image_format),
                                        feature_files=True)
    report(args, pipeline_from(args, settings, encoder).render(plan).summary(command_seconds(args)))
    return 0


def run_reference(args: argparse.Namespace) -> int:
    """`frame-gen reference`: write a reference bundle (exact path)."""
    # bundles are made on the exact path unless the options ask for another: then load nothing else
    exact = args.backend == "auto" and args.onnx is None and args.device in (None, "cpu") and args.precision in ("auto", "fp32")
    plan, settings, encoder = plan_from(args, "reference", args.output_dir, render_options(args, True, samples=args.samples),
                                        exact=exact, feature_files=True)
    result = pipeline_from(args, settings, encoder).render(plan)
    report(args, result.summary(command_seconds(args)).replace(" frames (", " frames rendered (", 1) + ", exact path")
    return 0


def feature_format(output: Path, given: str | None) -> str:
    """The feature file format of `output`'s suffix (.npy, .bin); OutputError for another suffix,
    ConfigurationError for a --format that disagrees with it."""
    suffix = output.suffix.lower().lstrip(".")
    if suffix not in FEATURE_FORMATS:
        found = f"suffix {output.suffix!r}" if output.suffix else "no suffix"
        raise OutputError(output, f"has {found}: expected a feature file ending in .npy, or .bin "
                                  "(raw float32 rows with their FILE.bin.json)")
    if given is not None and given != suffix:
        raise ConfigurationError(f"--format {given} disagrees with --output {output} (a .{suffix} file): drop --format")
    return suffix


def run_features(args: argparse.Namespace) -> int:
    """`frame-gen features`: ave or hubert features from speech, as .npy or .bin + .json (from --output's suffix)."""
    from ...files import atomic_file, check_output
    from ...inputs.features import check_description_replaceable, sidecar_path, write_feature_array
    from ...models.audio_models import load_audio_model
    from ...plan import read_sources

    output = Path(args.output)
    described = audio_model_from(args)
    inputs = {"--audio": args.audio, described.argument: described.path}
    check_output(output, "--output", inputs)
    feature_format_ = feature_format(output, args.format)
    if feature_format_ == "bin":
        check_output(sidecar_path(output), f"--output's {sidecar_path(output).name}", inputs)
        check_description_replaceable(sidecar_path(output))
    sources = read_sources("features", get_mode(described.mode), None, args.audio, described)
    assert sources.audio_model is not None and sources.speech is not None  # the speech decoded for the audio model
    features = load_audio_model(sources.audio_model, args.device).features_from_samples(sources.speech,
                                                                                        str(sources.audio[0].path))
    with atomic_file(output) as temporary:
        if feature_format_ == "bin":
            with atomic_file(sidecar_path(output)) as sidecar:
                write_feature_array(features, temporary, "bin", sidecar)
        else:
            write_feature_array(features, temporary, "npy")
    shape = " x ".join(str(n) for n in features.shape[1:])
    report(args, f"wrote {output}: {features.shape[0]} frames x {shape} {described.mode} features ({feature_format_})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """`frame-gen export-onnx`: export a U-Net checkpoint or the audio encoder, checked against torch."""
    from ...files import check_output

    check_output(args.output, "--output", {"--checkpoint": args.checkpoint, "--audio-encoder": args.audio_encoder})
    if Path(args.output).suffix.lower() != ".onnx":
        raise ConfigurationError(f"--output {args.output} must end in .onnx (an ONNX model file)")
    if args.audio_encoder is not None:
        from ...models.audio_encoder import AudioEncoder

        model: AudioEncoder | TorchBackend = AudioEncoder(args.audio_encoder, device="cpu")
    else:
        from ...models.backends.torch_backend import TorchBackend

        model = TorchBackend(args.checkpoint, mode=args.mode, device="cpu")
    exported = model.export_to_onnx(args.output, args.opset)
    report(args, f"wrote {exported.path} (opset {exported.opset_version}); max difference to torch {exported.max_abs_difference:.2e}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """`frame-gen verify-reference`: recompute a bundle; 1 on a mismatch."""
    from ...ports.reference import read_metadata
    from ...ports.verify import encoder_function, format_report, verify_bundle

    model = None
    if args.checkpoint is not None:
        from ...models.backends.torch_backend import TorchBackend

        model = TorchBackend(args.checkpoint, mode=read_metadata(args.bundle)["mode"], device=args.device or "cpu")
    encoder = None if args.audio_encoder is None else encoder_function(args.audio_encoder)
    hubert = None
    if args.hubert_model is not None:
        from ...models.hubert import HubertEncoder

        hubert = HubertEncoder(args.hubert_model, device=args.device or "cpu")
    verification = verify_bundle(args.bundle, model, network_tolerance=args.tolerance, encoder=encoder, hubert=hubert)
    print(format_report(verification))
    return 0 if verification.ok else 1


VIDEO_EXAMPLES = (
    "frame-gen video --checkpoint checkpoint/May/5.pth --template-dir dataset/May \\\n"
    "    --audio-encoder audio_visual_encoder.pth --audio speech.wav --output out.mp4",
    "frame-gen video --checkpoint checkpoint/May/5.pth --mode ave --template-dir dataset/May \\\n"
    "    --audio-features speech_ave.npy --audio speech.wav --output out.mp4 --max-frames 100",
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add the rendering subcommands to `commands`, in the order --help lists them."""
    _add_video(commands)
    _add_frames(commands)
    _add_reference(commands)
    _add_features(commands)
    _add_export_onnx(commands)
    _add_verify_reference(commands)


def _add_video(commands: argparse._SubParsersAction) -> None:
    """Add `video` and its options to `commands`."""
    video = subcommand(
        commands, "video", run_video, "render an H.264/AAC video with the speech audio",
        "Render frames and encode them once, with the speech, into a video file (.mp4, .m4v, .mov, .mkv).\n"
        "Features come from --audio-features, or are computed from --audio with --audio-encoder.",
        *VIDEO_EXAMPLES,
    )
    add_model(video)
    add_render_inputs(video)
    video.add_argument("--audio", required=True, help="speech audio to mux (wav, mp3, m4a, flac...)")
    video.add_argument("--output", required=True, help="video file to write")
    add_encoding(video)


def _add_frames(commands: argparse._SubParsersAction) -> None:
    """Add `frames` and its options to `commands`."""
    frames = subcommand(
        commands, "frames", run_frames, "render frames as image files",
        "Render one lossless image per frame into a folder, which is replaced as a whole:\n"
        "afterwards it holds exactly these frames and .frame-gen-output.json, the list of them. Only an\n"
        "empty folder or one frame-gen wrote (that list says so) is replaced; any other is refused.",
        "frame-gen frames --checkpoint checkpoint/May/5.pth --mode ave \\\n"
        "    --template-dir dataset/May --audio-features speech_ave.npy --output-dir out/frames",
    )
    add_model(frames)
    add_render_inputs(frames)
    frames.add_argument("--audio", default=None, help="speech to compute features from, with --audio-encoder")
    frames.add_argument("--output-dir", required=True, help="folder for the frames (000000.png, ...)")
    frames.add_argument("--image-format", default="png", choices=("png", "jpg"), help="png is lossless")


def _add_reference(commands: argparse._SubParsersAction) -> None:
    """Add `reference` and its options to `commands`."""
    reference = subcommand(
        commands, "reference", run_reference, "write a lossless reference bundle for ports",
        "Render every frame with the exact torch backend on the CPU and save, for sample frames, the\n"
        "template, landmarks, network input, audio window, raw output and final frame, all lossless,\n"
        "with metadata.json. No video is written.",
        "frame-gen reference --checkpoint checkpoint/May/5.pth --template-dir dataset/May \\\n"
        "    --audio-features speech_ave.npy --output-dir bundle --samples 10",
    )
    add_model(reference)
    add_render_inputs(reference, "none, upstream's paste, what ports reproduce")
    reference.add_argument("--audio", default=None, help="speech to compute features from, with --audio-encoder")
    reference.add_argument("--output-dir", required=True, help="bundle folder to write")
    reference.add_argument("--samples", type=positive_int, default=10, help="sample frames, first and last included")


def _add_features(commands: argparse._SubParsersAction) -> None:
    """Add `features` and its options to `commands`."""
    features = subcommand(
        commands, "features", run_features, "compute ave or hubert audio features from speech",
        "Decode speech (wav, mp3, m4a, flac...), compute its log-mel windows and encode them with the ave\n"
        "audio encoder into (F, 512) features, or run a local hubert model folder over it into (F, 2, 1024)\n"
        "features, one row per 25 fps frame. A .npy --output is NumPy's format; a .bin one raw little-endian\n"
        "float32 rows, with FILE.bin.json (num_frames, feature_size, shape) for ports.",
        "frame-gen features --audio-encoder audio_visual_encoder.pth --audio speech.wav --output feats.npy",
        "frame-gen features --hubert-model hubert-large-ls960-ft/ --audio speech.wav --output feats_hu.npy",
    )
    add_audio_model(features)
    features.add_argument("--audio", required=True, help="speech audio file")
    features.add_argument("--output", required=True, help="file to write (exactly this name)")
    features.add_argument("--format", default=None, choices=FEATURE_FORMATS,
                          help="npy, or bin + .json for ports (default: from --output's suffix, which it must match)")
    add_device(features)


def _add_export_onnx(commands: argparse._SubParsersAction) -> None:
    """Add `export-onnx` and its options to `commands`."""
    export = subcommand(
        commands, "export-onnx", run_export, "export a checkpoint or the audio encoder to ONNX, checked against torch",
        "Export the U-Net (inputs `input`, `audio`; output `output`) or the ave audio encoder (input `mel`\n"
        "(B, 1, 80, 16); output `features` (B, 512)) to ONNX with a dynamic batch, then run it in onnxruntime\n"
        "against torch and refuse it if they differ by more than 1e-4 (the encoder: 1e-5 of its largest output).",
        "frame-gen export-onnx --checkpoint checkpoint/May/5.pth --mode ave --output may.onnx --opset 11",
        "frame-gen export-onnx --audio-encoder audio_visual_encoder.pth --output encoder.onnx",
    )
    model = export.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="SyncTalk_2D 328 checkpoint (.pth)")
    model.add_argument("--audio-encoder", help="ave audio encoder (audio_visual_encoder.pth)")
    export.add_argument("--mode", default="ave", choices=tuple(MODES), help="audio feature mode")
    export.add_argument("--output", required=True, help="the .onnx file to write")
    export.add_argument("--opset", type=opset_value, default=17, help="ONNX opset, 11..20 (11 for older mobile runtimes)")


def _add_verify_reference(commands: argparse._SubParsersAction) -> None:
    """Add `verify-reference` and its options to `commands`."""
    verify = subcommand(
        commands, "verify-reference", run_verify, "recompute a reference bundle and report differences per stage",
        "Recompute every sample of a bundle from its own files and print the largest difference per\n"
        "sample and stage, with units, and which stages were checked. A bundle made from speech also has\n"
        "the audio stages (PCM -> mel -> encoder windows -> encodings -> the network's audio input; hubert:\n"
        "PCM -> the processor's input values -> hidden states -> the network's audio input).\n"
        "Exit status 1 on a mismatch.",
        "frame-gen verify-reference bundle --checkpoint checkpoint/May/5.pth",
    )
    verify.add_argument("bundle", help="reference bundle folder")
    verify.add_argument("--checkpoint", default=None, help="checkpoint for the network stage (not checked without)")
    verify.add_argument("--audio-encoder", default=None,
                        help="audio encoder (.pth, or its .onnx) for the encoder stage of a bundle made from speech")
    verify.add_argument("--hubert-model", default=None,
                        help="hubert model folder for the normalise and hubert stages of a hubert bundle made from speech")
    add_device(verify, "cpu")
    verify.add_argument("--tolerance", type=positive_float, default=1e-4, help="largest accepted network output difference")
