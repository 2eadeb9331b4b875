"""The GPU paths on a real GPU: CUDA events and the allocator's peak, out-of-memory errors as
CUDA raises them, speed sweeps in each setup the book plan times, the roof under the datasheet's
peak, chapter 7's primitives checked and timed there, random state across a checkpoint,
training (both pipelines, and the GPU fast recipe with its CUDA graphs) and onnxruntime's
placement. Skipped on a machine without CUDA, as CI is; a GPU machine runs them with the rest of
the suite, or alone: `pytest tests/test_gpu.py`."""

import math

import pytest
import torch

from bench import device as dev
from bench import peaks
from bench import timing as sp
from bench.schema import ALLOCATED, Status

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
GPU = torch.device("cuda")


@pytest.fixture(scope="module")
def fashion():
    from bench import data

    return data.load()


def test_the_allocator_peak_is_what_a_step_allocates():
    backend = dev.backend_for(GPU)
    backend.reset_peak()
    block = torch.empty(16 * 2**20, device=GPU)  # 64 MiB, a whole number of allocator blocks
    assert backend.peak_bytes() == 64 * 2**20 and backend.memory_kind == ALLOCATED
    assert 0 < backend.time(lambda: block.mul_(2)) < math.inf  # CUDA events read back
    torch.empty(32 * 2**20, device=GPU)  # 128 MiB, freed at once: only the peak saw it
    assert backend.peak_bytes() == (64 + 128) * 2**20
    backend.restart_peak()  # what is still in use (the 64 MiB block) stays counted
    assert backend.peak_bytes() == 64 * 2**20


def test_out_of_memory_as_cuda_raises_it_is_recognised_and_ends_a_sweep():
    with pytest.raises(Exception) as caught:
        torch.empty(2**50, device=GPU)  # 4 PiB
    assert dev.is_out_of_memory(caught.value)

    def make_step(batch):
        return lambda: torch.empty(batch * 2**50, device=GPU)

    points = list(sp.sweep(make_step, [1, 2], dev.backend_for(GPU), cap_s=0.01))
    assert [p.status for p in points] == [Status.OOM, Status.SKIPPED]


@pytest.mark.parametrize(
    ("precision", "channels_last", "compile"),
    [("fp32", False, False), ("bf16", True, False), ("fp32", False, True)],
)
def test_a_speed_sweep_in_each_setup_of_the_book_plan(precision, channels_last, compile):
    rows = list(
        sp.iter_speed(
            "lenet",
            batch_sizes=(1, 8),
            device="cuda",
            precision=precision,
            channels_last=channels_last,
            compile=compile,
            time_cap_s=0.05,
        )
    )
    assert [(r["mode"], r["batch_size"]) for r in rows] == [
        ("infer", 1),
        ("infer", 8),
        ("train", 1),
        ("train", 8),
    ]
    for r in rows:
        assert (r["status"], r["device"], r["memory_kind"]) == (Status.OK, "cuda", ALLOCATED)
        assert r["peak_bytes"] > 0 and r["cudnn_benchmark"] and r["n"] >= 1
        if r["peak_source"].startswith("datasheet"):
            assert 0 < r["mfu"] < 1
        else:  # a GPU the datasheet table lacks: no utilization rather than a wrong one
            assert math.isnan(r["mfu"])
    assert not torch.backends.cudnn.benchmark  # put back as it was


def test_the_measured_matmul_stays_under_the_datasheet_peak():
    roof = peaks.machine_roof("cuda", "bf16")
    assert roof["achievable_source"] == "measured: 8192x8192 bf16 matmul, best of runs"
    assert roof["bandwidth_bytes_per_s"] > 0
    if math.isfinite(roof["peak_flops_per_s"]):
        assert 0 < roof["achievable_flops_per_s"] < roof["peak_flops_per_s"]


def test_chapter_7s_primitives_agree_and_are_timed_on_the_gpu():
    from bench.layers import cases

    for exercise, config, measure in cases(0.01, GPU):
        if "device" in config:  # every timed case, each way checked against the first in fp32
            row = measure()
            assert row["device"] == "cuda" and config["device"] == row["device_name"], exercise


def test_a_checkpoint_restores_the_gpus_random_state():
    from bench.training import loop

    torch.cuda.init()  # seeding alone is lazy: run first, the test found no CUDA state to save
    torch.cuda.manual_seed_all(1)
    saved = loop._rng_state()
    assert "cuda_rng" in saved  # CUDA is in use by now
    first = torch.rand(4, device=GPU)
    loop._restore_rng(saved)
    assert torch.equal(torch.rand(4, device=GPU), first)


@pytest.mark.parametrize("pipeline", ["ours", "torchvision"])
def test_a_book_recipe_trains_on_the_gpu(fashion, pipeline):
    from bench.recipes import PRESETS, Run
    from bench.training.loop import train

    summary, history = train(Run("lenet"), PRESETS["smoke"], fashion, GPU, pipeline=pipeline)
    assert summary["status"] == Status.OK and len(history) == PRESETS["smoke"].epochs
    assert summary["device_name"] == torch.cuda.get_device_name(GPU)
    assert summary["memory_kind"] == ALLOCATED and summary["peak_bytes"] > 0


def test_the_gpu_fast_recipe_compiles_its_graphs_and_trains(fashion):
    from bench.recipes import FAST_GPU_RUN, PRESETS
    from bench.training.loop import train

    summary, history = train(FAST_GPU_RUN, PRESETS["smoke"], fashion, GPU)
    assert summary["status"] == Status.OK and len(history) == 1
    assert summary["autocast"] == "bf16" and summary["compile_s"] > 0
    assert summary["test_acc"] == history[-1]["test_acc"]  # the last evaluation's
    assert math.isfinite(history[0]["train_loss"])


def test_onnxruntime_on_a_gpu_machine_runs_where_its_provider_is(tmp_path):
    from bench.onnx_runtime import iter_onnx, placement

    device, provider = placement(GPU)
    (row,) = iter_onnx("lenet", onnx_dir=tmp_path, batch_sizes=(1,), device="cuda", time_cap_s=0.05)
    assert row["status"] == Status.OK and row["provider"] == provider
    assert device.type == ("cuda" if provider == "CUDAExecutionProvider" else "cpu")
