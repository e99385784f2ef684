"""docs/blend.png: one demo frame's crop with `--blend none` and `--blend feather` side by side.

`python benchmarks/blend_figure.py [--output docs/blend.png] [--widths 8,16,24]`: generates the
demo's inputs (as `frame-gen demo`), renders its frame 0 once per setting on the exact backend and
writes the crops (the box with a margin, enlarged 2x, nearest neighbour) left to right: none,
feather at each width, and feather with the colour match at the default width.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from frame_generation_pipeline import FrameGenerationPipeline
from frame_generation_pipeline.app.demo.run import make_demo_inputs
from frame_generation_pipeline.contract import DEFAULT_BLEND_WIDTH
from frame_generation_pipeline.inputs.templates import TemplateSet
from frame_generation_pipeline.render.blend import NO_BLEND, Blend

HERE = Path(__file__).resolve().parent
MARGIN = 24


def render_crops(blends: list[Blend], frame: int = 0) -> list[np.ndarray]:
    """Frame `frame` of the demo, cut to its crop box plus MARGIN, once per blend setting."""
    with tempfile.TemporaryDirectory() as folder:
        inputs = make_demo_inputs(folder, seconds=1.0)
        pipeline = FrameGenerationPipeline(inputs.checkpoint, mode="ave", device="cpu", backend="torch")
        features = pipeline.features(None, inputs.audio, inputs.audio_encoder)
        templates = TemplateSet.from_folder(inputs.template_dir, use_parsing=True)
        crops = []
        for blend in blends:
            rendered = next(pipeline.generator.render(templates, features, frame_count=frame + 1, first_frame=frame,
                                                      blend=blend))
            xmin, ymin, xmax, ymax = rendered.box
            height, width = rendered.image.shape[:2]
            crops.append(rendered.image[max(ymin - MARGIN, 0):min(ymax + MARGIN, height),
                                        max(xmin - MARGIN, 0):min(xmax + MARGIN, width)])
    return crops


def main() -> None:
    """Write the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(HERE.parent / "docs" / "blend.png"))
    parser.add_argument("--widths", default=str(DEFAULT_BLEND_WIDTH), help="comma-separated feather widths")
    parser.add_argument("--scale", type=int, default=2, help="enlargement (nearest neighbour)")
    args = parser.parse_args()
    blends = [NO_BLEND, *(Blend("feather", int(w)) for w in args.widths.split(",")), Blend("feather", color_match=True)]
    crops = render_crops(blends)
    gap = np.full((crops[0].shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([part for crop in crops for part in (crop, gap)][:-1], axis=1)
    row = cv2.resize(row, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(args.output, row, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.output}: " + ", ".join(str(blend.record()) for blend in blends))


if __name__ == "__main__":
    main()
