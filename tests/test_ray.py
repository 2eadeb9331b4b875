"""``--executor ray`` on a local Ray instance of this machine's two cores: the smoke preset
stores the rows the local executor stores, with the same counted figures; a Ray worker killed
mid-job costs a retry, and every row is stored once; jobs run at the usual niceness."""

import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")

from killing_jobs import say_niceness, sweep_that_kills_its_worker  # noqa: E402

from bench.cli import main  # noqa: E402
from bench.executors import RETRIES, Job, Ray, sweep_into  # noqa: E402
from bench.store import Store  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """Ray on this machine, as ``--executor ray`` starts it without ``--address``; its workers
    import this module (the test jobs below) from the tests folder."""
    tests = str(Path(__file__).parent)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": tests}},
    )
    yield
    ray.shutdown()


def test_a_killed_worker_costs_a_retry_and_every_row_is_stored_once(local_ray, tmp_path):
    store = Store(tmp_path / "r.sqlite")
    sweeps = [
        (
            Job(
                sweep_that_kills_its_worker,
                dict(
                    model_or_name=name,
                    batch_sizes=(1, 2, 4),
                    marker=str(tmp_path / name),
                    every_try=every,
                ),
                timeout=900,
                exclusive=False,
            ),
            lambda batch: {"batch_size": batch},
            name,
        )  # a bound for a loaded machine
        for name, every in (("once", False), ("always", True))
    ]
    seen = []
    sweep_into(store, "onnx", Ray(None, gpu=False), sweeps, lambda *point: seen.append(point))
    # the job killed once: each of its rows once, from the try that got it first
    assert sorted(
        (label, batch, status) for label, batch, status, _ in seen if label == "once"
    ) == [("once", 1, "ok"), ("once", 2, "ok"), ("once", 4, "ok")]
    rows = {(r["model"], r["batch_size"]): r for r in store.rows("onnx")}
    assert sorted(k for k in rows if k[0] == "once") == [("once", 1), ("once", 2), ("once", 4)]
    assert all(rows["once", b]["status"] == "ok" for b in (1, 2, 4))
    assert rows["once", 1]["provenance"]["host"] == os.uname().nodename  # where it was measured
    # the job killed on every try: an error for each row it could not pass on, saying why
    lost = f"its worker was lost on each of {RETRIES + 1} tries: "
    assert all(
        rows["always", b]["status"] == "error" and rows["always", b]["note"].startswith(lost)
        for b in (2, 4)
    )
    assert rows["always", 1]["status"] == "ok" or rows["always", 1]["note"].startswith(lost)
    assert len(store.rows("onnx")) == 6


def test_a_job_runs_at_the_usual_niceness_not_at_ray_workers_15(local_ray):
    """Ray nices its workers to 15; a job timed there would yield its cores to every other
    process of the node."""
    messages = [m for _, m in Ray(None, gpu=False).run([Job(say_niceness, {}, timeout=900)])]
    assert messages[0].value == {"niceness": os.nice(0)}


COUNTED = {  # stage -> the fields both executors must store alike (counted, not timed)
    "profile": None,  # every field
    "peers": None,
    "layers": (
        "fwd_macs_formula",
        "fwd_macs_counted",
        "bwd_macs_counted",
        "saved_bytes_counted",
        "fwd_flops_counted",
        "out_side",
    ),
    "speed": ("flops_per_image", "status"),
    "onnx": ("status", "device_name"),
    "pipeline": ("feed", "device_name"),
    "train": ("status", "epochs", "batch_size", "device_name"),
}


def _counted(row, fields):
    return {f: v for f, v in row.items() if f != "provenance" and (fields is None or f in fields)}


def test_the_smoke_preset_through_ray_stores_what_the_local_executor_stores(
    local_ray, smoke_run, tmp_path
):
    out = tmp_path / "ray"
    argv = [
        "all",
        "--preset",
        "smoke",
        "--executor",
        "ray",
        "--store",
        str(out / "r.sqlite"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    local, remote = Store(smoke_run / "results.sqlite"), Store(out / "r.sqlite")
    for stage, fields in COUNTED.items():
        mine = {(r["model"], str(sorted(r["config"].items()))): r for r in local.rows(stage)}
        theirs = {(r["model"], str(sorted(r["config"].items()))): r for r in remote.rows(stage)}
        assert mine.keys() == theirs.keys() and mine, stage
        for key, row in mine.items():
            assert _counted(row, fields) == _counted(theirs[key], fields), (stage, key)
    (run,) = remote.rows("run")
    assert set(run["stages"].values()) == {"ok"}
