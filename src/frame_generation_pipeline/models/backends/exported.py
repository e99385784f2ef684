"""The base of the backends that run an exported graph: which graph (given, or the cached export of a
checkpoint, exported on a miss), its provenance check, and the number of calls run at once."""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from pathlib import Path

from ...contract import ModeSpec, get_mode
from ...devices import device_type, usable_cpus
from ...errors import ConfigurationError
from ..cache import CACHE_OPSET, export_path
from ..onnx_files import check_mode, check_model_file
from .base import InferenceBackend, checkpoint_digest

logger = logging.getLogger(__name__)


def cached_export(checkpoint: str | os.PathLike[str], mode: ModeSpec, sha256: str) -> Path:
    """The cached ONNX export of `checkpoint` (whose sha256 is `sha256`), exported (loading torch
    weights) on first use."""
    path = export_path(sha256, mode)
    if path.is_file():
        logger.info("using the cached export %s", path)
        return path
    from .torch_backend import TorchBackend

    model = TorchBackend(checkpoint, mode, device="cpu", checkpoint_sha256=sha256)  # a bad checkpoint is refused here
    logger.info("exporting %s to ONNX once, into the cache (%s)", os.fspath(checkpoint), path.parent)
    model.export_to_onnx(path, CACHE_OPSET)
    return path


class ExportedBackend(InferenceBackend):
    """A backend running an exported graph: `model_file`, or the cached export of `checkpoint`.

    Args:
        checkpoint: the checkpoint the graph comes from (its sha256 is checked against the graph's
            metadata); None with `model_file` runs that file as it is (a port's package).
        mode: the audio mode; must match the graph's metadata.
        device: "cpu" or, where the backend can, "cuda".
        precision: one of the backend's precisions, or "auto".
        model_file: an exported graph; None takes the cached export of `checkpoint` (exported on
            first use, which loads torch weights once).
        streams: network calls that may run at once, from as many threads. None: 2 on a CPU with
            2 or more cores, 1 on CUDA. Frames do not depend on it.

    Raises:
        CheckpointError, ModelFileError: unreadable files, or a graph of another checkpoint or mode.
        ConfigurationError, BackendUnavailableError: an unusable precision, device or streams.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        mode: str | ModeSpec = "ave",
        device: str = "cpu",
        precision: str = "auto",
        model_file: str | os.PathLike[str] | None = None,
        streams: int | None = None,
    ) -> None:
        spec = get_mode(mode)
        self.check_device(device)
        precision = self.resolve_precision(precision, device_type(device))
        if streams is None:
            streams = 1 if device_type(device) == "cuda" else min(2, usable_cpus())
        if streams < 1:
            raise ConfigurationError(f"streams must be at least 1, got {streams}")
        if checkpoint is None and model_file is None:
            raise ConfigurationError(f"the {self.name} backend needs a checkpoint or an exported model file")
        sha256 = "" if checkpoint is None else checkpoint_digest(checkpoint)
        self.path = Path(model_file) if model_file is not None else cached_export(checkpoint, spec, sha256)
        self.metadata = self.open_graph(self.path, device, precision, streams)
        if checkpoint is None:
            check_mode(self.path, self.metadata, spec)
        else:
            check_model_file(self.path, self.metadata, spec, checkpoint, sha256)
        super().__init__(spec, device, precision, streams, sha256 or self.metadata.get("checkpoint_sha256", ""))

    @classmethod
    def check_device(cls, device: str) -> None:
        """Refuse a device the backend cannot run on (BackendUnavailableError); every one by default."""

    @abstractmethod
    def open_graph(self, path: Path, device: str, precision: str, streams: int) -> dict[str, str]:
        """Load (compile) the graph at `path` for `streams` calls at once; its metadata."""
