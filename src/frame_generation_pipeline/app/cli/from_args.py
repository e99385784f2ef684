"""From parsed arguments to what a command runs on: checked model settings, the render's plan
(with features computed by the audio model), and the pipeline, in that order."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...contract import mode_for_audio_model
from ...errors import ConfigurationError
from .arguments import audio_model_option


def model_settings(args: argparse.Namespace, exact: bool = False, feature_files: bool = False) -> dict:
    """The model options of the arguments, checked without loading anything (--exact, or `exact`:
    torch on the CPU); `feature_files`: the command takes --audio-features (a refusal names it)."""
    from ...devices import check_precision, resolve_device
    from ...models.audio_models import check_checkpoint_file

    backend, device, precision = args.backend, args.device, args.precision
    if args.exact or exact:
        if backend not in ("auto", "torch") or device not in (None, "cpu") or precision not in ("auto", "fp32"):
            raise ConfigurationError("--exact means --backend torch --device cpu --precision fp32: drop the others")
        backend, device, precision = "torch", "cpu", "fp32"
    check_precision(precision, resolve_device(device))
    check_checkpoint_file(Path(args.checkpoint))
    from ...render.template_cache import TemplateCache

    mode = mode_for_audio_model(args.mode, audio_model_option(args), feature_files=feature_files)
    return {"mode": mode, "device": device, "backend": backend,
            "batch_size": args.batch_size, "onnx_path": args.onnx, "precision": precision,
            "template_cache": TemplateCache(args.template_cache_mb << 20)}


def pipeline_from(args: argparse.Namespace, settings: dict | None = None, speech_model=None):
    """The FrameGenerationPipeline the model options ask for (`settings`: model_settings(args)), holding
    `speech_model`, the audio model already loaded for the plan, so that precision auto's check feeds real
    speech through it as the API's renders do."""
    from ...pipeline import FrameGenerationPipeline

    pipeline = FrameGenerationPipeline(args.checkpoint, **(settings or model_settings(args)))
    if speech_model is not None:
        pipeline.audio_model(speech_model)  # a loaded model of either kind: kept as given
    return pipeline


def audio_model_from(args: argparse.Namespace):
    """The AudioModel the arguments give (--audio-encoder or --hubert-model), or None."""
    from ...models.audio_models import describe_audio_model

    return describe_audio_model(getattr(args, "audio_encoder", None), getattr(args, "hubert_model", None))


def plan_from(args: argparse.Namespace, kind: str, output: str, options, exact: bool = False, feature_files: bool = False,
              **outputs: str | None):
    """The render's plan (everything checked that needs no model), with the features computed by the
    audio model where asked: all of it before the U-Net loads. Returns (plan, model settings; `exact`
    as model_settings takes it; the audio model loaded for the features, or None). `feature_files`: the
    command has --audio-features (args.audio_features)."""
    from ...models.audio_models import load_audio_model
    from ...plan import plan_render

    settings = model_settings(args, exact, feature_files)
    features = args.audio_features if feature_files else None
    plan = plan_render(kind, output, args.template_dir, settings["mode"], features, args.audio,
                       audio_model_from(args), options, args.batch_size,
                       inputs={"--checkpoint": args.checkpoint, "--onnx": args.onnx}, extra_outputs=outputs)
    encoder = None
    if plan.needs_features and plan.audio_model is not None:
        encoder = load_audio_model(plan.audio_model, settings["device"])
        plan = plan.encoded(encoder)
    return plan, settings, encoder
