"""The demo avatar's drawn face: a shaded head with hair, eyes, brows, nose and moving lips on a calm background.

Everything is placed in a face box (x, y, size) by the 110-point PFLD mean face (`synthetic.mean_face_layout`),
so the drawn face agrees with the landmarks written beside it: the jaw follows the contour points, the
eyes, brows and nose their points, the lips sit between the mouth points. The lips follow a
`synthetic.Mouth` (opening, spread): a dark interior with a hint of the upper teeth when open.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike

from .synthetic import Mouth, mean_face_layout

#: The mouth's centre in the face box (fractions of its size): between the mouth landmarks.
MOUTH_CENTRE = (0.5, 0.66)
#: The lips' largest half-width and half-height (spread wide, wide open), fractions of the box size.
MOUTH_REACH = (0.2, 0.13)

Box = tuple[float, float, float]
_SHIFT = 4  # cv2 drawing in 1/16 pixel, so the lips change smoothly with the mouth
_SKIN = np.array([150, 178, 222], np.float32)  # BGR
_HAIR, _HAIR_LIGHT = (38, 48, 72), (62, 80, 112)
_SHIRT = np.array([120, 96, 70], np.float32)
_UPPER_LIP, _LOWER_LIP, _MOUTH_INSIDE, _TEETH = (92, 92, 170), (104, 110, 190), (38, 22, 46), (218, 226, 232)
_TOP, _BOTTOM = np.array([214, 204, 190], np.float32), np.array([166, 152, 136], np.float32)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _fill(image: np.ndarray, points: np.ndarray, colour: tuple[float, ...]) -> None:
    cv2.fillPoly(image, [_fixed(points)], colour, cv2.LINE_AA, _SHIFT)


def _place(box: Box, points: ArrayLike) -> np.ndarray:
    x0, y0, size = box
    return np.array([x0, y0]) + np.asarray(points) * size


def _arc(centre: tuple[float, float], axes: tuple[float, float], start: float, stop: float, count: int = 40) -> np.ndarray:
    angles = np.linspace(np.radians(start), np.radians(stop), count)
    return np.stack([centre[0] + axes[0] * np.cos(angles), centre[1] + axes[1] * np.sin(angles)], axis=1)


def _region(image: np.ndarray, points: np.ndarray, margin: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """The part of `image` within `margin` pixels of the points' bounding box, and the points moved into it:
    a shape's mask, blurred within the margin, is zero beyond it."""
    height, width = image.shape[:2]
    pad = int(np.ceil(margin)) + 2  # and the anti-aliased edge
    (left, top), (right, bottom) = np.floor(points.min(axis=0)).astype(int) - pad, np.ceil(points.max(axis=0)).astype(int) + pad
    left, top = max(left, 0), max(top, 0)
    return (slice(top, max(min(bottom, height), top)), slice(left, max(min(right, width), left))), points - [left, top]


def _mask(part: np.ndarray, points: np.ndarray) -> np.ndarray:
    mask = np.zeros(part.shape[:2], np.float32)
    _fill(mask, points, (1.0,))
    return mask


def _shirt(box: Box) -> np.ndarray:
    return _place(box, np.concatenate([_arc((0.5, 1.52), (1.05, 0.5), 180, 360, 60), [[1.55, 3.0], [-0.55, 3.0]]]))


def _neck(box: Box) -> np.ndarray:
    return _place(box, [[0.31, 0.6], [0.69, 0.6], [0.7, 1.12], [0.6, 1.2], [0.4, 1.2], [0.3, 1.12]])


def _head_outline(box: Box) -> np.ndarray:
    """The face's outline in pixels: the jaw's contour points, closed over the forehead."""
    layout = mean_face_layout()
    jaw = layout[0:33]
    forehead = _arc((0.503, 0.226), (0.425, 0.47), 0, -180)
    return _place(box, np.concatenate([jaw, forehead]))


def background(width: int, height: int) -> np.ndarray:
    """A soft vertical gradient with a faint light behind the head, float32 BGR."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image = (1 - t) * _TOP + t * _BOTTOM
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    glow = np.exp(-(((xx - width / 2) / (0.35 * width)) ** 2 + ((yy - 0.4 * height) / (0.5 * height)) ** 2))
    return np.broadcast_to(image, (height, width, 3)) + 14 * glow[..., None]


def _blur_radius(sigma: float) -> float:
    """How far OpenCV's Gaussian blur of a float image with `sigma` reaches (its kernel is 8 sigma + 1 wide)."""
    return 4 * sigma + 1


def _shaded(image: np.ndarray, points: np.ndarray, colour: np.ndarray, light: np.ndarray, edge: float) -> None:
    """Paint `colour` inside the polygon `points`, lit by `light` and darkened towards its edge."""
    where, inside = _region(image, points, _blur_radius(edge))
    part = image[where]
    mask = _mask(part, inside)
    soft = cv2.GaussianBlur(mask, (0, 0), edge)
    shade = (0.72 + 0.28 * np.clip(2 * soft - 0.6, 0, 1)) * light[where]
    part[:] = part * (1 - mask[..., None]) + (colour * shade[..., None]) * mask[..., None]


def draw_head(width: int, height: int, box: Box) -> np.ndarray:
    """The scene without the lips (background, shoulders, neck, hair, face, eyes, brows, nose), BGR uint8."""
    x0, y0, size = box
    layout = mean_face_layout()
    image = background(width, height).copy()
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # light from the upper left of the face
    light = 1.05 - 0.18 * np.clip(((xx - x0 - 0.2 * size) + 0.6 * (yy - y0)) / (1.4 * size), 0, 1.2)
    hair_back = _place(box, _arc((0.5, 0.24), (0.53, 0.6), 150, 390, 60))
    _fill(image, np.concatenate([hair_back, _place(box, [[0.9, 0.5], [0.1, 0.5]])]), _HAIR)
    _shaded(image, _shirt(box), _SHIRT, light, 0.06 * size)
    _shaded(image, _neck(box), _SKIN * 0.86, light, 0.05 * size)
    collar = _place(box, _arc((0.5, 1.1), (0.2, 0.12), 0, 180, 30))
    cv2.polylines(image, [_fixed(collar)], False, (70, 60, 48), max(1, round(0.012 * size)), cv2.LINE_AA, _SHIFT)
    for side in (-1, 1):
        ear = _place(box, _arc((0.5 + side * 0.43, 0.36), (0.055, 0.11), 0, 360))
        _shaded(image, ear, _SKIN * 0.92, light, 0.015 * size)
    # the shadow the jaw casts on the neck, then the face
    where, jaw = _region(image, _place(box, layout[4:29] + [0, 0.06]), _blur_radius(0.03 * size))
    chin_shadow = cv2.GaussianBlur(_mask(image[where], jaw), (0, 0), 0.03 * size)
    image[where] *= 1 - 0.25 * chin_shadow[..., None]
    _shaded(image, _head_outline(box), _SKIN, light, 0.07 * size)
    cheeks = sum(np.exp(-(((xx - x0 - cx * size) / (0.09 * size)) ** 2 + ((yy - y0 - 0.5 * size) / (0.07 * size)) ** 2))
                 for cx in (0.25, 0.75))
    image += cheeks[..., None] * np.array([-4, -8, 6], np.float32)
    _draw_hair(image, box)
    _draw_eyes(image, box, layout)
    for brow in (layout[33:42], layout[42:51]):
        _fill(image, _place(box, brow), _HAIR)
    _draw_nose(image, box, layout)
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw_hair(image: np.ndarray, box: Box) -> None:
    """The fringe over the forehead, parted on the left, with a few lighter strands."""
    front = np.concatenate([
        _arc((0.5, 0.24), (0.5, 0.5), 182, 358, 50),
        [[0.96, 0.2], [0.88, 0.06], [0.7, -0.02], [0.5, 0.0], [0.36, -0.05], [0.3, -0.08],
         [0.18, 0.0], [0.08, 0.12], [0.04, 0.24]],
    ])
    _fill(image, _place(box, front), _HAIR)
    size = box[2]
    for offset in (0.0, 0.08, 0.16, 0.3, 0.42):
        strand = _place(box, _arc((0.36 + offset, 0.32), (0.3 + offset / 2, 0.52), 215 + 20 * offset, 280, 12))
        cv2.polylines(image, [_fixed(strand)], False, _HAIR_LIGHT, max(1, round(0.008 * size)), cv2.LINE_AA, _SHIFT)


def _draw_eyes(image: np.ndarray, box: Box, layout: np.ndarray) -> None:
    """Almond eyes on the eye points: white, a brown iris with its pupil and highlight, lid lines."""
    size = box[2]
    for outline, pupil in ((layout[66:74], layout[74:78]), (layout[78:86], layout[86:90])):
        eye = _place(box, outline)
        where, inside = _region(image, eye, 0)
        part = image[where]
        mask = _mask(part, inside)
        iris = np.zeros_like(part)
        centre = _place(box, pupil.mean(axis=0, keepdims=True))[0] - [where[1].start, where[0].start]  # in the part
        iris[:] = (232, 236, 238)
        for radius, colour in ((0.036, (60, 82, 112)), (0.026, (48, 64, 90)), (0.016, (22, 20, 24))):
            cv2.circle(iris, tuple(int(c * 16) for c in centre), int(radius * size * 16), colour, -1, cv2.LINE_AA, _SHIFT)
        glint = centre + np.array([-0.01, -0.01]) * size
        cv2.circle(iris, tuple(int(c * 16) for c in glint), int(0.007 * size * 16), (245, 245, 245), -1, cv2.LINE_AA, _SHIFT)
        part[:] = part * (1 - mask[..., None]) + iris * mask[..., None]
        upper = eye[[0, 1, 2, 3, 4]]
        cv2.polylines(image, [_fixed(upper)], False, (40, 40, 52), max(1, round(0.01 * size)), cv2.LINE_AA, _SHIFT)
        crease = upper + np.array([0, -0.025 * size])
        cv2.polylines(image, [_fixed(crease[1:4])], False, (105, 125, 165), 1, cv2.LINE_AA, _SHIFT)


def _draw_nose(image: np.ndarray, box: Box, layout: np.ndarray) -> None:
    """A shadow down the bridge's shaded side, the wings and the nostrils."""
    size = box[2]
    bridge = _place(box, [[0.545, 0.3], [0.56, 0.4], [0.575, 0.45]])
    cv2.polylines(image, [_fixed(bridge)], False, (122, 146, 192), max(1, round(0.008 * size)), cv2.LINE_AA, _SHIFT)
    wings = _place(box, layout[[57, 58, 59, 60, 61, 62, 63]])
    cv2.polylines(image, [_fixed(wings)], False, (100, 118, 160), max(1, round(0.008 * size)), cv2.LINE_AA, _SHIFT)
    for x in (0.455, 0.545):
        nostril = _place(box, _arc((x, 0.5), (0.022, 0.011), 0, 360, 16))
        _fill(image, nostril, (78, 88, 128))


def draw_lips(image: np.ndarray, box: Box, mouth: Mouth) -> None:
    """Lips shaped by `mouth` (opening, spread) around MOUTH_CENTRE, in place: when open a dark
    interior shows between them, the upper teeth at its top."""
    x0, y0, size = box
    opening, spread = mouth
    cx, cy = x0 + MOUTH_CENTRE[0] * size, y0 + MOUTH_CENTRE[1] * size
    half_width = size * (0.115 + 0.06 * spread - 0.02 * opening)
    gap = size * (0.003 + 0.075 * opening)
    u = np.linspace(-1, 1, 61)
    xs = cx + half_width * u
    inner = (1 - u ** 2) ** 0.7
    upper_inner, lower_inner = cy - gap * inner, cy + gap * inner
    bow = 1 - 0.45 * np.exp(-((u / 0.16) ** 2))
    upper_outer = upper_inner - size * 0.034 * (1 - u ** 2) ** 0.5 * bow
    lower_outer = lower_inner + size * 0.046 * (1 - u ** 2) ** 0.6

    def outline(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return np.concatenate([np.stack([xs, top], 1), np.stack([xs, bottom], 1)[::-1]])

    _fill(image, outline(upper_inner, lower_inner), _MOUTH_INSIDE)
    teeth = np.abs(u) < 0.7
    teeth_bottom = np.minimum(upper_inner + 0.3 * 2 * gap * inner, upper_inner + 0.022 * size)
    if opening > 0.02:
        _fill(image, np.concatenate([np.stack([xs[teeth], upper_inner[teeth]], 1),
                                     np.stack([xs[teeth], teeth_bottom[teeth]], 1)[::-1]]), _TEETH)
    _fill(image, outline(upper_outer, upper_inner), _UPPER_LIP)
    _fill(image, outline(lower_inner, lower_outer), _LOWER_LIP)
    shine = np.stack([xs[20:41], (lower_inner + 0.55 * (lower_outer - lower_inner))[20:41]], 1)
    cv2.polylines(image, [_fixed(shine)], False, (140, 150, 215), max(1, round(0.006 * size)), cv2.LINE_AA, _SHIFT)


def finish(image: np.ndarray, k: int) -> np.ndarray:
    """Scene k's faint sensor noise added to a copy of `image` (seeded by k, as a video frame's grain)."""
    noise = np.random.default_rng(k).integers(0, 5, image.shape, dtype=np.uint8)
    return cv2.add(image, noise)


def draw_avatar(width: int, height: int, k: int, box: Box, mouth: Mouth, head: np.ndarray | None = None) -> np.ndarray:
    """Scene k: the head in `box` with `mouth`, noise added, BGR uint8 (`head`: draw_head's result, if at hand)."""
    image = (draw_head(width, height, box) if head is None else head).copy()
    draw_lips(image, box, mouth)
    return finish(image, k)


def draw_parsing(width: int, height: int, box: Box) -> np.ndarray:
    """The parsing mask: the face blue, the neck red and the clothes white (both kept from the template)."""
    parsing = np.zeros((height, width, 3), np.uint8)
    for outline, colour in ((_shirt(box), (255, 255, 255)), (_neck(box), (0, 0, 255)), (_head_outline(box), (255, 0, 0))):
        cv2.fillPoly(parsing, [np.round(outline).astype(np.int32)], colour)
    return parsing
