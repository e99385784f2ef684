"""What a render is asked to do (RenderOptions) and what it did (RenderResult)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .checks import require_int, require_number
from .errors import ArgumentTypeError, ConfigurationError
from .outputs.frames import check_image_format
from .outputs.video import DEFAULT_CRF, DEFAULT_PRESET, PRESETS
from .precisions import BASELINE, checked_names
from .render.blend import FEATHER, NO_BLEND, Blend, checked_blend


@dataclass(frozen=True)
class RenderOptions:
    """Options of a render, checked when made (wrong types and values raise at once).

    Attributes:
        start_frame: first template of the ping-pong schedule (templates start_frame..N-1 are used).
        max_frames: render only the first N frames (a preview of a long job); None renders all.
        use_parsing: keep the pixels the parsing masks mark red or white from the template.
        fps: video frame rate; None is the mode's (25 for ave and hubert, 20 for wenet).
        crf: x264 quality, 0..51, lower is better (20 is upstream's).
        preset: x264 speed preset.
        image_format: "png" (lossless) or "jpg", for frame folders.
        samples: sample frames of a reference bundle, first and last included.
        show_progress: draw a progress bar on stderr when it is a terminal.
        blend: how the generated square joins the template (render/blend.py Blend); None: the
            render's default (`blend_for`): the feathered paste for frames that are shown (video,
            frames, live), the exact paste (upstream's) for reference bundles, which ports reproduce.
    """

    start_frame: int = 0
    max_frames: int | None = None
    use_parsing: bool = False
    fps: float | None = None
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET
    image_format: str = "png"
    samples: int = 10
    show_progress: bool = False
    blend: Blend | None = None

    def blend_for(self, kind: str) -> Blend:
        """The paste of a render of `kind`: `blend` where given, else the exact one for a reference
        bundle and the feathered one otherwise."""
        if self.blend is not None:
            return self.blend
        return NO_BLEND if kind == "reference" else FEATHER

    def __post_init__(self) -> None:
        require_int(self.start_frame, "start_frame", 0)
        if self.max_frames is not None:
            require_int(self.max_frames, "max_frames", 1)
        if self.fps is not None:
            require_number(self.fps, "fps")
        if not 0 <= require_int(self.crf, "crf", 0) <= 51:
            raise ConfigurationError(f"crf must be within 0..51, got {self.crf}")
        if self.preset not in PRESETS:
            raise ConfigurationError(f"unknown preset {self.preset!r}: expected one of {', '.join(PRESETS)}")
        check_image_format(self.image_format)
        require_int(self.samples, "samples", 1)
        for name in ("use_parsing", "show_progress"):
            if not isinstance(getattr(self, name), bool):
                raise ArgumentTypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.blend is not None:
            checked_blend(self.blend)


#: What a command's time holds beside the render's, as its closing line says.
COMMAND_PARTS = "with loading, features and checks"


@dataclass(frozen=True)
class RenderResult:
    """What a render produced and how fast.

    Attributes:
        output: the video file, frame folder or bundle folder written.
        frames: frames rendered.
        fps: frame rate of the output (the mode's for frames and bundles).
        backend, device, batch_size: how the network ran.
        seconds: wall time from the start of the render (the model already loaded) to the finished
            output: reading inputs, computing features, the network, pasting and encoding.
        options: the options it ran with.
        precision: the arithmetic the network ran in ("fp32", "bf16", "fp16").
        fidelity_db: where precision "auto" chose bf16, its PSNR against the exact path over the
            generated square of a few of the templates (the fidelity check); None otherwise.
    """

    output: str
    frames: int
    fps: float
    backend: str
    device: str
    batch_size: int
    seconds: float
    options: RenderOptions = field(default_factory=RenderOptions)
    precision: str = "fp32"
    fidelity_db: float | None = None

    @property
    def duration(self) -> float:
        """Seconds of video: frames / fps."""
        return self.frames / self.fps

    @property
    def frames_per_second(self) -> float:
        """frames / seconds: the speed of the whole render, inputs to finished output."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    def summary(self, command_seconds: float | None = None) -> str:
        """One line: output, frames, duration, backend, precision (and its checked dB), device, batch
        size, the render's wall time and speed, and (given `command_seconds`) the whole command's."""
        whole = "" if command_seconds is None else f"; {command_seconds:.1f} s for the whole command ({COMMAND_PARTS})"
        return (
            f"wrote {self.output}: {self.frames} frames ({self.duration:.2f} s at {self.fps:g} fps) with "
            f"{describe_precision(self.backend, self.precision, self.fidelity_db)} on {self.device}, "
            f"batch {self.batch_size}, rendered in {self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s){whole}"
        )


def describe_precision(backend: str, precision: str, fidelity_db: float | None) -> str:
    """"openvino bf16 (51.5 dB of the exact path)"; "onnxruntime fp32 (bf16 measured 38.2 dB)" where
    the check sent `auto` to fp32; "onnxruntime fp32" where no check was made."""
    if fidelity_db is None:
        return f"{backend} {precision}"
    if precision == BASELINE:
        return f"{backend} {BASELINE} ({checked_names()} measured {fidelity_db:.1f} dB)"
    return f"{backend} {precision} ({fidelity_db:.1f} dB of the exact path)"
