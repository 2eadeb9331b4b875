"""ONNX export (torch.onnx's dynamo exporter, dynamic batch axis), onnx.checker, numerical parity
with PyTorch, and onnxruntime throughput beside PyTorch's at the same batch sizes.

onnxruntime-gpu lists CUDA among its providers even on a machine without a GPU and falls back
to the CPU without a word, so the provider is chosen explicitly, a fallback is an error, and the
provider that ran is recorded. An onnxruntime without CUDA's provider (a CPU-only build) on a GPU
machine runs on the CPU, and PyTorch beside it too, so that the ratio compares like with like.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import archs
from bench.device import Backend, CpuBackend, backend_for, full_fp32, resolve_device
from bench.timing import make_step_factory, sweep

PARITY_TOLERANCE = 1e-4  # max abs difference of fp32 logits
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def export(model: nn.Module, example: torch.Tensor, path: Path) -> float:
    """Export ``model`` (eval mode) with a dynamic batch axis; check the file; return seconds."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its steps
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            dynamo=True,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
        )
    seconds = time.perf_counter() - start
    onnx.checker.check_model(str(path))
    return seconds


def placement(device: torch.device) -> tuple[torch.device, str]:
    """Where onnxruntime runs, and its provider: on the GPU with CUDA's provider where this
    onnxruntime has it, else on the CPU with the CPU's."""
    import onnxruntime as ort

    if device.type == "cuda" and CUDA in ort.get_available_providers():
        return device, CUDA
    return torch.device("cpu"), CPU


def session(path: Path, provider: str, tf32: bool = True) -> Any:
    """An onnxruntime session on ``provider`` alone (an error where onnxruntime falls back to
    another); ``tf32`` False: CUDA's convolutions and matrix products in full fp32."""
    import onnxruntime as ort

    if provider == CUDA:
        ort.preload_dlls()  # use the CUDA and cuDNN libraries that torch's wheels bring
        providers: list[Any] = [(CUDA, {"use_tf32": str(int(tf32))})]
    else:
        providers = [CPU]
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as PyTorch uses
    sess = ort.InferenceSession(str(path), options, providers=providers)
    if sess.get_providers()[0] != provider:
        raise RuntimeError(
            f"onnxruntime could not start {provider}; it fell back to {sess.get_providers()[0]}"
        )
    return sess


def ort_step_factory(sess: Any, input_shape: tuple[int, ...], device: torch.device) -> Callable:
    """``factory(batch)``: one onnxruntime inference of a batch. On CUDA, inputs and outputs are
    bound to the device (IOBinding), so no host copy happens inside the timed step."""
    import onnxruntime as ort

    on_gpu = sess.get_providers()[0] == CUDA

    def factory(batch: int) -> Callable[[], Any]:
        x = np.random.default_rng(0).standard_normal((batch, *input_shape), dtype=np.float32)
        if not on_gpu:
            return lambda: sess.run(None, {"images": x})
        binding = sess.io_binding()
        binding.bind_ortvalue_input("images", ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
        binding.bind_output("logits", "cuda")
        return lambda: sess.run_with_iobinding(binding)

    return factory


def max_abs_difference(model: nn.Module, sess: Any, example: torch.Tensor) -> float:
    """Largest absolute difference between PyTorch's and onnxruntime's eval-mode outputs,
    PyTorch's computed in full fp32 (TF32 off; ``sess`` should be made with ``tf32`` False)."""
    with torch.inference_mode(), full_fp32():
        expected = model.eval()(example).float().cpu().numpy()
    got = sess.run(None, {"images": example.cpu().numpy()})[0]
    return float(np.abs(got - expected).max())


def iter_onnx(
    model_or_name: str,
    *,
    onnx_dir: Path | None = None,
    batch_sizes: tuple[int, ...] = (1, 8, 32, 128, 512),
    device: str = "auto",
    image_size: int | None = None,
    in_channels: int | None = None,
    time_cap_s: float = 2.0,
    max_step_s: float = 60.0,
) -> Iterator[dict[str, Any]]:
    """Export one registry network, check it, then time onnxruntime and PyTorch inference at
    each batch size; one row per batch size, with the export's facts in every row. The .onnx
    file is written to ``onnx_dir``, or (None) to a temporary folder removed once the sessions
    hold it: a large network's export is hundreds of MB, and no page reads it. Parity is
    checked in full fp32 (TF32 off on both sides); the timings use each runtime's defaults."""
    import onnxruntime as ort

    name = model_or_name
    dev, provider = placement(resolve_device(device))
    size = image_size or archs.spec(name).image_size
    in_channels = in_channels or archs.spec(name).in_channels
    shape = (in_channels, size, size)
    torch.manual_seed(0)
    model = archs.build(name, in_channels=in_channels, image_size=size, device=dev).eval()
    example = torch.randn(2, *shape, device=dev)
    with tempfile.TemporaryDirectory(prefix="cnnbench-onnx-") as scratch:
        path = Path(onnx_dir or scratch) / f"{name.replace(':', '-')}_{size}px_c{in_channels}.onnx"
        export_s = export(model, example, path)
        onnx_bytes = path.stat().st_size
        difference = max_abs_difference(model, session(path, provider, tf32=False), example)
        sess = session(path, provider)  # holds the model: the file is not read again
    facts = {
        "model": name,
        "image_size": size,
        "in_channels": in_channels,
        "export_s": export_s,
        "onnx_bytes": onnx_bytes,
        "checker": "passed",
        "max_abs_diff": difference,
        "parity_ok": difference <= PARITY_TOLERANCE,
        "provider": provider,
        "onnxruntime": ort.__version__,
        "ort_threads": torch.get_num_threads(),
        "device_name": backend_for(dev).name,
        "time_cap_s": time_cap_s,
        "max_step_s": max_step_s,
    }
    ours = dict(
        _points(
            ort_step_factory(sess, shape, dev),
            batch_sizes,
            CpuBackend(dev, "wall"),
            time_cap_s,
            max_step_s,
        )
    )
    torch_factory = make_step_factory(model, "infer", shape, 10, dev)
    theirs = dict(_points(torch_factory, batch_sizes, backend_for(dev), time_cap_s, max_step_s))
    for batch in sorted(batch_sizes):
        ort_point, torch_point = ours[batch], theirs[batch]
        ort_ips = ort_point.stats.get("images_per_s", math.nan)
        torch_ips = torch_point.stats.get("images_per_s", math.nan)
        yield {
            **facts,
            "batch_size": batch,
            "status": ort_point.status,
            "note": ort_point.note,
            **{
                k: ort_point.stats.get(k, math.nan)
                for k in ("n", "median_ms", "p90_ms", "p99_ms", "cv", "images_per_s")
            },
            "torch_images_per_s": torch_ips,
            "torch_cv": torch_point.stats.get("cv", math.nan),
            "torch_status": torch_point.status,
            "ort_over_torch": ort_ips / torch_ips,
        }


def _points(
    factory: Callable, batch_sizes: tuple[int, ...], backend: Backend, cap: float, max_step: float
):
    for point in sweep(factory, list(batch_sizes), backend, cap, max_step_s=max_step):
        yield point.batch_size, point
