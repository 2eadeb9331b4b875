"""The devices timing runs on: what a clock and a memory reading are on each (a backend), which
device ``--device`` names, and the roof a roofline needs (peak FLOP/s, memory bandwidth).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import math
import platform
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.schema import ALLOCATED, RESIDENT

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

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


@dataclass
class Backend(ABC):
    """What timing needs from a device: a clock around one step, and the step's peak memory
    (growth over a baseline set by ``reset_peak``; ``restart_peak`` forgets the peak so far but
    keeps the baseline); ``memory_kind`` says what that memory is. Making one sets the
    process's heap policy (``keep_freed_memory``): every measurement runs under it."""

    device: torch.device
    name: str
    baseline: int = 0
    memory_kind = ""

    def __post_init__(self) -> None:
        keep_freed_memory()

    @abstractmethod
    def time(self, step: Callable[[], Any]) -> float:
        """Seconds one call of ``step`` takes."""

    @abstractmethod
    def reset_peak(self) -> None:
        """Start a new peak-memory reading from what is in use now."""

    @abstractmethod
    def restart_peak(self) -> None:
        """Forget the peak so far (what is still in use stays counted), keeping the baseline."""

    @abstractmethod
    def peak_bytes(self) -> int:
        """Peak memory growth since ``reset_peak``, in bytes."""


@dataclass
class CpuBackend(Backend):
    """The CPU (Linux, glibc): a wall clock, and the process's peak resident memory (VmHWM,
    reset through /proc/self/clear_refs) minus its resident memory at the reset."""

    memory_kind = RESIDENT

    def time(self, step: Callable[[], Any]) -> float:
        start = time.perf_counter()
        step()
        return time.perf_counter() - start

    def reset_peak(self) -> None:
        gc.collect()
        _LIBC.malloc_trim(0)  # hand freed heap back, so that the next step's growth shows
        self.restart_peak()
        self.baseline = _proc_status("VmRSS")

    def restart_peak(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS

    def peak_bytes(self) -> int:
        return _proc_status("VmHWM") - self.baseline


@dataclass
class CudaBackend(Backend):
    """CUDA: events around the step, synchronized before reading; the allocator's peak."""

    memory_kind = ALLOCATED

    def time(self, step: Callable[[], Any]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(self.device)
        start.record()
        step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000

    def reset_peak(self) -> None:
        self.restart_peak()
        self.baseline = torch.cuda.memory_allocated(self.device)

    def restart_peak(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak_bytes(self) -> int:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) - self.baseline


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"))

# glibc's malloc hands freed memory back to the kernel (it trims the top of its heap, and
# unmaps each block above its mmap threshold), and it moves both thresholds with the sizes
# it has seen. A step that allocates megabytes then page-faults them in again at every call,
# for a time that depends on what ran before it in the process: a 3x3 conv of 16 -> 32
# channels on 28x28 at batch 32 takes 3.3 ms with 1,500 page faults a call, or 1.1 ms and none
# after a wider layer has run. Fixed thresholds keep freed memory with the process for the
# next step, as jemalloc and tcmalloc do (mallopt's parameters, from malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_THRESHOLD = 2**31 - 1  # bytes: the largest mallopt takes


@functools.cache
def keep_freed_memory() -> str:
    """Fix glibc's trim and mmap thresholds at ``HEAP_THRESHOLD`` (once a process), so that
    memory a step frees stays mapped for the next; the heap policy in words, as provenance
    records it."""
    mallopt = getattr(_LIBC, "mallopt", None)  # glibc's, and musl's (which refuses)
    if mallopt is None or not all(
        mallopt(option, HEAP_THRESHOLD) == 1 for option in (M_TRIM_THRESHOLD, M_MMAP_THRESHOLD)
    ):
        return "the C library's malloc as it is (no mallopt took the fixed thresholds)"
    return (
        f"glibc malloc, freed memory kept (trim and mmap thresholds {HEAP_THRESHOLD >> 20:,} MiB)"
    )


def _proc_status(field_name: str) -> int:
    """A memory field of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {field_name} in /proc/self/status")


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """TF32 off for cuDNN's convolutions and cuBLAS's matrix products (convolutions use it by
    default on Ampere and later GPUs), restored afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@contextlib.contextmanager
def matmul_as_convs() -> Iterator[bool]:
    """cuBLAS's fp32 matrix products in the math cuDNN's fp32 convolutions may use (TF32 where
    cuDNN's switch is on, as it is by default), restored afterwards, so that a matrix product
    timed beside convolutions runs as they do; yields whether that math is TF32 (a GPU's
    concern: a CPU computes fp32 either way)."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32
    try:
        yield torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


# How an allocator's failure reads where torch raises it as a plain RuntimeError (or its
# AcceleratorError): the CUDA runtime's, cuBLAS's, cuDNN's (ALLOCATION_FAILED since cuDNN 9),
# the CPU allocator's.
OUT_OF_MEMORY = re.compile(r"out of memory|ALLOC(ATION)?_FAILED|can't allocate memory")


def is_out_of_memory(error: BaseException | None) -> bool:
    """An allocator's failure, on the GPU or the CPU, or an error raised from one (torch.compile
    wraps what fails inside the compiled code)."""
    if error is None:
        return False
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    if isinstance(error, RuntimeError) and OUT_OF_MEMORY.search(str(error)):
        return True
    return is_out_of_memory(error.__cause__)


# present where the machine has an NVIDIA GPU, whether or not this torch can use it
NVIDIA_DEVICE = Path("/dev/nvidia0")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' is the GPU if there is one, else the CPU; asking for a missing GPU is an error,
    and so is 'auto' on a machine that has an NVIDIA GPU this torch cannot use (a CPU build, a
    driver too old): a run there must not measure the CPU in the GPU's place unasked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if NVIDIA_DEVICE.exists():
            raise ValueError(
                f"--device auto: this machine has an NVIDIA GPU ({NVIDIA_DEVICE}) "
                "but torch cannot use it (torch.cuda.is_available() is False); "
                "--device cpu measures the CPU"
            )
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    return device


def backend_for(device: torch.device) -> Backend:
    """The timing backend of a device."""
    if device.type == "cuda":
        return CudaBackend(device, torch.cuda.get_device_name(device))
    return CpuBackend(device, cpu_model())


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


CPUINFO = Path("/proc/cpuinfo")


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags /proc/cpuinfo lists (``flags`` on x86, ``Features`` on Arm);
    none where there is no such file."""
    text = CPUINFO.read_text() if CPUINFO.exists() else ""
    found = re.search(r"^(?:flags|Features)\s*:(.*)$", text, re.MULTILINE)
    return frozenset(found.group(1).split()) if found else frozenset()


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo where there is one)."""
    if CPUINFO.exists():
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_cpu() -> CpuDescription:
    """This machine's CPU, read from Linux: torch's threads as cores, the maximum clock from
    cpufreq where the kernel has it (else the fastest `cpu MHz` of /proc/cpuinfo), the flags."""
    text = CPUINFO.read_text()
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


FP32_LANES = {"AVX-512": 16, "AVX2": 8, "SSE": 4}


def widest_vectors(flags: frozenset[str]) -> str | None:
    """An x86 CPU's widest vector instruction set (a key of ``FP32_LANES``), from its
    /proc/cpuinfo flags; None for flags without SSE (another architecture, or none read)."""
    return (
        "AVX-512"
        if "avx512f" in flags
        else "AVX2"
        if "avx2" in flags
        else "SSE"
        if "sse" in flags
        else None
    )


def vector_isa(flags: frozenset[str]) -> str | None:
    """``widest_vectors``, and " BF16" where the CPU has AVX-512's bf16 instructions: what
    provenance records (two virtual machines that report the same CPU name may differ in it)."""
    isa = widest_vectors(flags)
    return isa + " BF16" if isa and "avx512_bf16" in flags else isa


def cpu_peak_flops(cpu: CpuDescription, precision: str) -> tuple[float, str]:
    """cores x clock x FMA units x lanes x 2 (an FMA is two FLOPs), and the figure in words,
    at the clock the system reports. Lanes: 16 fp32 with AVX-512, 8 with AVX2, 4 with SSE, or
    as many as one pipe holds where the pipes are narrower than the instructions (AMD Zen 4);
    bf16 doubles them where the CPU has AVX-512 BF16 (fp16 and bf16 without it run at the fp32
    rate)."""
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


def fp32_math() -> dict[str, Any]:
    """What fp32 convolutions and matrix products may run as on a GPU, as torch is set now:
    cuDNN's TF32 switch (on by default) and the float32 matmul precision ("highest" by default;
    "high" allows TF32, "medium" bf16)."""
    return {
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


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
