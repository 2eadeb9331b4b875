"""The timing sweep's logic on the CPU, with the device and the failing step injected."""

import math
import mmap
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import bench.stages.speed
from bench import device as dev
from bench import peaks
from bench import timing as sp


class FakeBackend(dev.Backend):
    """A device whose clock returns scripted step times and whose memory peak is scripted."""

    memory_kind = "fake"

    def __init__(self, seconds_per_image: float = 0.001):
        super().__init__(torch.device("cpu"), "fake device")
        self.seconds_per_image = seconds_per_image
        self.batch = 0

    def time(self, step):
        step()
        return self.seconds_per_image * self.batch

    def reset_peak(self):
        pass

    def restart_peak(self):
        pass

    def peak_bytes(self):
        return 1000 * self.batch


def factory_failing_at(backend, failing_batch, error):
    made = []

    def make_step(batch):
        made.append(batch)
        backend.batch = batch

        def step():
            if batch >= failing_batch:
                raise error

        return step

    return make_step, made


def test_out_of_memory_at_64_skips_the_larger_batch_sizes():
    backend = FakeBackend()
    make_step, made = factory_failing_at(
        backend, 64, torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
    )
    points = list(sp.sweep(make_step, [128, 8, 64, 32, 256], backend, cap_s=10))
    assert [(p.batch_size, p.status) for p in points] == [
        (8, "ok"),
        (32, "ok"),
        (64, "oom"),
        (128, "skipped"),
        (256, "skipped"),
    ]
    assert made == [8, 8, 32, 64]  # once to warm the runtime up; nothing larger was built
    assert points[2].note == "CUDA out of memory. Tried to allocate 2 GiB"
    assert points[3].note == "larger than batch 64, which ran out of memory"
    assert points[1].peak_bytes == 32_000


class Memory(FakeBackend):
    """A device whose memory is what the steps below allocate and free."""

    def __init__(self):
        super().__init__()
        self.in_use = self.peak = 0

    def allocate(self, size, free=False):
        self.peak = max(self.peak, self.in_use + size)
        self.in_use += 0 if free else size

    def reset_peak(self):
        self.baseline = self.peak = self.in_use

    def restart_peak(self):
        self.peak = self.in_use

    def peak_bytes(self):
        return self.peak - self.baseline


def test_a_points_peak_is_its_inputs_and_steps_not_the_runtimes_first_use_nor_its_warm_up():
    memory, shapes_seen = Memory(), set()

    def make_step(batch):
        memory.batch = batch  # for the clock
        memory.allocate(batch)  # the input, held while the step lives

        def step():
            if not shapes_seen:
                memory.allocate(10**6)  # the runtime's first use: thread pools, handles
            if batch not in shapes_seen:
                memory.allocate(10**5, free=True)  # an algorithm search, once per shape
                shapes_seen.add(batch)
            memory.allocate(10 * batch, free=True)  # the step's activations

        return step

    points = list(sp.sweep(make_step, [8, 32], memory, cap_s=0))
    assert [p.peak_bytes for p in points] == [8 + 80, 32 + 320]


def test_the_cpu_peak_restarts_from_what_is_resident_keeping_its_baseline():
    backend = dev.CpuBackend(torch.device("cpu"), "cpu")
    backend.reset_peak()
    with mmap.mmap(-1, 2**27) as block:  # 128 MiB, mapped and touched, then handed back
        block[:: mmap.PAGESIZE] = b"x" * (len(block) // mmap.PAGESIZE)  # a byte on each page
    assert backend.peak_bytes() > 3 * 2**25  # above 96 MiB: the peak saw it
    backend.restart_peak()
    assert backend.peak_bytes() < 2**25  # below 32 MiB: the new peak did not


HEAP_PROBE = """
import resource, sys, torch
from bench.device import backend_for
if sys.argv[1] == "with a backend":
    backend_for(torch.device("cpu"))
for _ in range(3):  # the heap grows to hold the block
    torch.ones(2**24)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    torch.ones(2**24)  # 64 MiB, made and freed
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_a_backend_keeps_freed_memory_for_the_next_step():
    """glibc unmaps a freed 64 MiB block, and making it again faults in each of its pages
    again; under the heap policy that making a backend sets, they stay for the next (where
    the heap places a block may still make it grow a few times more, however many follow)."""
    faults = {
        how: int(
            subprocess.run(
                [sys.executable, "-c", HEAP_PROBE, how], capture_output=True, text=True, check=True
            ).stdout
        )
        for how in ("as glibc does", "with a backend")
    }
    assert faults["with a backend"] < faults["as glibc does"] / 4
    assert faults["as glibc does"] >= 30 * 2**24 * 4 / 2**21  # at least one fault per 2 MiB page
    assert dev.keep_freed_memory().startswith("glibc malloc, freed memory kept")


def test_cpu_allocator_failure_counts_as_out_of_memory():
    error = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB")
    assert dev.is_out_of_memory(error)
    assert dev.is_out_of_memory(MemoryError())
    assert not dev.is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.parametrize(
    "error",
    [
        torch.AcceleratorError("CUDA error: out of memory\nCUDA kernel errors might be reported"),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
        RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"),
    ],
    ids=["cuda-runtime", "cublas", "cudnn-8", "cudnn-9"],
)
def test_gpu_allocator_failures_count_as_out_of_memory(error):
    assert dev.is_out_of_memory(error)
    wrapper = Exception("BackendCompilerFailed: backend='inductor' raised: ...")
    wrapper.__cause__ = error  # as torch.compile raises what failed in the compiled code
    assert dev.is_out_of_memory(wrapper)
    wrapper.__cause__, wrapper.__context__ = None, error  # raised while handling it: another error
    assert not dev.is_out_of_memory(wrapper)


def sweep_failing_at_batch_1(error):
    backend = FakeBackend()

    def make_step(batch):
        backend.batch = batch

        def step():
            if batch == 1:
                raise error

        return step

    return list(sp.sweep(make_step, [1, 2, 4], backend, cap_s=10))


def test_an_ordinary_error_costs_only_its_own_batch_size():
    points = sweep_failing_at_batch_1(ValueError("mat1 and mat2 shapes cannot be multiplied"))
    assert [p.status for p in points] == ["error", "ok", "ok"]
    assert points[0].note == "ValueError: mat1 and mat2 shapes cannot be multiplied"


def test_batch_norm_training_on_one_value_per_channel_is_not_applicable():
    torch_message = "Expected more than 1 value per channel when training, got input size [1, 4]"
    points = sweep_failing_at_batch_1(ValueError(torch_message))
    assert [p.status for p in points] == ["n/a", "ok", "ok"]
    assert points[0].note.startswith("not applicable: batch norm in training needs more than one")


def test_steps_predicted_over_the_limit_are_skipped():
    backend = FakeBackend(seconds_per_image=0.01)  # batch 8: 0.08 s, 64: 0.64 s, 512: 5.1 s
    make_step, made = factory_failing_at(backend, 10**9, None)
    points = list(sp.sweep(make_step, [8, 64, 512], backend, cap_s=0.1, max_step_s=1.0))
    assert [p.status for p in points] == ["ok", "ok", "skipped"]
    assert made == [8, 8, 64]
    assert points[2].note == "a step would take ~5.1 s, over the 1 s limit"


def test_time_steps_stops_at_the_cap_after_warmup():
    backend = FakeBackend(seconds_per_image=0.1)
    backend.batch = 1
    calls = []
    times = sp.time_steps(lambda: calls.append(1), backend, cap_s=0.55, warmup=3)
    assert len(times) == 6 and len(calls) == 3 + 6  # 6 x 0.1 s reaches the 0.55 s cap
    backend.batch = 100  # one step (10 s) is longer than the cap: still timed once
    assert len(sp.time_steps(lambda: None, backend, cap_s=0.5, warmup=0)) == 1
    assert len(sp.time_steps(lambda: None, backend, cap_s=0.5, warmup=0, min_steps=3)) == 3


def test_a_point_slower_than_the_cap_is_timed_often_enough_to_have_a_spread():
    backend = FakeBackend(seconds_per_image=0.01)  # batch 64: 0.64 s a step, over the cap
    make_step, _ = factory_failing_at(backend, 10**9, None)
    (point,) = sp.sweep(make_step, [64], backend, cap_s=0.1)
    assert point.stats["n"] == sp.MIN_TIMED_STEPS == 3 and point.stats["cv"] == 0.0


def test_summary_statistics():
    seconds = [0.010, 0.020, 0.030, 0.040, 0.100]
    stats = sp.summarize(seconds, batch_size=8)
    assert stats["n"] == 5
    assert stats["median_ms"] == pytest.approx(30.0)
    assert stats["p90_ms"] == pytest.approx(1000 * np.percentile(seconds, 90))  # 76 ms
    assert stats["p90_ms"] == pytest.approx(76.0)
    assert stats["p99_ms"] == pytest.approx(97.6)
    mean = sum(seconds) / 5
    std = math.sqrt(sum((s - mean) ** 2 for s in seconds) / 4)
    assert stats["cv"] == pytest.approx(std / mean)
    assert stats["images_per_s"] == pytest.approx(8 / 0.030)
    assert math.isnan(sp.summarize([0.5], 1)["cv"])


def test_missing_gpu_and_unknown_device_are_errors(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "NVIDIA_DEVICE", tmp_path / "nvidia0")  # no GPU on the machine
    assert dev.resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        dev.resolve_device("cuda")
    (tmp_path / "nvidia0").touch()  # a GPU this torch cannot use: never the CPU in its place
    with pytest.raises(ValueError, match="torch cannot use it"):
        dev.resolve_device("auto")
    assert dev.resolve_device("cpu").type == "cpu"  # unless the CPU is asked for


def test_gpu_peak_comes_from_the_datasheet_table(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    value, source = peaks.gpu_peak_flops("bf16", "NVIDIA H100 80GB HBM3")
    assert value == 989.4e12 and source == "datasheet: H100 SXM bf16"
    assert peaks.gpu_peak_flops("fp32", "NVIDIA H100 PCIe")[0] == 51.2e12
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)  # fp32 convs run as TF32
    assert peaks.gpu_peak_flops("fp32", "NVIDIA A100-SXM4-40GB")[0] == 156e12
    assert math.isnan(peaks.gpu_peak_flops("fp32", "NVIDIA L40S")[0])  # not an L4


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA H200 NVL", "H200 NVL"),
        ("NVIDIA GH200 480GB", "GH200"),
    ],
)
def test_each_hopper_gpu_finds_its_own_datasheet_row(name, label):
    assert peaks.gpu_peak_flops("bf16", name)[1] == f"datasheet: {label} bf16"


@pytest.mark.parametrize(
    ("cudnn_tf32", "matmul_precision", "peak"),
    [
        (False, "highest", "fp32"),
        (True, "highest", "tf32"),
        (False, "high", "tf32"),
        (True, "medium", "bf16"),
    ],
)
def test_an_fp32_peak_follows_the_fastest_math_torch_allows(
    monkeypatch, cudnn_tf32, matmul_precision, peak
):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", cudnn_tf32)
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: matmul_precision)
    assert peaks.gpu_peak_flops("fp32", "NVIDIA H100 80GB HBM3")[1] == f"datasheet: H100 SXM {peak}"
    assert dev.fp32_math() == {
        "cudnn_allow_tf32": cudnn_tf32,
        "float32_matmul_precision": matmul_precision,
    }


def test_speed_times_a_live_module_and_restores_its_state():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)
    )
    before = {k: v.clone() for k, v in net.state_dict().items()}
    df = sp.speed(
        net, image_size=8, batch_sizes=(2, 4), device="cpu", time_cap_s=0.05, peak=(1e9, "given")
    )
    assert list(zip(df["mode"], df["batch_size"], df["status"], strict=True)) == [
        ("infer", 2, "ok"),
        ("infer", 4, "ok"),
        ("train", 2, "ok"),
        ("train", 4, "ok"),
    ]
    assert (df["n"] >= 1).all() and (df["images_per_s"] > 0).all()
    assert (df["peak_flops_per_s"] == 1e9).all() and (df["peak_source"] == "given").all()
    # a training step counts its backward too: the last layer's two gradients and the first
    # layer's weight gradient (its input needs none) come to more than the forward again
    infer, train = (df.loc[df["mode"] == m, "flops_per_image"].iloc[0] for m in ("infer", "train"))
    assert train > 2 * infer
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # cuDNN's algorithm search is a GPU's: off here, recorded, and the switch left as it was
    assert not df["cudnn_benchmark"].any() and not torch.backends.cudnn.benchmark


def test_a_gpu_sweep_turns_cudnn_benchmark_on_and_back_off(monkeypatch):
    seen = []  # the switch as each sweep finds it

    def sweep(*args, **kwargs):
        seen.append(torch.backends.cudnn.benchmark)
        return iter(())

    monkeypatch.setattr(sp, "sweep", sweep)
    monkeypatch.setattr(sp, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(sp, "backend_for", lambda device: FakeBackend())
    monkeypatch.setattr(sp, "step_flops_per_image", lambda *a: {"infer": 1, "train": 3})
    monkeypatch.setattr(nn.Module, "to", lambda self, *a, **k: self)  # nothing moves to a GPU
    list(sp.iter_speed(nn.Linear(4, 2), image_size=2, modes=("infer",), peak=(1.0, "given")))
    assert seen == [True] and not torch.backends.cudnn.benchmark


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(precision="fp8"), "precision must be one of fp32, bf16, fp16"),
        (dict(batch_sizes=(0, 4)), "batch sizes must be positive"),
        (dict(modes=("eval",)), "modes must be among infer, train"),
    ],
)
def test_bad_options_are_value_errors(options, message):
    with pytest.raises(ValueError, match=message):
        sp.speed("lenet", **options)


@pytest.mark.parametrize(
    ("flags", "cores", "mhz", "precision", "peak"),
    [
        ({"fma", "avx2"}, 2, 2445.0, "fp32", 2 * 2.445e9 * 2 * 8 * 2),  # AVX2: 8 fp32 lanes, 2 FMAs
        ({"fma", "avx2", "avx512f"}, 4, 3000.0, "fp32", 4 * 3e9 * 2 * 16 * 2),  # AVX-512: 16 lanes
        ({"fma", "avx2", "avx512f", "avx512_bf16"}, 1, 2000.0, "bf16", 2e9 * 2 * 32 * 2),
        ({"fma", "avx2", "avx512f"}, 1, 2000.0, "bf16", 2e9 * 2 * 16 * 2),  # no bf16 units
        # AMX: a 16x32 by 32x16 bf16 tile product every 16 cycles
        (
            {"avx512f", "avx512_bf16", "amx_bf16"},
            2,
            2000.0,
            "bf16",
            2 * 2e9 * 16 * 32 * 16 * 2 / 16,
        ),
        (
            {"avx512f", "avx512_bf16", "amx_bf16"},
            2,
            2000.0,
            "fp32",
            2 * 2e9 * 2 * 16 * 2,
        ),  # AMX speeds bf16 only
        ({"sse2"}, 1, 1000.0, "fp32", 1e9 * 1 * 4 * 2),  # no FMA: one multiply and one add a cycle
    ],
)
def test_the_cpu_peak_follows_from_its_description(flags, cores, mhz, precision, peak):
    intel = peaks.CpuDescription(cores, mhz, frozenset(flags), "GenuineIntel", 6)
    value, words = peaks.cpu_peak_flops(intel, precision)
    assert value == pytest.approx(peak)
    assert words.startswith(f"{cores} cores x {mhz / 1000:.2f} GHz")


@pytest.mark.parametrize(("precision", "per_cycle"), [("fp32", 2 * 8 * 2), ("bf16", 2 * 16 * 2)])
def test_zen_4_runs_avx_512_on_256_bit_pipes(precision, per_cycle):
    """AMD family 25 with AVX-512 (Zen 4): two 256-bit FMA pipes, half what 512-bit pipes
    would do; family 26 (Zen 5) has 512-bit pipes."""
    flags = frozenset({"fma", "avx2", "avx512f", "avx512_bf16"})
    zen4 = peaks.CpuDescription(2, 2600.0, flags, "AuthenticAMD", 25)
    value, words = peaks.cpu_peak_flops(zen4, precision)
    assert value == pytest.approx(2 * 2.6e9 * per_cycle) and "on 256-bit pipes" in words
    zen5 = peaks.CpuDescription(2, 2600.0, flags, "AuthenticAMD", 26)
    assert peaks.cpu_peak_flops(zen5, precision)[0] == pytest.approx(2 * value)


@pytest.mark.parametrize(
    ("flags", "isa"),
    [
        ({"fma", "avx2"}, "AVX2"),
        ({"fma", "avx2", "avx512f"}, "AVX-512"),
        ({"fma", "avx2", "avx512f", "avx512_bf16"}, "AVX-512 BF16"),
        ({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "AVX-512 BF16 AMX"),
        ({"sse", "sse2"}, "SSE"),
        ({"fp", "asimd", "sve"}, None),  # Arm: its own vector instructions, not named here
    ],
)
def test_a_rows_cpu_names_its_vector_instructions_where_recorded(flags, isa):
    """Two virtual machines may both call their CPU "AMD EPYC", one with AVX2 and one with
    AVX-512: each row's provenance records which it had, and the pages name it."""
    from bench.provenance import cpu_of

    assert dev.vector_isa(frozenset(flags)) == isa
    named = f"AMD EPYC ({isa})" if isa else "AMD EPYC"
    assert cpu_of({"cpu": "AMD EPYC", "cpu_isa": isa}) == named
    assert cpu_of({"cpu": "AMD EPYC"}) == "AMD EPYC"  # a row from before it was recorded


def test_a_machine_without_proc_cpuinfo_has_no_flags(monkeypatch, tmp_path):
    monkeypatch.setattr(dev, "CPUINFO", tmp_path / "cpuinfo")
    assert dev.cpu_flags() == frozenset()
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nFeatures\t: fp asimd sve\n")  # Arm
    assert dev.cpu_flags() == {"fp", "asimd", "sve"}


@pytest.mark.parametrize("above", [False, True])
def test_a_matmul_above_the_cpus_instruction_set_peak_becomes_the_peak(monkeypatch, above):
    """The peak is the instruction-set figure unless the measured matmul beats it (the cores
    run above the clock the system reports): then the matmul, saying why."""
    formula, words = peaks.cpu_peak_flops(peaks.describe_cpu(), "fp32")
    achieved = formula * (1.5 if above else 0.5)
    monkeypatch.setattr(peaks, "measured_matmul_flops", lambda *args: (achieved, 64))
    roof = peaks.peak_flops(torch.device("cpu"), "fp32", "this CPU")
    assert roof["achievable_flops_per_s"] == achieved
    assert roof["achievable_source"] == "measured: 64x64 fp32 matmul, best of runs"
    if above:
        assert roof["peak_flops_per_s"] == achieved
        assert roof["peak_source"].startswith("the measured matmul, above")
        assert words in roof["peak_source"]
    else:
        assert (roof["peak_flops_per_s"], roof["peak_source"]) == (formula, words)


@pytest.mark.parametrize(("product_s", "side"), [(1e-4, 2048), (1e-3, 1024), (1.0, 256)])
def test_a_matmul_too_slow_at_full_side_is_measured_at_a_smaller_one(monkeypatch, product_s, side):
    class EveryProductTakes(dev.CpuBackend):  # an injected clock
        def time(self, step):
            return product_s

    monkeypatch.setattr(peaks, "backend_for", lambda device: EveryProductTakes(device, "cpu"))
    # a product at 256 (an eighth of 2048) takes product_s; the side is halved while the n³
    # extrapolation exceeds 10 x 0.01 s, down to the probe's side at the least
    flops, n = peaks.measured_matmul_flops(torch.device("cpu"), "fp32", seconds=0.01)
    assert n == side and flops == 2 * side**3 / product_s


def _compiler_failing(model_or_name, **job):
    raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")


def test_a_compile_failure_is_an_error_that_the_next_run_measures_again(monkeypatch, tmp_path):
    from bench.cli import main
    from bench.schema import FINAL
    from bench.store import Store

    monkeypatch.setattr(bench.stages.speed, "iter_speed", _compiler_failing)
    argv = [
        "speed",
        "--models",
        "lenet",
        "--mode",
        "infer",
        "--batch-sizes",
        "1",
        "--compile",
        "--time-cap",
        "0.01",
        "--store",
        str(tmp_path / "r.sqlite"),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 1
    (row,) = Store(tmp_path / "r.sqlite").rows("speed")
    assert row["note"] == "RuntimeError: InvalidCxxCompiler: No working C++ compiler found"
    assert row["status"] == "error" and row["status"] not in FINAL  # the next run measures it


@pytest.mark.parametrize(
    ("precision", "scaled"), [("fp16", True), ("bf16", False), ("fp32", False)]
)
def test_an_fp16_training_step_scales_its_loss(monkeypatch, precision, scaled):
    calls = []

    class Recording(torch.amp.GradScaler):
        def scale(self, outputs):
            calls.append(self.is_enabled())
            return super().scale(outputs)

    monkeypatch.setattr(torch.amp, "GradScaler", Recording)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3))
    before = [p.detach().clone() for p in model.parameters()]
    step = sp.make_step_factory(model, "train", (1, 8, 8), 3, torch.device("cpu"), precision)(4)
    step()
    assert calls == [scaled]
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_the_roof_is_measured_in_a_child_so_the_stage_holds_no_device_memory(monkeypatch, tmp_path):
    from bench.cli import main
    from bench.store import Store

    def here(*args):
        raise AssertionError("measured in the stage's own process")

    monkeypatch.setattr(peaks, "measured_bandwidth", here)
    monkeypatch.setattr(peaks, "measured_matmul_flops", here)
    argv = [
        "speed",
        "--models",
        "lenet",
        "--mode",
        "infer",
        "--batch-sizes",
        "1",
        "--time-cap",
        "0.01",
        "--store",
        str(tmp_path / "r.sqlite"),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    (roof,) = Store(tmp_path / "r.sqlite").rows("machine")
    assert roof["bandwidth_bytes_per_s"] > 0 and roof["achievable_flops_per_s"] > 0


def test_a_speed_run_with_nothing_left_to_time_measures_no_roof(monkeypatch, tmp_path, capsys):
    from bench.cli import main
    from bench.stages import speed as stage
    from bench.store import Store

    measured, real = [], stage.measure_roof
    monkeypatch.setattr(stage, "measure_roof", lambda *args: measured.append(1) or real(*args))
    argv = [
        "speed",
        "--models",
        "lenet",
        "--mode",
        "infer",
        "--batch-sizes",
        "1",
        "--time-cap",
        "0.01",
        "--store",
        str(tmp_path / "r.sqlite"),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0 and main(argv) == 0
    assert measured == [1]  # by the first run only, which timed the point
    assert "speed: every point is in" in capsys.readouterr().out
    assert len(Store(tmp_path / "r.sqlite").rows("machine")) == 1


def test_a_matmul_timed_beside_convolutions_runs_in_their_math(monkeypatch):
    """cuDNN's fp32 convolutions run in TF32 by default on a GPU, cuBLAS's matrix products do
    not: the measured matmul of the roof and chapter 7's 1x1 conv as a matmul take the
    convolutions' math while they are timed, and give the matmul's back after."""
    matmul = torch.backends.cuda.matmul
    saved, matmul.allow_tf32 = matmul.allow_tf32, False  # a proxy monkeypatch cannot restore
    try:
        for convs in (True, False):
            monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", convs)
            with dev.matmul_as_convs() as tf32:
                assert tf32 is convs and matmul.allow_tf32 is convs
            assert matmul.allow_tf32 is False
    finally:
        matmul.allow_tf32 = saved


def test_a_primitive_timed_on_the_cpu_records_no_tf32():
    from bench.layers import conv1x1_ways, timed_row

    row = timed_row(conv1x1_ways, "matmul", seconds=0.01)
    assert row["tf32"] is False and row["method"] == "matmul"
