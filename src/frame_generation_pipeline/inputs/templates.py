"""The template folder: frame images, landmarks, optional parsing masks, and the ping-pong schedule.

Layout: `full_body_img/{k}.jpg`, `landmarks/{k}.lms`, optional `parsing/{k}.png` for k = 0..N-1,
N being the number of `.jpg` files in `full_body_img`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import require_path
from ..errors import ArgumentTypeError, ConfigurationError, TemplateError
from .images import image_size, read_image
from .landmarks import CropBox, check_box_inside, crop_box, read_landmarks

logger = logging.getLogger(__name__)

IMAGE_DIR, LANDMARK_DIR, PARSING_DIR = "full_body_img", "landmarks", "parsing"


def ping_pong_schedule(num_frames: int, template_count: int, start_frame: int = 0, argument: str = "start_frame") -> list[int]:
    """Template index of each output frame (contract step 1).

    Bounces over templates start_frame..template_count-1 as upstream bounces over 0..N-1: frame 0
    uses start_frame + 1, then up to the last, back down to start_frame, and so on. One usable
    template is used for every frame. A start frame past the templates is refused naming `argument`.
    """
    if not 0 <= start_frame < template_count:
        raise ConfigurationError(
            f"{argument} {start_frame} is outside the {template_count} templates "
            f"(expected 0..{template_count - 1})"
        )
    usable = template_count - start_frame
    if usable == 1:
        return [start_frame] * num_frames
    schedule = []
    index, step = 0, 0
    for _ in range(num_frames):
        if index > usable - 2:
            step = -1
        if index < 1:
            step = 1
        index += step
        schedule.append(index + start_frame)
    return schedule


def ping_pong_index(position: int, template_count: int, start_frame: int = 0) -> int:
    """The template of schedule position `position` (frame `position` of ping_pong_schedule), in O(1)."""
    usable = template_count - start_frame
    if usable == 1:
        return start_frame
    period = 2 * (usable - 1)
    turn = (position + 1) % period
    return start_frame + (turn if turn <= usable - 1 else period - turn)


@dataclass(frozen=True)
class TemplateFrame:
    """One decoded template: the full frame, its crop box and (when asked for) its parsing image."""

    index: int
    image: np.ndarray
    box: CropBox
    parsing: np.ndarray | None


class TemplateSet:
    """A validated template folder; files are read lazily, landmarks are parsed once. `identity`
    digests every file's size, modification time and inode as the folder was opened."""

    def __init__(
        self,
        image_dir: str | os.PathLike[str],
        landmark_dir: str | os.PathLike[str],
        parsing_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.image_dir = Path(image_dir)
        self.landmark_dir = Path(landmark_dir)
        self.parsing_dir = Path(parsing_dir) if parsing_dir is not None else None
        for folder in (self.image_dir, self.landmark_dir, self.parsing_dir):
            if folder is not None and not folder.is_dir():
                raise TemplateError(folder, _not_a_folder(folder))
        self.count = sum(1 for _ in self.image_dir.glob("*.jpg"))
        if self.count == 0:
            raise TemplateError(self.image_dir, "holds no .jpg template frames")
        self._check_numbering()
        self.identity = self._files_identity()
        self._boxes: dict[int, CropBox] = {}
        self._size: tuple[int, int] | None = None
        self._validated: set[int] = set()

    @classmethod
    def from_folder(cls, root: str | os.PathLike[str], use_parsing: bool = False) -> TemplateSet:
        """Open a template folder holding full_body_img/, landmarks/ and (if used) parsing/."""
        root = Path(require_path(root, "template folder"))
        if not root.is_dir():
            raise TemplateError(root, _not_a_folder(root))
        if not (root / IMAGE_DIR).is_dir():
            if root.name in (IMAGE_DIR, LANDMARK_DIR, PARSING_DIR):
                raise TemplateError(root, f"is the {root.name}/ folder itself: give the folder that holds "
                                          f"{IMAGE_DIR}/ and {LANDMARK_DIR}/ ({root.parent})")
            inside = sorted(found.parent for found in root.glob(f"*/{IMAGE_DIR}") if found.is_dir())
            if inside:
                raise TemplateError(root, f"holds no {IMAGE_DIR}/: give the folder that holds {IMAGE_DIR}/ and "
                                          f"{LANDMARK_DIR}/ ({inside[0]})")
        return cls(root / IMAGE_DIR, root / LANDMARK_DIR, root / PARSING_DIR if use_parsing else None)

    def _files_identity(self) -> str:
        """A digest of every template file's (size, mtime_ns, inode), read as each is checked to be
        there: another one when a file is rewritten or replaced, so that nothing kept from the folder
        as it was (the template cache's entries) is taken for it as it is."""
        digest = hashlib.sha256()
        for k in range(self.count):
            for path in self._paths(k):
                try:
                    info = path.stat()
                except OSError:
                    info = None
                if info is None or not stat.S_ISREG(info.st_mode):
                    raise TemplateError(path, f"template {k} of 0..{self.count - 1} is missing")
                digest.update(f"{info.st_size} {info.st_mtime_ns} {info.st_ino};".encode())
        return digest.hexdigest()

    def _check_numbering(self) -> None:
        """Name the common off-by-one (`ffmpeg -i x.mp4 dir/%d.jpg` numbers images from 1)."""
        count = self.count
        if self.image_path(0).is_file() or not self.image_path(count).is_file():
            return
        rename = f"`for k in $(seq 1 {count}); do mv {self.image_dir}/$k.jpg {self.image_dir}/$((k-1)).jpg; done`"
        if self.landmark_path(0).is_file() and not self.landmark_path(count).is_file():
            raise TemplateError(self.image_dir, f"images are numbered from 1 (1..{count}) but landmarks from 0 "
                                                f"(0..{count - 1}); rename image k.jpg to (k-1).jpg, e.g. {rename}")
        raise TemplateError(self.image_dir, f"images are numbered 1..{count}; templates must be numbered from 0: rename "
                                            f"k.jpg to (k-1).jpg, e.g. {rename}, and the same in landmarks/ (.lms) "
                                            "and parsing/ (.png) where they start at 1 too")

    def __len__(self) -> int:
        return self.count

    def image_path(self, k: int) -> Path:
        """Path of template frame k."""
        return self.image_dir / f"{k}.jpg"

    def landmark_path(self, k: int) -> Path:
        """Path of template k's landmarks."""
        return self.landmark_dir / f"{k}.lms"

    def parsing_path(self, k: int) -> Path | None:
        """Path of template k's parsing mask, or None without parsing."""
        return None if self.parsing_dir is None else self.parsing_dir / f"{k}.png"

    def _paths(self, k: int) -> list[Path]:
        paths = [self.image_path(k), self.landmark_path(k)]
        parsing = self.parsing_path(k)
        return paths if parsing is None else [*paths, parsing]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames: that of the first template, which every other must share."""
        if self._size is None:
            self._size = image_size(self.image_path(0))
        return self._size

    def box(self, k: int) -> CropBox:
        """The crop box of template k (landmarks are read and checked on first use)."""
        if k not in self._boxes:
            path = self.landmark_path(k)
            self._boxes[k] = crop_box(read_landmarks(path), source=str(path))
        return self._boxes[k]

    def load(self, k: int) -> TemplateFrame:
        """Decode template k (and its parsing image), checking their sizes against the folder's."""
        image = read_image(self.image_path(k))
        self._check_size(self.image_path(k), image.shape[1::-1])
        parsing = None
        parsing_path = self.parsing_path(k)
        if parsing_path is not None:
            parsing = read_image(parsing_path)
            self._check_size(parsing_path, parsing.shape[1::-1])
        return TemplateFrame(k, image, self.box(k), parsing)

    def _check_size(self, path: Path, size: tuple[int, int]) -> None:
        if tuple(size) != self.size:
            raise TemplateError(
                path,
                f"is {size[0]}x{size[1]}, but the templates are {self.size[0]}x{self.size[1]} "
                f"({self.image_path(0).name}); every template frame and parsing image must have one size",
            )

    def schedule(self, num_frames: int, start_frame: int = 0, argument: str = "start_frame") -> list[int]:
        """Template index of each of `num_frames` output frames (see ping_pong_schedule)."""
        return ping_pong_schedule(num_frames, self.count, start_frame, argument)

    def validate(self, schedule: list[int]) -> None:
        """Check before rendering what can be checked cheaply for the templates `schedule` uses.

        Every used landmark file is parsed and its crop box checked against the frame size, and
        every used image (and parsing image) is checked for its size from its header. A frame
        whose pixel data is corrupt behind a good header is reported when it is reached. Templates
        already checked (by a render plan) are not read again.
        """
        used = sorted(set(schedule))
        for k in sorted(set(used) - self._validated):
            check_box_inside(self.box(k), self.size, str(self.landmark_path(k)))
            for path in self._paths(k):
                if path.suffix != ".lms":
                    self._check_size(path, image_size(path))
            self._validated.add(k)
        logger.debug("templates %s: %d used of %d, %dx%d", self.image_dir, len(used), self.count, *self.size)


def as_templates(source: TemplateSet | str | os.PathLike[str], use_parsing: bool = False) -> TemplateSet:
    """A TemplateSet as given, or opened from a template folder path."""
    if isinstance(source, TemplateSet):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise ArgumentTypeError(f"templates must be a TemplateSet or a template folder path, got {type(source).__name__}")
    return TemplateSet.from_folder(source, use_parsing)


def _not_a_folder(path: Path) -> str:
    """Why `path`, expected to be a template folder, is not one: something else is there, or nothing is."""
    return "is a file, not a folder" if os.path.exists(path) else "template folder not found"
