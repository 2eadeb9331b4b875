"""Where a stage's jobs run. A job is a function (it yields rows, or returns one) and its
arguments, run in a process of its own (``bench.isolation``); the driver, the ``python -m
bench`` process, reads what each job sends and alone writes the store, whichever executor runs
the jobs:

- ``Local``: a child process per job on this machine, one at a time; jobs that time nothing
  (counting FLOPs) ``workers`` at a time, in a pool of worker processes.
- ``Ray``: each job a Ray task on this machine or a cluster, as many at once as the resources
  allow. A job that times things takes a whole device: one GPU, or on a CPU every core of a
  node; a job that times nothing takes one CPU. A job whose worker is lost runs again, at most
  ``RETRIES`` more times.

Each job's messages end with one of ``Done``, ``Failed``, ``TimedOut``, ``Exited`` or ``Lost``.
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.isolation import (
    Done,
    Failed,
    Lost,
    Message,
    Row,
    children,
    end_with,
    ending,
    rows_of,
    run_isolated,
    stream_rows,
)
from bench.schema import FAILED, Status

RETRIES = 2  # a job whose Ray worker dies runs at most this many more times
# Ray starts its workers at niceness 15, below every other process of their node: a job that
# times things would yield its cores to whatever else runs there. Ours run at the usual 0.
RAY_WORKER_ENV = {"env_vars": {"RAY_worker_niceness": "0"}}


@dataclass(frozen=True)
class Job:
    """``produce(**kwargs)`` (it yields rows, or returns one), run in a child process that is
    killed after ``timeout`` s; ``exclusive``: it times things, so no other job may share its
    device."""

    produce: Callable[..., Any]
    kwargs: dict[str, Any]
    timeout: float
    exclusive: bool = True


def isolated(job: Job) -> Iterator[Message]:
    """The job's messages, from a child process of this one."""
    yield from run_isolated(stream_rows, (job.produce, job.kwargs), job.timeout)


class Executor(ABC):
    side_by_side = False  # whether jobs that time things may run at once (on several devices)

    @abstractmethod
    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Message]]:
        """Each job's messages as they arrive, with the job's index in ``jobs``."""


class Local(Executor):
    """Child processes on this machine: one per job, one at a time; jobs that time nothing
    ``workers`` at a time, in a pool of worker processes (no timeout: they only count)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Message]]:
        if self.workers > 1 and not any(job.exclusive for job in jobs):
            yield from self._pooled(jobs)
            return
        for index, job in enumerate(jobs):
            for message in isolated(job):
                yield index, message

    def _pooled(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Message]]:
        with ProcessPoolExecutor(self.workers, children(), end_with, (os.getpid(),)) as pool:
            running = {pool.submit(_rows, job): index for index, job in enumerate(jobs)}
            for done in as_completed(running):
                index = running[done]
                try:
                    rows = done.result()
                except Exception as error:  # the job's own, or its worker's death
                    yield index, Failed(f"{type(error).__name__}: {error}".splitlines()[0])
                    continue
                for row in rows:
                    yield index, row
                yield index, Done()


def _rows(job: Job) -> list[Row]:
    """In a pool worker: every row of the job."""
    return list(rows_of(job.produce, job.kwargs))


class Ray(Executor):
    """Ray tasks: started in this process (``address`` None) or on the cluster at
    ``address`` (``auto``, ``ray://host:port``); ``gpu``: jobs that time things take a GPU."""

    side_by_side = True

    def __init__(self, address: str | None, gpu: bool) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        self.ray, self.gpu = ray, gpu
        # retried here, where the store is
        self.task = ray.remote(max_retries=0, runtime_env=RAY_WORKER_ENV)(isolated)
        if gpu and not ray.cluster_resources().get("GPU"):
            raise RuntimeError("the Ray cluster has no GPU")

    def resources(self, job: Job) -> dict[str, float]:
        if not job.exclusive:
            return {"num_cpus": 1}
        if self.gpu:
            return {"num_cpus": 1, "num_gpus": 1}
        # every core of the largest node: nothing runs beside a job that times a CPU
        nodes = [n["Resources"].get("CPU", 0) for n in self.ray.nodes() if n["Alive"]]
        return {"num_cpus": max(nodes)}

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Message]]:
        from ray.exceptions import RayError

        tries, running = [0] * len(jobs), {}  # running: task (a generator of refs) -> index
        sent, repeats = [0] * len(jobs), [0] * len(jobs)  # rows yielded; rows a retry repeats

        def submit(index: int) -> None:
            tries[index] += 1
            repeats[index] = sent[index]  # a retry's first rows were yielded by a try before
            job = absolute(jobs[index])
            running[self.task.options(**self.resources(job)).remote(job)] = index

        for index in range(len(jobs)):
            submit(index)
        try:
            while running:
                (task,), _ = self.ray.wait(list(running), num_returns=1)
                index = running[task]
                try:
                    message = self.ray.get(next(task))
                except StopIteration:  # the task is over: its last message came before
                    del running[task]
                    continue
                except RayError as error:  # the worker or its node died
                    del running[task]
                    if tries[index] <= RETRIES:
                        submit(index)
                        continue
                    message = Lost(tries[index], str(error).strip().splitlines()[0])
                if isinstance(message, Row) and repeats[index]:
                    repeats[index] -= 1
                    continue
                sent[index] += isinstance(message, Row)
                yield index, message
        finally:  # interrupted: what is still running is ended
            for task in running:
                self.ray.cancel(task, force=True)


def absolute(job: Job) -> Job:
    """The job with its paths (store folder, checkpoints, data) made absolute: a Ray worker
    does not share the driver's working directory."""
    kwargs = {k: v.resolve() if isinstance(v, Path) else v for k, v in job.kwargs.items()}
    return dataclasses.replace(job, kwargs=kwargs)


def images_per_s(row: dict[str, Any]) -> str:
    """What a timed sweep prints of a point it measured."""
    return f"{row['images_per_s']:,.1f} images/s"


def dispatch(
    executor: Executor,
    jobs: Sequence[Job],
    on_row: Callable[[int, Row], None],
    on_end: Callable[[int, Status, str], None] = lambda index, status, note: None,
) -> int:
    """Run ``jobs`` and hand on what they send: ``on_row(index, row)`` for each row as it
    arrives, and ``on_end(index, status, note)`` once each job is over, with ``Status.OK``
    and "" where it finished, else how it ended (``bench.isolation.ending``). Returns how many
    jobs ended in failure. Every stage reads its jobs through this one loop."""
    failures = 0
    for index, message in executor.run(jobs):
        if isinstance(message, Row):
            on_row(index, message)
            continue
        status, note = (Status.OK, "") if isinstance(message, Done) else ending(message)
        failures += status in FAILED
        on_end(index, status, note)
    return failures


def sweep_into(
    store: Any,
    stage: str,
    executor: Executor,
    sweeps: Sequence[tuple[Job, Callable[[int], dict], str]],
    say: Callable[[str, int, Status, dict[str, Any]], None],
) -> None:
    """Run each network's batch-size sweep (a job whose kwargs name ``model_or_name`` and
    ``batch_sizes``); store each row as it arrives, keyed by the sweep's ``config(batch
    size)``; give every batch size a job did not report a row saying why. Each point is then
    said: ``say(the sweep's label, batch size, status, its row)``."""
    pending = [list(job.kwargs["batch_sizes"]) for job, *_ in sweeps]

    def stored(index: int, message: Row) -> None:
        job, config, label = sweeps[index]
        row = message.value
        pending[index].remove(row["batch_size"])
        status = Status(row["status"])
        name = job.kwargs["model_or_name"]
        store.put(stage, name, config(row["batch_size"]), row, status=status, origin=message.origin)
        say(label, row["batch_size"], status, row)

    def ended(index: int, status: Status, note: str) -> None:
        job, config, label = sweeps[index]
        name = job.kwargs["model_or_name"]
        for batch in pending[index] if status in FAILED else ():
            row = {"model": name, "batch_size": batch, "note": note}
            store.put(stage, name, config(batch), row, status=status)
            say(label, batch, status, row)

    dispatch(executor, [job for job, *_ in sweeps], stored, ended)
