"""The base of the backends that run an exported graph: which graphs (given, or the cached export of a
checkpoint: the full graph or the template cache's two, exported on a miss), their provenance check, and
running them."""

from __future__ import annotations

import logging
import os
import threading
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ...contract import ModeSpec, get_mode
from ...devices import device_type, usable_cpus
from ...errors import ConfigurationError
from ..cache import CACHE_OPSET, PARTS, cache_dir, export_path
from ..cache_lock import entry_locks
from ..onnx_files import SKIP_NAMES, check_mode, check_model_file
from .base import InferenceBackend, checkpoint_digest

logger = logging.getLogger(__name__)


#: The graphs the template cache runs: a template's first visit, then the rest of the network.
_SPLIT = ("first", "rest")
#: Runs one compiled graph: input name -> array, to the graph's outputs in order (thread-safe).
Graph = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def cached_export(checkpoint: str | os.PathLike[str], mode: ModeSpec, sha256: str, parts: Sequence[str] = PARTS) -> Path:
    """The cached ONNX export of `checkpoint` (whose sha256 is `sha256`): the path of the first of `parts`
    (in PARTS' order); those missing from the cache are exported first (loading torch weights once), by
    one process while any other asking for them waits (models/cache_lock.py)."""
    wanted = [part for part in PARTS if part in parts]  # one order everywhere: no two processes wait on each other

    def missing() -> list[str]:
        return [part for part in wanted if not export_path(sha256, mode, part).is_file()]

    if missing():
        with entry_locks([export_path(sha256, mode, part) for part in missing()]):
            _export(checkpoint, mode, sha256, missing())  # checked again once held: another process may have made them
    else:
        logger.info("using the cached export %s", export_path(sha256, mode, wanted[0]))
    return export_path(sha256, mode, wanted[0])


def _export(checkpoint: str | os.PathLike[str], mode: ModeSpec, sha256: str, parts: Sequence[str]) -> None:
    """Export `parts` of `checkpoint` into the cache (each written to a temporary, renamed into place)."""
    if not parts:
        return
    from .torch_backend import TorchBackend

    model = TorchBackend(checkpoint, mode, device="cpu", checkpoint_sha256=sha256)  # a bad checkpoint is refused here
    logger.info("exporting %s to ONNX once, into the cache (%s)", os.fspath(checkpoint), cache_dir("onnx"))
    for part in parts:
        model.export_to_onnx(export_path(sha256, mode, part), CACHE_OPSET, part)


class ExportedBackend(InferenceBackend):
    """A backend running an exported graph: `model_file`, or the cached export of `checkpoint`.

    Args:
        checkpoint: the checkpoint the graph comes from (its sha256 is checked against the graph's
            metadata); None with `model_file` runs that file as it is (a port's package).
        mode: the audio mode; must match the graph's metadata.
        device: "cpu" or, where the backend can, "cuda".
        precision: one of the backend's precisions, or "auto".
        model_file: an exported graph; None takes the cached export of `checkpoint`: where they pay
            (`split_pays`) the template cache's two graphs alone, the first-visit one also serving `run`
            (its first output is the whole network's), else the full graph (exported on first use, which
            loads torch weights once).
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
        sha256 = "" if checkpoint is None else checkpoint_digest(checkpoint)
        if model_file is not None:
            self.path = Path(model_file)
        elif checkpoint is not None:  # the graphs it runs, exported together on a miss: torch weights load once
            self.path = cached_export(checkpoint, spec, sha256, _SPLIT if self.split_pays() else ("full",))
        else:
            raise ConfigurationError(f"the {self.name} backend needs a checkpoint or an exported model file")
        self._graph, self.metadata = self.compile_graph(self.path, device, precision, streams)
        if checkpoint is None:
            check_mode(self.path, self.metadata, spec)
        else:
            check_model_file(self.path, self.metadata, spec, checkpoint, sha256)
        super().__init__(spec, device, precision, streams, sha256 or self.metadata.get("checkpoint_sha256", ""))
        # with a given file no torch weights load: the template cache's graphs are used only when the cache has them
        split_cached = bool(sha256) and all(export_path(sha256, spec, part).is_file() for part in _SPLIT)
        self._checkpoint = checkpoint if model_file is None or split_cached else None
        self._split: tuple[Graph, Graph] | None = None
        self._split_lock = threading.Lock()
        if split_cached and self.split_pays():  # loaded with the model, so that no render pays for it
            self._split_graphs()

    @property
    def splits(self) -> bool:
        """True when the template cache's graphs can be had: from the cache (exported there on first use
        where they pay), and running them pays (`split_pays`). A given graph runs whole unless the cache
        holds its checkpoint's split graphs already."""
        return self._checkpoint is not None and self.split_pays()

    def split_pays(self) -> bool:
        """True when the template cache makes this backend faster end to end: a template's first
        frame runs the whole network keeping its skips, later ones the rest alone (measured per
        backend, docs/performance.md)."""
        return True

    def _split_graphs(self) -> tuple[Graph, Graph]:
        """The first-visit and rest graphs, exported into the cache first where they are not there yet."""
        checkpoint = self._checkpoint
        if checkpoint is None:
            raise ConfigurationError(f"{self.path} runs whole here: its checkpoint's split graphs are not in the cache")
        with self._split_lock:
            if self._split is None:
                cached_export(checkpoint, self.mode, self.checkpoint_sha256, _SPLIT)
                graphs = []
                for part in _SPLIT:
                    path = export_path(self.checkpoint_sha256, self.mode, part)
                    if path == self.path:  # the first-visit graph `run` uses: compiled once
                        graphs.append(self._graph)
                        continue
                    graph, metadata = self.compile_graph(path, self.device, self.precision, self.streams)
                    check_model_file(path, metadata, self.mode, checkpoint, self.checkpoint_sha256)
                    graphs.append(graph)
                self._split = (graphs[0], graphs[1])
            return self._split

    def run(self, images: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """float32 (B, 6, 320, 320) and (B, *audio_shape) -> float32 (B, 3, 320, 320); thread-safe."""
        self.check_inputs(images, audio)
        return self._graph({"input": _float32(images), "audio": _float32(audio)})[0]

    def first_visit(self, images: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """What `run` gives and the template half's skips x2..x6, float32 (B, C, H, W) each; thread-safe."""
        self.check_inputs(images, audio)
        output, *skips = self._split_graphs()[0]({"input": _float32(images), "audio": _float32(audio)})
        return output, tuple(skips)

    def rest(self, images: np.ndarray, skips: Sequence[np.ndarray], audio: np.ndarray) -> np.ndarray:
        """The network's output from its input, the template half's skips and the audio; thread-safe."""
        self.check_inputs(images, audio)
        feeds = {"input": _float32(images), "audio": _float32(audio)}
        feeds.update((name, _float32(skip)) for name, skip in zip(SKIP_NAMES, skips, strict=True))
        return self._split_graphs()[1](feeds)[0]

    @classmethod
    def check_device(cls, device: str) -> None:
        """Refuse a device the backend cannot run on (BackendUnavailableError); every one by default."""

    @abstractmethod
    def compile_graph(self, path: Path, device: str, precision: str, streams: int) -> tuple[Graph, dict[str, str]]:
        """The graph at `path` loaded (compiled) for `streams` calls at once, and its metadata."""


def _float32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, np.float32)
