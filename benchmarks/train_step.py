"""Time one training step of the SyncTalk_2D U-Net (batch 4, Adam, L1) in fp32 and bf16 autocast,
channels-first and channels-last, interleaved step by step so the four share the machine's load.

Run: python benchmarks/train_step.py [--steps 4]. Prints the median seconds per step of each and
its ratio to fp32 channels-first, with the CPU's model and bf16/AMX flags.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from frame_generation_pipeline.models.network import SyncTalkUNet

CONFIGS = (("fp32", False, False), ("bf16", True, False), ("fp32 channels_last", False, True), ("bf16 channels_last", True, True))


def cpu_line() -> str:
    info = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(info.split())
    return f"{model}; {torch.get_num_threads()} threads; " + " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    images, audio, target = torch.rand(4, 6, 320, 320), torch.randn(4, 32, 16, 16), torch.rand(4, 3, 320, 320)
    runs = []
    for _, bf16, channels_last in CONFIGS:
        net = SyncTalkUNet("ave").train()
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        runs.append((net, torch.optim.Adam(net.parameters(), 1e-3), bf16,
                     images.contiguous(memory_format=torch.channels_last) if channels_last else images))
    times: list[list[float]] = [[] for _ in CONFIGS]
    for step in range(args.steps + 1):  # the first step of each warms up and is not counted
        for k, (net, optimizer, bf16, x) in enumerate(runs):
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                output = net(x, audio)
            loss = (output.float() - target).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step:
                times[k].append(time.perf_counter() - started)
    print(cpu_line())
    base = statistics.median(times[0])
    for (name, _, _), measured in zip(CONFIGS, times):
        median = statistics.median(measured)
        print(f"{name:20s} {median:6.2f} s/step  x{base / median:.2f} vs fp32  (steps: {' '.join(f'{t:.1f}' for t in measured)})")


if __name__ == "__main__":
    main()
