"""The machine: which device to run on, its CPUs and their instruction sets, and the allocator.

torch is imported only when a CUDA device is really possible (an NVIDIA device node exists), so
the onnxruntime and OpenVINO paths on a CPU never pay for it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import logging
import os
import re
import sys

from .errors import ConfigurationError
from .precisions import PRECISIONS, Precision, get_precision

logger = logging.getLogger(__name__)

#: glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
#: Buffers of the network's size are kept by the allocator instead of being unmapped after each
#: layer: that halved the time of a torch forward pass on a 2-core CPU (docs/performance.md).
_ALLOCATOR_KEEP_BYTES = 1 << 30
_DEVICE_FORMS = "cpu, cuda, cuda:N or auto"


def cuda_available() -> bool:
    """True when torch sees a CUDA GPU (torch is not imported on a Linux machine without NVIDIA devices)."""
    if sys.platform.startswith("linux") and not glob.glob("/dev/nvidia[0-9]*"):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str | None) -> str:
    """None or "auto" -> "cuda" when a GPU is there, else "cpu"; "cpu", "cuda", "cuda:N" are checked.

    Also takes a torch.device. Raises ConfigurationError for another form, or CUDA without a GPU.
    """
    if device is None or str(device) == "auto":
        return "cuda" if cuda_available() else "cpu"
    if not isinstance(device, str) and type(device).__name__ != "device":
        raise ConfigurationError(f"device must be a string such as 'cpu' or 'cuda', got {type(device).__name__}")
    name = str(device)
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ConfigurationError(f"unknown device {name!r}: expected {_DEVICE_FORMS}")
    if name.startswith("cuda") and not cuda_available():
        raise ConfigurationError(f"device {name!r} was asked for, but this machine has no CUDA GPU that torch sees")
    return name


def device_type(device: str) -> str:
    """"cpu" or "cuda" for a resolved device name."""
    return device.split(":")[0]


_cpu_budget: int | None = None


def set_cpu_budget(cpus: int | None) -> None:
    """Size this process's thread pools to `cpus` (a farm worker given part of a machine); None: all."""
    global _cpu_budget
    _cpu_budget = cpus


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS reports one, within its budget)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return cpus if _cpu_budget is None else max(1, min(cpus, _cpu_budget))


#: Flags to leave out of `cpu_flags` (comma-separated): a run as on a CPU without them (tests that must
#: not depend on the machine, a benchmark of what a CPU without bf16 gets).
HIDE_FLAGS_ENV = "FRAME_GEN_HIDE_CPU_FLAGS"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Instruction-set flags of the CPU as Linux reports them (empty where it cannot be read), less
    those named in $FRAME_GEN_HIDE_CPU_FLAGS."""
    hidden = frozenset(os.environ.get(HIDE_FLAGS_ENV, "").replace(",", " ").split())
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split()) - hidden
    except OSError:
        pass
    return frozenset()


def cpu_summary() -> dict[str, bool]:
    """The instruction sets that decide CPU speed here: AVX2, AVX-512, bf16 (AVX-512 or AMX), AMX."""
    flags = cpu_flags()
    return {
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "bf16": bool({"avx512_bf16", "amx_bf16"} & flags),
        "amx": "amx_tile" in flags,
    }


@functools.lru_cache(maxsize=1)
def tune_allocator() -> bool:
    """Keep large freed buffers in glibc's heap instead of returning them to the OS after each use.

    torch allocates and frees tens of MB per layer; glibc's default unmaps and remaps them every
    time, and the page faults cost as much CPU as the arithmetic. Threads share one arena, so the
    setting holds for the generator's network threads too (each thread's own arena would give
    its heaps back regardless). Measured on a 2-core CPU: a forward pass in a thread 0.59 -> 0.25 s,
    system time 4.5 -> 0.5 s. Process-wide, once; False where there is no glibc mallopt.
    """
    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or name is None:
        return False
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None)
    if mallopt is None:
        return False
    done = all(mallopt(option, value) for option, value in (
        (_M_MMAP_THRESHOLD, _ALLOCATOR_KEEP_BYTES), (_M_TRIM_THRESHOLD, _ALLOCATOR_KEEP_BYTES), (_M_ARENA_MAX, 1)))
    logger.debug("allocator keeps freed buffers up to %d MB: %s", _ALLOCATOR_KEEP_BYTES >> 20, done)
    return done


def available_memory() -> int | None:
    """Bytes of memory the system can give now without swapping (None where it cannot say)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def cpu_runs(precision: Precision) -> bool:
    """True when this CPU runs `precision` (every CPU, one with the feature it needs, or none)."""
    return precision.cpu_flag is not None and (precision.cpu_flag == "" or bool(cpu_summary()[precision.cpu_flag]))


def check_precision(precision: str, device: str) -> None:
    """ConfigurationError, before anything loads, for a precision `device` cannot run (an unknown one,
    or on a CPU one it lacks the instructions for, or one that runs on CUDA only: precisions.py)."""
    if precision == "auto":
        return
    wanted = get_precision(precision)
    if device_type(device) != "cpu" or cpu_runs(wanted):
        return
    supported = ", ".join(name for name, spec in PRECISIONS.items() if cpu_runs(spec))
    raise ConfigurationError(f"precision {precision!r} is not supported by this CPU ({wanted.no_cpu}): it supports {supported}")
