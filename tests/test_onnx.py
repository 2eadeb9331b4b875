"""ONNX export, parity and provider recording on a small network."""

import onnxruntime as ort
import pytest
import torch

import bench.stages.onnx
from bench import onnx_runtime
from bench.cli import main
from bench.stages import common
from bench.store import Store


@pytest.fixture(scope="module")
def lenet_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    rows = list(
        onnx_runtime.iter_onnx(
            "lenet", batch_sizes=(1, 4), device="cpu", time_cap_s=0.05, onnx_dir=out
        )
    )
    return rows, out


def test_export_is_checked_and_matches_pytorch(lenet_rows):
    rows, out = lenet_rows
    assert [r["batch_size"] for r in rows] == [1, 4]
    first = rows[0]
    assert (
        first["checker"] == "passed"
        and (out / "lenet_28px_c1.onnx").stat().st_size == first["onnx_bytes"]
    )
    assert first["max_abs_diff"] <= 1e-4 and first["parity_ok"]


def test_the_provider_that_ran_is_recorded(lenet_rows):
    rows, _ = lenet_rows
    # onnxruntime-gpu lists CUDA here too; on a CPU request the CPU provider must be the one used
    assert {r["provider"] for r in rows} == {"CPUExecutionProvider"}
    assert {r["onnxruntime"] for r in rows} == {ort.__version__}  # and which onnxruntime it was


def test_both_runtimes_are_timed_at_every_batch_size(lenet_rows):
    rows, _ = lenet_rows
    for row in rows:
        assert row["status"] == "ok" and row["torch_status"] == "ok" and row["n"] >= 3
        for cv in (row["cv"], row["torch_cv"]):  # each runtime's spread, over 3 steps or more
            assert cv > 0
        assert row["ort_over_torch"] == pytest.approx(
            row["images_per_s"] / row["torch_images_per_s"]
        )


def test_dynamic_batch_axis(lenet_rows, tmp_path):
    _, out = lenet_rows
    sess = onnx_runtime.session(out / "lenet_28px_c1.onnx", onnx_runtime.CPU)
    for batch in (1, 3, 17):
        assert sess.run(None, {"images": torch.randn(batch, 1, 28, 28).numpy()})[0].shape == (
            batch,
            10,
        )


def test_a_provider_that_falls_back_is_an_error(lenet_rows):
    _, out = lenet_rows
    # onnxruntime-gpu lists CUDA's provider on this machine, which has no GPU: it cannot start
    with pytest.raises(RuntimeError, match="could not start CUDAExecutionProvider; it fell back"):
        onnx_runtime.session(out / "lenet_28px_c1.onnx", onnx_runtime.CUDA)


@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        (
            "cuda",
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ("cuda", "CUDAExecutionProvider"),
        ),
        ("cuda", ["CPUExecutionProvider"], ("cpu", "CPUExecutionProvider")),  # a CPU-only build
        ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ("cpu", "CPUExecutionProvider")),
    ],
)
def test_onnxruntime_runs_where_its_provider_is(monkeypatch, device, available, expected):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: available)
    where, provider = onnx_runtime.placement(torch.device(device))
    assert (where.type, provider) == expected


def test_parity_is_checked_with_tf32_off():
    class Probe(torch.nn.Module):  # what a forward pass sees of the TF32 switches
        seen: list = []

        def forward(self, x):
            self.seen.append(
                (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            )
            return x

    class Session:
        def run(self, outputs, feeds):
            return [feeds["images"]]

    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        assert onnx_runtime.max_abs_difference(Probe(), Session(), torch.ones(2, 3)) == 0
        assert Probe.seen == [(False, False)]
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _rows_failing_all_but_lenet(model_or_name, **job):
    if model_or_name != "lenet":
        raise RuntimeError("exporter cannot handle this network")
    yield from onnx_runtime.iter_onnx(model_or_name, **job)


def test_a_failed_export_is_recorded_and_the_others_go_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench.stages.onnx, "iter_onnx", _rows_failing_all_but_lenet)
    argv = [
        "onnx",
        "--models",
        "[al]*net",
        "--batch-sizes",
        "1,2",
        "--time-cap",
        "0.05",
        "--store",
        str(tmp_path / "r.sqlite"),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 1  # some networks failed
    rows = {(r["model"], r["batch_size"]): r for r in Store(tmp_path / "r.sqlite").rows("onnx")}
    assert sorted(rows) == [
        ("alexnet", 1),
        ("alexnet", 2),
        ("anynet", 1),
        ("anynet", 2),
        ("lenet", 1),
        ("lenet", 2),
    ]
    assert rows[("alexnet", 2)]["status"] == "error"
    assert rows[("alexnet", 2)]["note"] == "RuntimeError: exporter cannot handle this network"
    assert rows[("lenet", 1)]["status"] == "ok" and rows[("lenet", 1)]["parity_ok"]
    text = (tmp_path / "onnx" / "onnx.md").read_text()
    assert "| lenet | 1 | ok | CPUExecutionProvider |" in text
    assert "| alexnet | 1 | error |" in text


def test_without_cudas_provider_a_cuda_request_runs_both_runtimes_on_the_cpu(
    tmp_path, monkeypatch, capsys
):
    import onnxruntime

    import bench.device

    cpu = bench.device.resolve_device("cpu")
    monkeypatch.setattr(common, "resolve_device", lambda name="auto": torch.device("cuda"))
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    argv = [
        "onnx",
        "--models",
        "lenet",
        "--device",
        "cuda",
        "--batch-sizes",
        "1",
        "--time-cap",
        "0.05",
        "--store",
        str(tmp_path / "r.sqlite"),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    assert "this onnxruntime has no CUDA provider (a CPU-only build)" in capsys.readouterr().out
    (row,) = Store(tmp_path / "r.sqlite").rows("onnx")
    assert row["provider"] == row["config"]["provider"] == "CPUExecutionProvider"
    assert row["device_name"] == bench.device.backend_for(cpu).name


def test_without_a_folder_the_export_is_removed_once_timed(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the scratch folder goes
    (row,) = onnx_runtime.iter_onnx("lenet", batch_sizes=(1,), device="cpu", time_cap_s=0.01)
    assert row["onnx_bytes"] > 0 and row["status"] == "ok"
    assert list(tmp_path.iterdir()) == []  # a large network's export is hundreds of MB
