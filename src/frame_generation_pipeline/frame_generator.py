"""FrameGenerator: template frames + audio features -> finished video frames, lazily and in order.

Each output frame goes through three stages: prepare (decode the template, crop, resize, mask,
build the network input; cached per template), infer (batched network calls, as many at once
as the model has streams), compose (to pixels, paste back). Prepare runs ahead of the network and
compose behind it in worker threads (OpenCV and the backends release the GIL), with a bounded
number of frames in flight: frames are yielded one at a time and memory does not grow with the
video's length.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Container, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .audio_features import AudioFeatures
from .errors import ConfigurationError, OutputError
from .image_processor import (
    CropBox,
    inner_region,
    network_input,
    paste_generated_region,
    resize_crop,
    to_pixels,
)
from .modes import ModeSpec, get_mode
from .templates import TemplateFrame, TemplateSet

logger = logging.getLogger(__name__)

IMAGE_FORMATS = ("png", "jpg")


class InferenceModel(Protocol):
    """What the generator needs of a model: its mode, batched inference on host arrays, and how
    many calls to `run` it takes at once (from as many threads)."""

    mode: ModeSpec
    streams: int

    def run(self, images: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """float32 (B, 6, 320, 320) and (B, *audio_shape) -> float32 (B, 3, 320, 320) in [0, 1]."""
        ...


@dataclass(frozen=True)
class RenderedFrame:
    """One finished output frame and where it came from.

    `network_input`, `audio` and `network_output` are filled only for frames asked for with
    `keep_tensors` (float32, without the batch axis).
    """

    index: int
    template_index: int
    box: CropBox
    image: np.ndarray
    network_input: np.ndarray | None = None
    audio: np.ndarray | None = None
    network_output: np.ndarray | None = None


@dataclass(frozen=True)
class PreparedTemplate:
    """SPEC steps 3-7 for one template: they do not depend on the output frame, so they are cached."""

    template: TemplateFrame
    resized_crop: np.ndarray
    network_input: np.ndarray

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays of this entry."""
        parsing = 0 if self.template.parsing is None else self.template.parsing.nbytes
        return self.template.image.nbytes + parsing + self.resized_crop.nbytes + self.network_input.nbytes


def prepare(template: TemplateFrame) -> PreparedTemplate:
    """SPEC steps 3-7: crop, resize to 328, inner 320, mask, network input."""
    resized = resize_crop(template.image[template.box.slices()])
    return PreparedTemplate(template, resized, network_input(inner_region(resized)))


def compose(prepared: PreparedTemplate, output: np.ndarray) -> np.ndarray:
    """SPEC steps 10-13: the finished frame from a network output (3, 320, 320)."""
    template = prepared.template
    height, width = template.image[template.box.slices()].shape[:2]
    return paste_generated_region(
        template.image, to_pixels(output), template.box, (height, width),
        resized_crop=prepared.resized_crop, parsing=template.parsing,
    )


class PreparedCache:
    """A thread-safe LRU of PreparedTemplate by template index, bounded in bytes.

    Ping-pong order comes back to the templates near each turning point a few frames later;
    keeping them saves their JPEG decode and crop preparation.
    """

    def __init__(self, templates: TemplateSet, max_bytes: int) -> None:
        self.templates = templates
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, PreparedTemplate] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, index: int) -> PreparedTemplate:
        """The prepared template `index`, from the cache or freshly decoded and prepared."""
        with self._lock:
            entry = self._entries.get(index)
            if entry is not None:
                self._entries.move_to_end(index)
                self.hits += 1
                return entry
            self.misses += 1
        entry = prepare(self.templates.load(index))
        with self._lock:
            if index not in self._entries and entry.nbytes <= self.max_bytes:
                self._entries[index] = entry
                self._bytes += entry.nbytes
                while self._bytes > self.max_bytes:
                    _, dropped = self._entries.popitem(last=False)
                    self._bytes -= dropped.nbytes
        return entry


class FrameGenerator:
    """Renders output frames from a loaded model.

    Args:
        unet_model: a loaded model (UNetModel or any InferenceModel).
        mode: the audio mode; must be the model's (None takes the model's).
        batch_size: frames per network call; with the torch backend on the CPU frames do not
            depend on it at all.
        workers: threads that decode and prepare templates ahead of the network and paste
            results behind it.
        cache_bytes: memory for prepared templates kept for when the ping-pong order returns.
    """

    def __init__(
        self,
        unet_model: InferenceModel,
        mode: str | None = None,
        batch_size: int = 1,
        workers: int = 2,
        cache_bytes: int = 256 << 20,
    ) -> None:
        if mode is not None and get_mode(mode).name != unet_model.mode.name:
            raise ConfigurationError(
                f"mode {mode!r} does not match the model's mode {unet_model.mode.name!r}"
            )
        if batch_size < 1 or workers < 1:
            raise ConfigurationError(f"batch_size and workers must be at least 1, got {batch_size} and {workers}")
        self.model = unet_model
        self.mode = unet_model.mode
        self.batch_size = batch_size
        self.workers = workers
        self.cache_bytes = cache_bytes

    def render(
        self,
        templates: TemplateSet,
        features: AudioFeatures,
        start_frame: int = 0,
        keep_tensors: Container[int] = (),
    ) -> Iterator[RenderedFrame]:
        """Lazily render one RenderedFrame per feature row, in order.

        Templates used by the schedule are checked before the first frame is rendered. Parsing is
        applied when `templates` was opened with a parsing folder. Template decoding and crop
        preparation run ahead of the network, pasting behind it, in `workers` threads; the
        model's `streams` network calls run at once, in threads of their own. At most a few
        batches are in flight, so memory does not grow with the number of frames.
        """
        if features.mode.name != self.mode.name:
            raise ConfigurationError(
                f"features are for mode {features.mode.name!r}, the model is {self.mode.name!r}"
            )
        schedule = templates.schedule(len(features), start_frame)
        templates.validate(schedule)
        cache = PreparedCache(templates, self.cache_bytes)
        streams = self.model.streams
        ahead = (streams + 1) * self.batch_size
        workers = ThreadPoolExecutor(self.workers, thread_name_prefix="frame-worker")
        network = ThreadPoolExecutor(streams, thread_name_prefix="frame-network")
        preparing: deque[Future[PreparedTemplate]] = deque()
        inferring: deque[tuple[range, list[PreparedTemplate], np.ndarray, Future[np.ndarray]]] = deque()
        composing: deque[tuple[partial[RenderedFrame], Future[np.ndarray]]] = deque()

        def compose_oldest_batch() -> None:
            indices, prepared, audio, outputs = inferring.popleft()
            for index, item, window, output in zip(indices, prepared, audio, outputs.result()):
                keep = index in keep_tensors
                record = partial(
                    RenderedFrame,
                    index,
                    item.template.index,
                    item.template.box,
                    network_input=item.network_input if keep else None,
                    audio=window if keep else None,
                    network_output=output if keep else None,
                )
                composing.append((record, workers.submit(compose, item, output)))

        queued = 0
        try:
            for first in range(0, len(features), self.batch_size):
                indices = range(first, min(first + self.batch_size, len(features)))
                while queued < min(indices.stop + ahead, len(features)):
                    preparing.append(workers.submit(cache.get, schedule[queued]))
                    queued += 1
                prepared = [preparing.popleft().result() for _ in indices]
                audio = features.windows(indices)
                inputs = np.stack([item.network_input for item in prepared])
                inferring.append((indices, prepared, audio, network.submit(self.model.run, inputs, audio)))
                if len(inferring) == streams:
                    compose_oldest_batch()
                while len(composing) > ahead:
                    record, image = composing.popleft()
                    yield record(image=image.result())
            while inferring:
                compose_oldest_batch()
            while composing:
                record, image = composing.popleft()
                yield record(image=image.result())
            logger.debug("template cache: %d hits, %d misses", cache.hits, cache.misses)
        finally:
            network.shutdown(wait=True, cancel_futures=True)
            workers.shutdown(wait=True, cancel_futures=True)

    def iter_frames(
        self, templates: TemplateSet, features: AudioFeatures, start_frame: int = 0
    ) -> Iterator[np.ndarray]:
        """Lazily yield the finished frames (HxWx3 uint8 BGR), one per feature row."""
        for rendered in self.render(templates, features, start_frame):
            yield rendered.image

    def generate_frames_from_template_sequence(
        self,
        img_dir: str | os.PathLike[str],
        lms_dir: str | os.PathLike[str],
        audio_features: np.ndarray | str | os.PathLike[str] | AudioFeatures,
        start_frame: int = 0,
        parsing_dir: str | os.PathLike[str] | None = None,
    ) -> list[np.ndarray]:
        """Render every frame into a list (memory grows with length: prefer `iter_frames`)."""
        templates = TemplateSet(img_dir, lms_dir, parsing_dir)
        return list(self.iter_frames(templates, self._features(audio_features), start_frame))

    def _features(self, source: np.ndarray | str | os.PathLike[str] | AudioFeatures) -> AudioFeatures:
        if isinstance(source, AudioFeatures):
            return source
        if isinstance(source, np.ndarray):
            return AudioFeatures(source, self.mode)
        return AudioFeatures.load(source, self.mode)

    @staticmethod
    def save_frames(
        frames: Iterator[np.ndarray] | list[np.ndarray],
        output_dir: str | os.PathLike[str],
        image_format: str = "png",
        count: int | None = None,
    ) -> list[str]:
        """Write frames as `{i:06d}.png` (lossless) or `.jpg` into `output_dir`; return the paths.

        `count`, when known, widens the zero padding so that names always sort in frame order.
        """
        if image_format not in IMAGE_FORMATS:
            raise ConfigurationError(
                f"unknown image format {image_format!r}: expected one of {', '.join(IMAGE_FORMATS)}"
            )
        output_dir = Path(output_dir)
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(output_dir, f"cannot create output folder ({exc.strerror})") from None
        digits = max(6, len(str(max((count or 1) - 1, 0))))
        paths = []
        for i, frame in enumerate(frames):
            path = output_dir / f"{i:0{digits}d}.{image_format}"
            ok, encoded = cv2.imencode(f".{image_format}", frame)
            try:
                if not ok:
                    raise OSError(0, "encoding failed")
                encoded.tofile(path)
            except OSError as exc:
                raise OutputError(path, f"cannot write frame ({exc.strerror})") from None
            paths.append(str(path))
        logger.info("wrote %d frames to %s", len(paths), output_dir)
        return paths
