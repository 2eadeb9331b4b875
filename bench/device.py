"""The devices timing runs on: what a clock and a memory reading are on each (a backend), which
device ``--device`` names, what the CPU is (its name and instruction-set flags), and the math
settings every measurement runs under. The roof a roofline needs is ``bench.peaks``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
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


CPUINFO = Path("/proc/cpuinfo")


def cpuinfo() -> str:
    """The text of /proc/cpuinfo (empty where there is no such file)."""
    return CPUINFO.read_text() if CPUINFO.exists() else ""


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags /proc/cpuinfo lists (``flags`` on x86, ``Features`` on Arm);
    none where there is no such file."""
    text = cpuinfo()
    found = re.search(r"^(?:flags|Features)\s*:(.*)$", text, re.MULTILINE)
    return frozenset(found.group(1).split()) if found else frozenset()


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo where there is one)."""
    if CPUINFO.exists():
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def widest_vectors(flags: frozenset[str]) -> str | None:
    """An x86 CPU's widest vector instruction set (a key of ``bench.peaks.FP32_LANES``), from its
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
    """``widest_vectors``, " BF16" where the CPU has AVX-512's bf16 instructions and " AMX"
    where it has Intel's bf16 matrix tiles (oneDNN runs bf16 convolutions on them): what
    provenance records (two virtual machines that report the same CPU name may differ in it)."""
    isa = widest_vectors(flags)
    if isa and "avx512_bf16" in flags:
        isa += " BF16"
    if isa and "amx_bf16" in flags:
        isa += " AMX"
    return isa


def fp32_math() -> dict[str, Any]:
    """What fp32 convolutions and matrix products may run as on a GPU, as torch is set now:
    cuDNN's TF32 switch (on by default) and the float32 matmul precision ("highest" by default;
    "high" allows TF32, "medium" bf16)."""
    return {
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
