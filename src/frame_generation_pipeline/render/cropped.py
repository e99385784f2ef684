"""Templates cropped for the network (steps 3-7, cached per template) and frames composed from
network outputs (steps 10-13)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..inputs.templates import TemplateFrame, TemplateSet
from .arithmetic import crop_region, inner_region, network_input, paste_generated_region, resize_crop, to_pixels
from .blend import NO_BLEND, Blend
from .lru import ByteLRU


@dataclass(frozen=True)
class CroppedTemplate:
    """Steps 3-7 for one template: they do not depend on the output frame, so they are cached."""

    template: TemplateFrame
    resized_crop: np.ndarray
    network_input: np.ndarray

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays of this entry."""
        parsing = 0 if self.template.parsing is None else self.template.parsing.nbytes
        return self.template.image.nbytes + parsing + self.resized_crop.nbytes + self.network_input.nbytes


def crop_template(template: TemplateFrame) -> CroppedTemplate:
    """Steps 3-7: crop, resize to 328, inner 320, mask, network input."""
    resized = resize_crop(crop_region(template.image, template.box))
    return CroppedTemplate(template, resized, network_input(inner_region(resized)))


def compose(cropped: CroppedTemplate, output: np.ndarray, blend: Blend = NO_BLEND) -> np.ndarray:
    """Steps 10-13: the finished frame from a network output (3, 320, 320), pasted as `blend` says."""
    return paste(cropped, to_pixels(output), blend)


def paste(cropped: CroppedTemplate, pixels: np.ndarray, blend: Blend = NO_BLEND) -> np.ndarray:
    """Steps 11-13: the finished frame from the generated 320x320 uint8 pixels, pasted as `blend` says
    (what offline renders and live sessions, rest frames included, both paste with)."""
    template = cropped.template
    return paste_generated_region(template.image, pixels, template.box, resized_crop=cropped.resized_crop,
                                  parsing=template.parsing, blend=blend)


class CroppedCache(ByteLRU[CroppedTemplate]):
    """A thread-safe LRU of CroppedTemplate by template index, bounded in bytes.

    Ping-pong order comes back to the templates near each turning point a few frames later;
    keeping them saves their JPEG decode and crop preparation.
    """

    def __init__(self, templates: TemplateSet, max_bytes: int) -> None:
        super().__init__(max_bytes, lambda entry: entry.nbytes)
        self.templates = templates

    def get(self, index: int) -> CroppedTemplate:
        """The cropped template `index`, from the cache or freshly decoded and cropped."""
        entry = self.find(index)
        if entry is None:
            entry = crop_template(self.templates.load(index))
            self.put(index, entry)
        return entry
