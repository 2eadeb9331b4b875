"""Child processes: what a child sent before it hung or died is kept, and every way it can end
becomes a status and a note."""

import time

from bench.isolation import (
    Done,
    Exited,
    Failed,
    Lost,
    Row,
    TimedOut,
    ending,
    run_isolated,
    stream_rows,
)
from bench.provenance import environment


def _sleepy_child(send, seconds):
    send.send(Row({"batch_size": 1}))
    time.sleep(seconds)
    send.send("done")


def _crashing_child(send):
    send.send(Row({"batch_size": 1}))
    raise SystemExit(3)


def _rows_then_error():
    yield {"batch_size": 1}
    raise RuntimeError("CUDA out of memory\nmore lines")


def test_a_child_that_times_out_keeps_what_it_sent():
    messages = list(run_isolated(_sleepy_child, (60,), timeout_s=8))
    assert messages == [Row({"batch_size": 1}), TimedOut(8)]


def test_a_crash_is_reported_with_its_exit_code():
    messages = list(run_isolated(_crashing_child, (), timeout_s=60))
    assert messages == [Row({"batch_size": 1}), Exited(3)]


def test_an_exception_in_the_job_ends_the_stream_with_its_first_line():
    row, failed = run_isolated(stream_rows, (_rows_then_error, {}), timeout_s=60)
    assert failed == Failed("RuntimeError: CUDA out of memory")
    here = environment()  # where it ran (the code's state may change while the suite runs)
    assert row.value == {"batch_size": 1}
    assert {k: row.origin[k] for k in ("host", "device", "cpu")} == {
        k: here[k] for k in ("host", "device", "cpu")
    }


def test_every_ending_becomes_a_status_and_a_note():
    assert ending(Failed("ValueError: x")) == ("error", "ValueError: x")
    assert ending(TimedOut(30.0)) == ("timeout", "no result within 30 s")
    assert ending(Exited(-9)) == ("error", "the child process exited with code -9")
    assert ending(Lost(3, "WorkerCrashedError")) == (
        "error",
        "its worker was lost on each of 3 tries: WorkerCrashedError",
    )


def _one_row(value):
    return {"value": value}


def test_a_job_that_returns_its_row_sends_it_then_done():
    row, done = run_isolated(stream_rows, (_one_row, {"value": 7}), timeout_s=60)
    assert row.value == {"value": 7} and done == Done()


def test_the_local_executor_runs_jobs_that_time_nothing_side_by_side():
    from bench.executors import Job, Local

    jobs = [Job(_one_row, {"value": v}, 60, exclusive=False) for v in range(3)]
    seen = list(Local(workers=2).run(jobs))
    rows = sorted((i, m.value["value"]) for i, m in seen if isinstance(m, Row))
    assert rows == [(0, 0), (1, 1), (2, 2)]
    assert sorted(i for i, m in seen if isinstance(m, Done)) == [0, 1, 2]  # each ends once


def test_a_job_for_ray_names_its_paths_from_the_root(tmp_path, monkeypatch):
    from pathlib import Path

    from bench.executors import Job, absolute

    monkeypatch.chdir(tmp_path)
    job = Job(_one_row, {"out": Path("runs") / "checkpoints", "value": 3, "data": None}, 60)
    sent = absolute(job)
    assert sent.kwargs == {
        "out": tmp_path.resolve() / "runs" / "checkpoints",
        "value": 3,
        "data": None,
    }
    assert (sent.produce, sent.timeout, sent.exclusive) == (_one_row, 60, True)
