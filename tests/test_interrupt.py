"""A run killed anywhere (kill -9 of its process group, mid-stage) and started again ends with each
measurement stored exactly once and no partial page; Ctrl-C ends a run, its children with it, and
says what was kept. (``train`` is killed the same way in test_reports.py.)"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.isolation import alive
from bench.layers import cases
from bench.store import Store

# stage -> (its options, the stage rows a whole run stores, the rows to wait for before the kill)
STAGES = {
    "profile": (
        ["--models", "lenet,bn_lenet,alexnet", "--batch-size", "2", "--workers", "1"],
        3,
        1,
    ),
    "layers": (["--time-cap", "0.05"], len(cases(0.05)), 1),
    "speed": (["--models", "lenet", "--batch-sizes", "2,4,8", "--time-cap", "0.3"], 6, 1),
    "memory": (["--models", "lenet,bn_lenet", "--batch-sizes", "1,2"], 4, 1),
    "onnx": (["--models", "lenet,bn_lenet", "--batch-sizes", "1,2", "--time-cap", "0.2"], 4, 1),
    # the pipeline stores a network's three feeds together (they take turns): killed before
    "pipeline": (["--models", "lenet", "--seconds", "1"], 3, 0),
}


def start(argv, sigint=signal.SIG_DFL):
    """The command in a process group of its own, started with SIGINT's action ``sigint``
    whatever the suite runs with (SIG_IGN: a non-interactive shell's background job, as in
    ``nohup nox -s tests &``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *argv],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )


def wait_for_rows(child, store_path, stage, count=1, deadline_s=300):
    """Until the store exists and holds ``count`` rows of the stage (the run still going)."""
    deadline = time.monotonic() + deadline_s
    while not (store_path.exists() and len(Store(store_path, create=False).rows(stage)) >= count):
        assert time.monotonic() < deadline and child.poll() is None, child.communicate()
        time.sleep(0.1)


@pytest.mark.parametrize("stage", list(STAGES))
def test_killed_mid_stage_then_resumed_stores_each_measurement_once(stage, tmp_path, capsys):
    options, expected, before = STAGES[stage]
    store_path = tmp_path / "results.sqlite"
    argv = [stage, *options, "--store", str(store_path), "--out", str(tmp_path)]
    child = start(argv)
    wait_for_rows(child, store_path, stage, before)
    os.killpg(child.pid, signal.SIGKILL)  # the run and any child of it, mid-stage
    child.communicate()
    first = Store(store_path).rows(stage)
    assert before <= len(first) <= expected
    assert main(argv) == 0  # the killed run's lock does not hold the store
    rows = Store(store_path).rows(stage)
    keys = [(r["model"], sorted(r["config"].items())) for r in rows]
    assert len(rows) == expected and len(set(map(str, keys))) == expected  # each once
    assert all(r["status"] in ("ok", "n/a") for r in rows)
    # what was stored before the kill is kept as it was, not measured again
    dates = {str((r["model"], sorted(r["config"].items()))): r["provenance"]["date"] for r in rows}
    assert all(
        dates[str((r["model"], sorted(r["config"].items())))] == r["provenance"]["date"]
        for r in first
    )
    assert not list(tmp_path.rglob("*.partial")) and not list(tmp_path.glob("*.lock"))


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["terminal", "background"])
def test_ctrl_c_ends_the_run_and_its_children_and_says_what_was_kept(tmp_path, sigint):
    """Started from a terminal, or as a background job that inherits SIGINT ignored (where
    `timeout -s INT` still ends it), the run stops: it does not go on to the next item."""
    store_path = tmp_path / "results.sqlite"
    argv = [
        "train",
        "--preset",
        "smoke",
        "--models",
        "lenet",
        "--experiment",
        "lr_grid",
        "--store",
        str(store_path),
        "--out",
        str(tmp_path),
    ]
    child = start(argv, sigint)
    wait_for_rows(child, store_path, "train")
    os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert err.count("\n") == 1 and "Traceback" not in err, err  # one line, children quiet
    assert err.startswith("python -m bench: interrupted; ") and f"stored in {store_path}" in err
    assert not list(tmp_path.glob("*.lock"))
    deadline = time.monotonic() + 30  # multiprocessing's resource tracker leaves on its own
    with pytest.raises(ProcessLookupError):  # no process of the run's group is left
        while time.monotonic() < deadline:
            os.killpg(child.pid, 0)
            time.sleep(0.1)


def run_jobs(code, **popen):
    """A Python process running ``code`` after importing Job and Local, with the test jobs of
    killing_jobs importable."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    code = f"from bench.executors import Job, Local\n{code}"
    return subprocess.Popen([sys.executable, "-c", code], env=env, **popen)


def written_pid(pid_file, run):
    """The process id a job of ``run`` writes to ``pid_file``, once it has."""
    deadline = time.monotonic() + 300
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and run.poll() is None, "the job never started"
        time.sleep(0.1)
    return int(pid_file.read_text())


def test_a_child_interrupted_before_our_code_runs_there_goes_on_quietly(tmp_path):
    """A SIGINT that reaches a child while it unpickles its job, before end_with says how it
    ends, is ignored there: it does not end the child with exit code 1 (an error)."""
    pid_file, go = tmp_path / "child.pid", tmp_path / "go"
    run = run_jobs(
        "from killing_jobs import SlowToArrive, take_nothing\n"
        f"arrival = SlowToArrive({str(pid_file)!r}, {str(go)!r})\n"
        "print([type(m).__name__ for _, m in "
        "Local().run([Job(take_nothing, {'argument': arrival}, 300)])])\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.kill(written_pid(pid_file, run), signal.SIGINT)  # the child alone, as it unpickles
    go.touch()
    out, err = run.communicate(timeout=300)
    assert (run.returncode, out, err) == (0, "['Row', 'Done']\n", "")


def test_a_job_ends_when_the_process_that_started_it_is_killed(tmp_path):
    """Children fork from a fork server that outlives the run while they live: each watches the
    run itself, so that a run killed alone (not its group) leaves nothing measuring."""
    pid_file = tmp_path / "child.pid"
    run = run_jobs(
        "from killing_jobs import sleep_after_saying_who\n"
        "list(Local().run([Job(sleep_after_saying_who, "
        f"{{'pid_file': {str(pid_file)!r}}}, 900)]))\n"
    )
    job = written_pid(pid_file, run)
    run.kill()  # the run alone, as a lost Ray worker is
    run.wait()
    deadline = time.monotonic() + 120
    while alive(job):
        assert time.monotonic() < deadline, "the job outlived the run that started it"
        time.sleep(0.2)
