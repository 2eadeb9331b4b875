"""The roof a roofline needs: a device's peak FLOP/s (a GPU's datasheet, a CPU's instruction
set), what a square matmul achieves there, and its measured memory bandwidth."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.device import (
    PRECISIONS,
    backend_for,
    cpu_flags,
    cpuinfo,
    fp32_math,
    matmul_as_convs,
    resolve_device,
    widest_vectors,
)

# Dense peak TFLOP/s by precision, from NVIDIA's datasheets (tensor-core figures without
# sparsity, which the datasheets print at twice these): "NVIDIA H100 Tensor Core GPU" (SXM, PCIe,
# NVL), "NVIDIA H200 Tensor Core GPU" (SXM, NVL), "NVIDIA GH200 Grace Hopper Superchip", "NVIDIA
# A100 Tensor Core GPU", "NVIDIA L4 Tensor Core GPU" and "NVIDIA T4". The first entry whose words
# all appear among the words of the device name wins (torch names the H100 SXM "NVIDIA H100
# 80GB HBM3").
GPU_PEAK_TFLOPS = [
    (("H100", "NVL"), "H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    (("H100", "PCIe"), "H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    (("H100",), "H100 SXM", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    (("H200", "NVL"), "H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    (("H200",), "H200 SXM", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    (("GH200",), "GH200", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    (("A100",), "A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    (("L4",), "L4", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}),
    (("T4",), "T4", {"fp32": 8.1, "fp16": 65.0}),
]


FP32_LANES = {"AVX-512": 16, "AVX2": 8, "SSE": 4}


@dataclass(frozen=True)
class CpuDescription:
    """What a CPU's peak follows from: the cores this process computes on, the highest clock
    the system reports, the instruction-set flags, and the vendor and family that tell how wide
    its vector pipes are."""

    cores: int
    mhz: float
    flags: frozenset[str]
    vendor: str = ""
    family: int = 0

    @property
    def pipe_lanes(self) -> int | None:
        """fp32 lanes of one vector pipe where the pipes are narrower than the widest
        instructions: AMD's Zen 4 (family 25) runs AVX-512 on two 256-bit pipes, as many FLOPs a
        cycle as AVX2; None where the pipes are as wide as the instructions."""
        narrow = self.vendor == "AuthenticAMD" and self.family == 25 and "avx512f" in self.flags
        return FP32_LANES["AVX2"] if narrow else None


# Vector FMA pipes per core: two on the x86 server cores of the last decade (Intel since
# Haswell, AMD since Zen 2); a core with one is overstated twofold, never understated.
FMA_UNITS = 2
AMX_BF16_FLOPS_PER_CYCLE = 1024  # a core's AMX tile unit (Intel since Sapphire Rapids)


def describe_cpu() -> CpuDescription:
    """This machine's CPU, read from Linux: torch's threads as cores, the maximum clock from
    cpufreq where the kernel has it (else the fastest `cpu MHz` of /proc/cpuinfo), the flags."""
    text = cpuinfo()
    mhz = max(float(v) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE))
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if cpufreq.exists():
        mhz = int(cpufreq.read_text()) / 1000
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.MULTILINE)
    family = re.search(r"^cpu family\s*:\s*(\d+)", text, re.MULTILINE)
    return CpuDescription(
        torch.get_num_threads(),
        mhz,
        cpu_flags(),
        vendor.group(1) if vendor else "",
        int(family.group(1)) if family else 0,
    )


def cpu_peak_flops(cpu: CpuDescription, precision: str) -> tuple[float, str]:
    """cores x clock x FMA units x lanes x 2 (an FMA is two FLOPs), and the figure in words,
    at the clock the system reports. Lanes: 16 fp32 with AVX-512, 8 with AVX2, 4 with SSE, or
    as many as one pipe holds where the pipes are narrower than the instructions (AMD Zen 4);
    bf16 doubles them where the CPU has AVX-512 BF16 (fp16 and bf16 without it run at the fp32
    rate). Where the CPU has AMX, bf16 takes its tile unit's rate instead: one 16x32 by 32x16
    tile product (8,192 multiply-adds) every 16 cycles, 1,024 FLOPs a cycle a core."""
    if precision == "bf16" and "amx_bf16" in cpu.flags:
        per_cycle = AMX_BF16_FLOPS_PER_CYCLE
        words = (
            f"{cpu.cores} cores x {cpu.mhz / 1000:.2f} GHz x {per_cycle:,} AMX bf16 FLOPs a cycle"
        )
        return cpu.cores * cpu.mhz * 1e6 * per_cycle, words
    isa = widest_vectors(cpu.flags) or "SSE"  # 4 lanes: 128-bit vectors
    lanes, on = FP32_LANES[isa], ""
    if cpu.pipe_lanes is not None and cpu.pipe_lanes < lanes:
        lanes, on = cpu.pipe_lanes, f" on {32 * cpu.pipe_lanes}-bit pipes"
    units = FMA_UNITS if "fma" in cpu.flags or "avx512f" in cpu.flags else 1
    if precision == "bf16" and "avx512_bf16" in cpu.flags:
        isa, lanes = "AVX-512 BF16", 2 * lanes
    peak = cpu.cores * cpu.mhz * 1e6 * units * lanes * 2
    words = (
        f"{cpu.cores} cores x {cpu.mhz / 1000:.2f} GHz x {units} FMA units x {lanes} "
        f"{isa}{on} lanes x 2"
    )
    return peak, words


def gpu_peak_flops(precision: str, name: str) -> tuple[float, str]:
    """The datasheet's dense FLOP/s of the GPU named ``name`` for ``precision``, and the source;
    NaN where no datasheet figure is known. fp32 takes the peak of the fastest math that
    ``fp32_math`` allows some of its layers, so that no utilization exceeds 1."""
    settings = fp32_math()
    matmul = settings["float32_matmul_precision"]
    if precision != "fp32":
        key = precision
    elif matmul == "medium":
        key = "bf16"
    elif matmul == "high" or settings["cudnn_allow_tf32"]:
        key = "tf32"
    else:
        key = "fp32"
    tokens = set(re.split(r"[\s\-]+", name))
    for words, label, table in GPU_PEAK_TFLOPS:
        if tokens.issuperset(words) and key in table:
            return table[key] * 1e12, f"datasheet: {label} {key}"
    return math.nan, f"no datasheet figure for {name} {key}"


# The side of the square matmul that measures what a device achieves: large enough to keep it
# busy, small enough that one product takes milliseconds (8192 on a GPU: 1.1 TFLOP). Where one
# product would take far longer (bf16 on a CPU without bf16 instructions, which runs below
# 1 GFLOP/s: a minute at 2048), the side is halved until it would not.
MATMUL_SIDE = {"cpu": 2048, "cuda": 8192}


def peak_flops(device: torch.device, precision: str, backend_name: str) -> dict[str, Any]:
    """The device's peak FLOP/s for ``precision`` (what the hardware can do, so that no
    utilization exceeds 1) and beside it what a square matmul achieves, with sources.

    GPU: the datasheet's dense figure. CPU: ``cpu_peak_flops`` from the machine's description;
    where the matmul beats it (the cores run above the clock the system reports), the matmul."""
    with matmul_as_convs() as tf32:  # a conv's point is set under the roof of its own math
        achieved, n = measured_matmul_flops(device, precision)
    math_used = " (TF32, as the fp32 convolutions)" if tf32 and device.type == "cuda" else ""
    measured = {
        "achievable_flops_per_s": achieved,
        "achievable_source": f"measured: {n}x{n} {precision}{math_used} matmul, best of runs",
    }
    if device.type == "cuda":
        peak, source = gpu_peak_flops(precision, backend_name)
        return {"peak_flops_per_s": peak, "peak_source": source, **measured}
    peak, words = cpu_peak_flops(describe_cpu(), precision)
    if achieved > peak:
        return {
            "peak_flops_per_s": achieved,
            "peak_source": f"the measured matmul, above "
            f"{peak / 1e9:,.0f} GFLOP/s = {words} (the cores run above the reported clock)",
            **measured,
        }
    return {"peak_flops_per_s": peak, "peak_source": words, **measured}


def machine_roof(device: str, precision: str) -> dict[str, Any]:
    """The roof of ``device``'s roofline: ``peak_flops`` for ``precision`` and the measured
    memory bandwidth (run in a child process, so that the parent holds no GPU memory)."""
    dev = resolve_device(device)
    return {
        **peak_flops(dev, precision, backend_for(dev).name),
        "bandwidth_bytes_per_s": measured_bandwidth(dev),
        "bandwidth_source": "measured: 256 MiB copy, best of runs",
    }


def measured_matmul_flops(
    device: torch.device, precision: str, seconds: float = 1.0
) -> tuple[float, int]:
    """Best FLOP/s of a square matrix product in ``precision`` over ``seconds``, and its side:
    ``MATMUL_SIDE``, halved while one product, extrapolated (n³) from one at an eighth of the
    side, would take over 10 x ``seconds`` (small products run less efficiently: the
    extrapolation overstates)."""
    n = MATMUL_SIDE[device.type]
    dtype = PRECISIONS[precision] or torch.float32
    backend = backend_for(device)
    probe = torch.randn(n // 8, n // 8, device=device, dtype=dtype)
    probe_s = min(backend.time(lambda: probe @ probe) for _ in range(2))  # the first warms up
    while n > len(probe) and probe_s * (n / len(probe)) ** 3 > 10 * seconds:
        n //= 2
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = math.inf
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        best = min(best, backend.time(lambda: a @ b))
    return 2 * n**3 / best, n


def measured_bandwidth(device: torch.device, seconds: float = 1.0) -> float:
    """Best bytes/s of copying a 256 MiB tensor into another (each byte read once, written once)
    over ``seconds``."""
    source = torch.ones(64 * 2**20, device=device)
    target = torch.empty_like(source)
    backend = backend_for(device)
    best = math.inf
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        best = min(best, backend.time(lambda: target.copy_(source)))
    return 2 * source.numel() * source.element_size() / best
