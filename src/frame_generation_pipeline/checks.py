"""Argument checks at the public boundary: one clear error naming the argument and what it got."""

from __future__ import annotations

import math
import numbers
import os

from .errors import ArgumentTypeError, ConfigurationError


def require_int(value: object, name: str, minimum: int = 0) -> int:
    """`value` as an int >= `minimum`; ArgumentTypeError for a non-integer, ConfigurationError below it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def require_number(value: object, name: str, low: float = 0.0, low_inclusive: bool = False) -> float:
    """`value` as a finite float above `low` (or equal, with `low_inclusive`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigurationError(f"{name} must be a finite number, got {number}")
    if number < low or (number == low and not low_inclusive):
        raise ConfigurationError(f"{name} must be {'at least' if low_inclusive else 'greater than'} {low:g}, got {number:g}")
    return number


def require_path(value: object, name: str) -> os.PathLike[str] | str:
    """`value` if it is a str or os.PathLike; ArgumentTypeError naming `name` otherwise."""
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    return value


#: How a file torch.save wrote begins: a zip archive, or (its legacy format) a pickle.
CHECKPOINT_STARTS = (b"PK\x03\x04", b"\x80")
#: What a checkpoint should be, said after what a file is instead.
CHECKPOINT_EXPECTED = "expected a state_dict saved with torch.save(net.state_dict(), path)"


def not_a_checkpoint(head: bytes) -> str | None:
    """What a file beginning with `head` is where torch.save cannot have written it (empty, text,
    another binary format); None where it begins as a checkpoint does."""
    if head.startswith(CHECKPOINT_STARTS):
        return None
    if not head:
        return "an empty file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"not a PyTorch checkpoint (unknown binary format); {CHECKPOINT_EXPECTED}"
    return f"a text file, not a PyTorch checkpoint; {CHECKPOINT_EXPECTED}"


def missing_file(path: os.PathLike[str] | str, what: str) -> str:
    """Why `path` cannot be read as a `what` that does not open: a folder is there, or nothing is."""
    if os.path.isdir(path):
        return f"is a folder, expected {'an' if what[0] in 'aeiou' else 'a'} {what}"
    return f"{what} not found"
