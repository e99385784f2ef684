"""The demo's contact sheet: frames across the video, each under its place on the speech's waveform."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ...contract import SAMPLE_RATE, get_mode
from ...errors import OutputError
from ...inputs.templates import ping_pong_index
from . import avatar

TILE, COLUMNS, ROWS, WAVE_HEIGHT, MARGIN = 180, 6, 2, 150, 10
INK, PAPER, WAVE, MARK = (40, 40, 40), (250, 250, 250), (150, 110, 60), (40, 40, 200)


def _video_frames(video: Path, count: int) -> dict[int, np.ndarray]:
    """COLUMNS x ROWS frames spread over `video`'s `count`, by index, BGR uint8."""
    import imageio_ffmpeg

    wanted = set(np.linspace(1, max(count - 2, 1), COLUMNS * ROWS).round().astype(int).tolist())
    reader = imageio_ffmpeg.read_frames(str(video))
    width, height = next(reader)["size"]
    frames = {}
    for index, raw in enumerate(reader):
        if index in wanted:
            frames[index] = cv2.cvtColor(np.frombuffer(raw, np.uint8).reshape(height, width, 3), cv2.COLOR_RGB2BGR)
    return frames


def _face(frame: np.ndarray, index: int) -> np.ndarray:
    """The avatar's head in output frame `index` (where its template put it), TILE x TILE."""
    x0, y0, size = avatar.face_box(ping_pong_index(index, avatar.TEMPLATE_COUNT))
    side = 1.22 * size  # from the top of the hair to below the chin
    left, top = int(x0 + size / 2 - side / 2), int(y0 + 0.35 * size - side / 2)
    square = frame[max(top, 0): top + int(side), max(left, 0): left + int(side)]
    return cv2.resize(square, (TILE, TILE), interpolation=cv2.INTER_AREA)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int] = INK) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)


def write_contact_sheet(path: str | os.PathLike[str], video: str | os.PathLike[str], speech: np.ndarray) -> Path:
    """Write a PNG of COLUMNS x ROWS frames spread over `video` (the demo avatar's, 25 fps) below
    the waveform of its 16 kHz `speech`, each frame numbered where it falls on the waveform."""
    import imageio_ffmpeg

    fps = get_mode("ave").fps
    frames = _video_frames(Path(video), imageio_ffmpeg.count_frames_and_secs(str(video))[0])
    width = COLUMNS * TILE + (COLUMNS + 1) * MARGIN
    sheet = np.full((WAVE_HEIGHT + ROWS * (TILE + 24) + 2 * MARGIN, width, 3), PAPER, np.uint8)
    # the waveform: per pixel column, the range of the samples it covers
    inner = width - 2 * MARGIN
    middle = MARGIN + WAVE_HEIGHT // 2
    edges = np.linspace(0, len(speech), inner + 1).astype(int)
    peak = float(np.abs(speech).max()) or 1.0
    for x in range(inner):
        chunk = speech[edges[x]: max(edges[x + 1], edges[x] + 1)]
        low, high = (float(chunk.min()) / peak, float(chunk.max()) / peak) if len(chunk) else (0.0, 0.0)
        half = WAVE_HEIGHT // 2 - 14
        cv2.line(sheet, (MARGIN + x, middle - int(high * half)), (MARGIN + x, middle - int(low * half)), WAVE, 1)
    _text(sheet, "speech", (MARGIN, MARGIN + 4))
    for number, index in enumerate(sorted(frames), start=1):
        x = MARGIN + min(int((index + 0.5) / fps * SAMPLE_RATE / len(speech) * inner), inner - 1)
        cv2.line(sheet, (x, MARGIN + 8), (x, MARGIN + WAVE_HEIGHT - 12), MARK, 1)
        _text(sheet, str(number), (x - 4, MARGIN + WAVE_HEIGHT), MARK)
        row, column = divmod(number - 1, COLUMNS)
        left = MARGIN + column * (TILE + MARGIN)
        top = MARGIN + WAVE_HEIGHT + 14 + row * (TILE + 24)
        sheet[top: top + TILE, left: left + TILE] = _face(frames[index], index)
        _text(sheet, f"{number}: {index / fps:.2f} s", (left + 2, top + TILE + 16))
    path = Path(path)
    if not cv2.imwrite(str(path), sheet):
        raise OutputError(path, "could not write the contact sheet")
    return path
