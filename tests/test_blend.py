"""The optional seamless paste (--blend feather, --color-match) against naive transcriptions, its
effect on a random checkpoint's frames, and its settings in options, bundles and the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from frame_generation_pipeline import FrameGenerationPipeline
from frame_generation_pipeline.app.cli import build_parser, main
from frame_generation_pipeline.app.cli.arguments import blend_from
from frame_generation_pipeline.errors import ArgumentTypeError, BundleError, ConfigurationError
from frame_generation_pipeline.inputs.landmarks import CropBox
from frame_generation_pipeline.inputs.templates import TemplateSet
from frame_generation_pipeline.options import RenderOptions
from frame_generation_pipeline.ports.verify import verify_bundle
from frame_generation_pipeline.render.arithmetic import paste_generated_region
from frame_generation_pipeline.render.blend import FEATHER, NO_BLEND, Blend, blend_weights, color_match
from frame_generation_pipeline.render.cropped import compose, crop_template


def naive_weight(i, j, h, w, width):
    """The feather weight of crop pixel (row i, column j), written out from its description: along
    each axis 0 up to the square's edge (4/328 of the crop in), a smoothstep to 1 `width` pixels
    further in, measured from the pixel's centre to the nearer end; the two axes multiplied."""
    def along(k, n):
        centre = k + 0.5
        nearest = min(centre, n - centre)
        t = (nearest - n * 4 / 328) / width
        t = min(max(t, 0.0), 1.0)
        return 3 * t * t - 2 * t * t * t
    return along(i, h) * along(j, w)


def naive_color_match(generated, template, weights):
    """Per channel: in the band 0 < weight < 1, subtract the generated mean, scale by the ratio of
    the standard deviations (template / generated, held within 0.5..2), add the template's mean."""
    h, w = weights.shape[:2]
    band = [(i, j) for i in range(h) for j in range(w) if 0 < weights[i, j, 0] < 1]
    out = np.empty(generated.shape, np.float64)
    for c in range(3):
        g = np.array([float(generated[i, j, c]) for i, j in band])
        t = np.array([float(template[i, j, c]) for i, j in band])
        gain = t.std() / g.std() if g.std() > 0 else 1.0
        gain = min(max(gain, 0.5), 2.0)
        out[:, :, c] = (generated[:, :, c] - g.mean()) * gain + t.mean()
    return out


def naive_feather(image, generated, box, blend, parsing=None):
    """The exact paste (tested against the spec elsewhere), then per crop pixel
    template + weight * (pasted - template), rounded and clipped; parsing-kept pixels stay the template's."""
    exact = paste_generated_region(image, generated, box)
    xmin, ymin, xmax, ymax = box
    original = image[ymin:ymax, xmin:xmax].astype(np.float64)
    pasted = exact[ymin:ymax, xmin:xmax].astype(np.float64)
    h, w = original.shape[:2]
    weights = np.array([[[naive_weight(i, j, h, w, blend.width)] for j in range(w)] for i in range(h)])
    if blend.color_match:
        pasted = naive_color_match(pasted, original, weights)
    out = image.copy()
    out[ymin:ymax, xmin:xmax] = np.clip(np.rint(original + weights * (pasted - original)), 0, 255).astype(np.uint8)
    if parsing is not None:
        keep = (parsing[ymin:ymax, xmin:xmax] == (0, 0, 255)).all(axis=2)
        out[ymin:ymax, xmin:xmax][keep] = image[ymin:ymax, xmin:xmax][keep]
    return out


@pytest.fixture
def scene():
    rng = np.random.default_rng(5)
    image = rng.integers(60, 200, (140, 180, 3), dtype=np.uint8)
    generated = np.clip(rng.normal(120, 40, (320, 320, 3)), 0, 255).astype(np.uint8)
    return image, generated


@pytest.mark.parametrize("h, w, width", [(96, 96, 16), (61, 90, 7), (20, 20, 24), (5, 300, 3)])
def test_weights_equal_the_naive_transcription(h, w, width):
    ours = blend_weights(h, w, width)
    naive = np.array([[naive_weight(i, j, h, w, width) for j in range(w)] for i in range(h)])
    assert ours.shape == (h, w, 1) and ours.dtype == np.float32
    np.testing.assert_allclose(ours[:, :, 0], naive, atol=1e-6)
    assert blend_weights(h, w, width) is ours and not ours.flags.writeable, "made once per crop size, shared read-only"


def test_a_crop_smaller_than_the_width_never_reaches_full_weight():
    weights = blend_weights(20, 20, 24)[:, :, 0]
    assert 0 < weights.max() < 0.2 and weights[0, 0] < 1e-3
    assert np.array_equal(weights, weights[::-1, ::-1]), "symmetric: both ends ramp alike"


def test_color_match_equals_the_naive_transcription(scene):
    image, _ = scene
    rng = np.random.default_rng(1)
    template = image[10:70, 20:70]
    generated = (template * 0.6 + rng.normal(40, 5, template.shape)).astype(np.float32)
    weights = blend_weights(60, 50, 9)
    ours = color_match(generated, template, weights)
    naive = naive_color_match(generated, template, weights)
    np.testing.assert_allclose(ours, naive, atol=1e-3)
    band = (weights[:, :, 0] > 0) & (weights[:, :, 0] < 1)
    np.testing.assert_allclose(ours[band].mean(axis=0), template[band].mean(axis=0), atol=1e-2)


def test_color_match_without_a_band_changes_nothing():
    weights = blend_weights(41, 41, 1)
    assert set(np.unique(weights)) == {0.0, 1.0}, "41 px: the square's edge falls on a pixel centre"
    generated = np.random.default_rng(2).random((41, 41, 3), dtype=np.float32)
    assert color_match(generated, np.zeros((41, 41, 3), np.uint8), weights) is generated


@pytest.mark.parametrize("box", [(30, 20, 130, 120), (0, 0, 70, 70), (110, 70, 180, 140), (120, 90, 200, 170)],
                         ids=["inside", "touching top-left", "touching bottom-right", "cut short by the edges"])
@pytest.mark.parametrize("blend", [Blend("feather"), Blend("feather", 5, True), Blend("feather", 40)],
                         ids=["default", "narrow+colour", "wider than the crop"])
def test_feathered_paste_equals_the_naive_transcription(scene, box, blend):
    image, generated = scene
    ours = paste_generated_region(image, generated, CropBox(*box), blend=blend)
    naive = naive_feather(image, generated, box, blend)
    difference = np.abs(ours.astype(int) - naive.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3, "only float32 rounding may differ"
    outside = np.ones(image.shape[:2], bool)
    outside[box[1]:box[3], box[0]:box[2]] = False
    assert np.array_equal(ours[outside], image[outside]) and ours.shape == image.shape


def test_parsing_still_keeps_its_pixels_when_feathered(scene):
    image, generated = scene
    parsing = np.zeros_like(image)
    parsing[60:90, 40:100] = (0, 0, 255)
    box = (30, 20, 130, 120)
    ours = paste_generated_region(image, generated, CropBox(*box), parsing=parsing, blend=Blend("feather", 12))
    assert np.array_equal(ours[60:90, 40:100], image[60:90, 40:100])
    assert np.abs(ours.astype(int) - naive_feather(image, generated, box, Blend("feather", 12), parsing)).max() <= 1


def test_none_is_the_exact_paste(scene):
    image, generated = scene
    box = CropBox(30, 20, 130, 120)
    assert np.array_equal(paste_generated_region(image, generated, box, blend=NO_BLEND),
                          paste_generated_region(image, generated, box))


def edge_abruptness(frame, template, box):
    """The issue's measure: |frame - template| averaged over channels and lightly blurred (3x3 box);
    per row (column) crossing one of the square's four edges, the largest step between neighbouring
    pixels from 3 px outside the edge to 24 px inside; the mean over rows and edges."""
    xmin, ymin, xmax, ymax = box
    diff = np.abs(frame.astype(np.float64) - template.astype(np.float64)).mean(axis=2)
    padded = np.pad(diff, 1, mode="edge")
    blurred = sum(padded[1 + di:1 + di + diff.shape[0], 1 + dj:1 + dj + diff.shape[1]]
                  for di in (-1, 0, 1) for dj in (-1, 0, 1)) / 9
    left, right = round(xmin + 4 * (xmax - xmin) / 328), round(xmax - 4 * (xmax - xmin) / 328)
    top, bottom = round(ymin + 4 * (ymax - ymin) / 328), round(ymax - 4 * (ymax - ymin) / 328)
    steps = []
    for row in range(top, bottom):
        steps.append(np.abs(np.diff(blurred[row, left - 3:left + 25])).max())
        steps.append(np.abs(np.diff(blurred[row, right - 25:right + 3])).max())
    for column in range(left, right):
        steps.append(np.abs(np.diff(blurred[top - 3:top + 25, column])).max())
        steps.append(np.abs(np.diff(blurred[bottom - 25:bottom + 3, column])).max())
    return float(np.mean(steps))


@pytest.fixture(scope="module")
def rendered(checkpoints, features, templates_640):
    """Frame 0 of a random checkpoint with none and with the default feather (composed from the
    same network output), and its template."""
    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="torch")
    templates = TemplateSet.from_folder(templates_640)
    plain = next(pipeline.generator.render(templates, features["ave"], keep_tensors={0}, frame_count=1))
    cropped = crop_template(templates.load(plain.template_index))
    assert np.array_equal(compose(cropped, plain.network_output), plain.image)
    return plain, compose(cropped, plain.network_output, Blend("feather")), cropped.template.image


def test_feather_hides_the_square_and_leaves_its_middle(rendered):
    plain, feathered, template = rendered
    before = edge_abruptness(plain.image, template, plain.box)
    after = edge_abruptness(feathered, template, plain.box)
    assert before > 5 and after <= 0.3 * before, (before, after)
    xmin, ymin, xmax, ymax = plain.box
    side_x, side_y = (xmax - xmin) * 320 / 328, (ymax - ymin) * 320 / 328
    x0, y0 = round(xmin + 4 * (xmax - xmin) / 328 + 0.3 * side_x), round(ymin + 4 * (ymax - ymin) / 328 + 0.3 * side_y)
    x1, y1 = round(x0 + 0.4 * side_x), round(y0 + 0.4 * side_y)
    assert np.array_equal(feathered[y0:y1, x0:x1], plain.image[y0:y1, x0:x1])
    assert not np.array_equal(feathered, plain.image)


def test_a_feathered_bundle_records_its_settings_and_verifies(checkpoints, features, templates_640, tmp_path):
    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu")
    options = RenderOptions(max_frames=1, samples=1, blend=Blend("feather", 10, color_match=True))
    bundle = pipeline.reference(tmp_path / "bundle", templates_640, features["ave"], options=options).output
    metadata = json.loads((tmp_path / "bundle" / "metadata.json").read_text())
    assert (metadata["blend"], metadata["blend_width"], metadata["color_match"]) == ("feather", 10, True)
    assert verify_bundle(bundle).ok
    metadata["blend_width"] = 11
    (tmp_path / "bundle" / "metadata.json").write_text(json.dumps(metadata))
    report = verify_bundle(bundle)
    assert {stage for _, stage, _ in report.failures} == {"frame"}, "the frames are recomputed with the recorded settings"
    metadata["blend"] = "soft"
    (tmp_path / "bundle" / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(BundleError, match="unusable blend settings"):
        verify_bundle(bundle)


def test_settings_are_checked():
    assert RenderOptions().blend_for("video") == RenderOptions().blend_for("live") == FEATHER == Blend()
    assert RenderOptions().blend_for("reference") == NO_BLEND and NO_BLEND.record() == {"blend": "none"}
    assert RenderOptions(blend=FEATHER).blend_for("reference") == FEATHER, "an asked paste is kept"
    assert Blend.from_settings({}) == NO_BLEND, "a bundle older than the feather recorded none"
    feathered = Blend("feather", 10, color_match=True)
    assert Blend.from_settings(feathered.settings()) == feathered == Blend.from_settings(feathered.record())
    with pytest.raises(ConfigurationError, match="blend must be one of none, feather"):
        Blend("soft")
    with pytest.raises(ArgumentTypeError, match="blend must be a Blend"):
        RenderOptions(blend="feather")
    with pytest.raises(ConfigurationError, match="color_match needs blend 'feather'"):
        Blend("none", color_match=True)
    with pytest.raises(ConfigurationError, match="blend_width"):
        Blend("feather", 0)


def test_cli_refuses_a_bad_blend_width(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["frames", "--checkpoint", "x.pth", "--template-dir", str(tmp_path), "--audio-features", "f.npy",
              "--output-dir", str(tmp_path / "out"), "--blend", "feather", "--blend-width", "0"])
    assert exit_.value.code == 2 and "--blend-width" in capsys.readouterr().err


def test_frames_are_feathered_by_default_and_upstreams_with_blend_none_or_exact(checkpoints, features, templates_640,
                                                                                rendered, tmp_path):
    """The random checkpoint's square differs from the template at its border, as a weakly trained
    one's does: `frames` shows no box by default, upstream's frame with --blend none and with --exact."""
    plain, feathered, template = rendered  # the exact path's frame 0 (upstream's: tests/test_parity.py) and its feather

    def frame_0(name, *flags):
        assert main(["frames", "--quiet", "--checkpoint", str(checkpoints["ave"]), "--template-dir", str(templates_640),
                     "--audio-features", str(features["ave"]), "--max-frames", "1", "--output-dir",
                     str(tmp_path / name), *flags]) == 0
        return cv2.imread(str(tmp_path / name / "000000.png"))

    default = frame_0("default", "--backend", "torch")  # torch on a CPU without bf16: the exact network
    assert np.array_equal(default, feathered), "the default paste is the feather"
    assert edge_abruptness(default, template, plain.box) <= 0.3 * edge_abruptness(plain.image, template, plain.box)
    assert np.array_equal(frame_0("none", "--backend", "torch", "--blend", "none"), plain.image)
    assert np.array_equal(frame_0("exact", "--exact"), plain.image), "--exact implies --blend none"
    assert np.array_equal(frame_0("both", "--exact", "--blend", "feather"), feathered), "an explicit feather is kept"


_REQUIRED = {"video": ["--checkpoint", "c.pth", "--template-dir", "t", "--audio", "a.wav", "--output", "o.mp4"],
             "frames": ["--checkpoint", "c.pth", "--template-dir", "t", "--output-dir", "o"],
             "live": ["--checkpoint", "c.pth", "--template-dir", "t", "--audio", "a.wav", "--output", "o.mp4",
                      "--audio-encoder", "e.pth"],
             "serve": [], "reference": ["--checkpoint", "c.pth", "--template-dir", "t", "--output-dir", "o"]}


@pytest.mark.parametrize("command", sorted(_REQUIRED))
def test_every_command_feathers_by_default_but_exact_and_reference_paste_as_upstream(command):
    def blend(*flags):
        args = build_parser().parse_args([command, *_REQUIRED[command], *flags])
        return blend_from(args, command == "reference")

    shown = NO_BLEND if command == "reference" else FEATHER
    assert blend() == shown and blend("--blend", "none") == NO_BLEND and blend("--exact") == NO_BLEND
    assert blend("--exact", "--blend", "feather", "--blend-width", "8") == Blend("feather", 8)
    if command == "reference":
        with pytest.raises(ConfigurationError, match="a reference bundle gives upstream's hard paste"):
            blend("--color-match")
    else:
        assert blend("--color-match") == Blend(color_match=True)
    with pytest.raises(ConfigurationError, match="--color-match works on the feathered paste; --exact"):
        blend("--exact", "--color-match")
