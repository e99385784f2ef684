"""The precisions the network runs in, declared once: where each runs, what it promises against the
exact path, and whether `auto` takes it only after the fidelity check (render/fidelity.py).

The CLI's choices and help, the refusals, the fidelity check's threshold, the metrics' help, the
cache's entry names and which steps of precision auto's ladder are checked (models/backends/base.py,
render/ladder.py) are built from PRECISIONS (docs/contract.md, "What each precision promises"). A
new precision is one entry here, and a backend that declares it (its `speeds`) with its tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigurationError


@dataclass(frozen=True)
class Precision:
    """One precision the network can run in.

    Attributes:
        name: what users pass as --precision ("fp32").
        cpu_flag: the CPU feature (devices.cpu_summary) it needs on a CPU; "" for every CPU, None where
            it runs on CUDA only.
        no_cpu: why a CPU cannot run it, for the refusal ("it has no AVX-512 BF16 or AMX").
        backends: which backends run it where, for the help and refusals ("torch on CUDA").
        max_difference: the most a generated pixel value differs from the exact path's (step 10's
            pixels, the paste aside); None where no bound is promised.
        min_fidelity_db: where `auto` takes it only after the fidelity check, the PSNR against the exact
            path it must reach on the user's templates; None where `auto` takes it unchecked.
    """

    name: str
    cpu_flag: str | None
    no_cpu: str
    backends: str
    max_difference: int | None = None
    min_fidelity_db: float | None = None

    @property
    def checked(self) -> bool:
        """True when `auto` runs it only after the fidelity check passes."""
        return self.min_fidelity_db is not None


#: The precision every backend runs, within 2 per value of the exact path: what `auto` falls back to.
BASELINE = "fp32"
PRECISIONS = {
    precision.name: precision for precision in (
        Precision(BASELINE, "", "", "every backend", max_difference=2),
        Precision("fp16", None, "fp16 runs on CUDA only", "torch on CUDA"),
        Precision("bf16", "bf16", "it has no AVX-512 BF16 or AMX", "openvino on CPUs with bf16, or torch on CUDA",
                  min_fidelity_db=45.0),
    )
}
#: What --precision takes: "auto" (the fastest whose promise holds here) or a precision.
PRECISION_CHOICES = ("auto", *PRECISIONS)


def get_precision(name: str) -> Precision:
    """The precision `name`; ConfigurationError naming the choices for an unknown one."""
    if name not in PRECISIONS:
        raise ConfigurationError(f"unknown precision {name!r}: expected one of {', '.join(PRECISION_CHOICES)}")
    return PRECISIONS[name]


def checked_names() -> str:
    """The precisions `auto` checks first, for messages ("bf16")."""
    return ", ".join(precision.name for precision in PRECISIONS.values() if precision.checked)


def where_they_run(names: tuple[str, ...] | None = None) -> str:
    """"fp16: torch on CUDA; bf16: openvino on CPUs with bf16, or torch on CUDA" for `names` (None:
    every precision but the baseline), for help texts and refusals."""
    chosen = [name for name in PRECISIONS if name != BASELINE] if names is None else list(names)
    return "; ".join(f"{name}: {get_precision(name).backends}" for name in chosen)


def describe_auto() -> str:
    """What precision `auto` runs, for the help: each checked precision where it passes, else the baseline."""
    checked = [f"{precision.name} where the CPU has it natively and a check on your checkpoint and templates measures "
               f"at least {precision.min_fidelity_db:g} dB against the exact path"
               for precision in PRECISIONS.values() if precision.checked]
    return ", else ".join([*checked, f"{BASELINE} (within 2 per value)"])
