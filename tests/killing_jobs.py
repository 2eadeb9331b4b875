"""Jobs for tests/test_ray.py and test_interrupt.py (most of them get killed): in a module of
their own, so that the processes running them (Ray workers among them) import little more."""

import os
import signal
import time
from pathlib import Path

from bench.schema import ROWS


def onnx_row(name, batch):
    row = dict.fromkeys(ROWS["onnx"].__annotations__)
    return row | {
        "model": name,
        "batch_size": batch,
        "status": "ok",
        "note": "",
        "images_per_s": 1000.0 * batch,
    }


def sweep_that_kills_its_worker(model_or_name, batch_sizes, marker, every_try):
    """A sweep whose child kills the Ray worker running it after its first row (given a second
    to pass it on): on the first try only, or on every try."""
    for batch in batch_sizes:
        yield onnx_row(model_or_name, batch)
        if every_try or not os.path.exists(marker):
            Path(marker).touch()
            time.sleep(1)
            os.kill(_ray_worker(), signal.SIGKILL)  # mid-job
            time.sleep(60)  # this child ends with its parent, before this sleep does


def _ray_worker():
    """The Ray worker that started this job's child: the parent of the fork server it came
    from (bench.isolation.children)."""
    server = os.getppid()
    return int(Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()[1])


def sleep_after_saying_who(pid_file):
    """A job that writes its process id, then sleeps far beyond any test."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)
    yield {}


def say_niceness():
    """A job that says the niceness it runs at."""
    yield {"niceness": os.nice(0)}


class SlowToArrive:
    """A job's argument whose unpickling in the child, before any code of ours runs there,
    writes the child's process id and waits until the file ``go`` exists."""

    def __init__(self, pid_file, go):
        self.pid_file, self.go = pid_file, go

    def __reduce__(self):
        return _arrive, (self.pid_file, self.go)


def _arrive(pid_file, go):
    Path(pid_file).write_text(str(os.getpid()))
    while not os.path.exists(go):
        time.sleep(0.05)


def take_nothing(argument):
    """A job that yields one empty row, whatever its argument."""
    yield {}
