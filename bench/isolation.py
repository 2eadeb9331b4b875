"""Child processes for whatever can crash, run out of memory or hang: a stage runs each job in a
spawned child with a timeout and reads typed messages from it, so that one job's failure loses
nothing already measured.

A child sends ``Row``s, then ends by itself; the parent sees ``Failed`` (an exception in the
child), ``TimedOut`` (the child outlived its time and was killed) or ``Exited`` (it died without
saying it was done). ``ending`` turns the last three into the status and note a stage stores.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from bench.schema import Status


@dataclass(frozen=True)
class Row:
    """One result the child measured."""

    value: Any


@dataclass(frozen=True)
class Failed:
    """The job raised; ``message`` is the exception's first line."""

    message: str


@dataclass(frozen=True)
class TimedOut:
    seconds: float


@dataclass(frozen=True)
class Exited:
    """The child died without saying it was done (killed, out of memory, a crash in C)."""

    code: int | None


Message = Row | Failed | TimedOut | Exited
_DONE = "done"


def ending(message: Failed | TimedOut | Exited, failed_status: Status = Status.ERROR,
           failed_prefix: str = "") -> tuple[Status, str]:  # fmt: skip
    """The (status, note) to store for a job that ended without its rows."""
    if isinstance(message, Failed):
        return failed_status, failed_prefix + message.message
    if isinstance(message, TimedOut):
        return Status.TIMEOUT, f"no result within {message.seconds:g} s"
    return Status.ERROR, f"the child process exited with code {message.code}"


def run_isolated(target: Callable[..., Any], args: tuple, timeout_s: float) -> Iterator[Message]:
    """Run ``target(send, *args)`` in a spawned child and yield what it sends, as it sends it
    (``stream_rows`` is such a target).

    Ends with ``TimedOut`` if the child outlives ``timeout_s``, or ``Exited`` if it dies without
    saying it is done. Nothing the child sent before is lost.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    # not a daemon: the child may start workers of its own (the book's DataLoader does); the
    # finally below ends it however this generator ends
    child = context.Process(target=target, args=(send, *args))
    child.start()
    send.close()
    deadline, grace = time.monotonic() + timeout_s, 0.0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                yield TimedOut(timeout_s)
                return
            if receive.poll(min(remaining, 1.0)):
                try:
                    message = receive.recv()
                except EOFError:
                    break
                if message == _DONE:
                    grace = 30.0  # let it exit by itself, and its own workers with it
                    return
                yield message
            elif not child.is_alive() and not receive.poll():
                break
        child.join(5)
        yield Exited(child.exitcode)
    finally:
        child.join(grace)
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()


def exit_on_interrupt() -> None:
    """In a child process: Ctrl-C (SIGINT to the whole process group) ends it at once and
    quietly; the parent, interrupted too, says what was kept and ends what is left."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def stream_rows(send: Any, produce: Callable[..., Iterator[Any]], job: dict[str, Any]) -> None:
    """Child-process body for ``run_isolated``: send a ``Row`` for each row ``produce(**job)``
    yields, then say it is done. An exception ends the stream with one ``Failed``."""
    exit_on_interrupt()
    torch.manual_seed(0)
    try:
        for row in produce(**job):
            send.send(Row(row))
    except Exception as error:
        send.send(Failed(f"{type(error).__name__}: {error}".splitlines()[0]))
    send.send(_DONE)


def sweep_into(
    store: Any,
    stage: str,
    produce: Callable[..., Iterator[dict]],
    job: dict[str, Any],
    timeout: float,
    config: Callable[[int], dict],
    failure: tuple[Status, str] = (Status.ERROR, ""),
) -> Iterator[tuple[int, Status, str]]:
    """Run one network's batch-size sweep (``produce(**job)``) in a child; store each row as it
    arrives, keyed by ``config(batch size)``; give every batch size the child did not report a
    row saying why (``failure``: status and note prefix for an exception in the child). Yields
    (batch size, status, what to print)."""
    name, pending = job["model_or_name"], list(job["batch_sizes"])
    for message in run_isolated(stream_rows, (produce, job), timeout):
        if isinstance(message, Row):
            row = message.value
            pending.remove(row["batch_size"])
            status = Status(row["status"])
            store.put(stage, name, config(row["batch_size"]), row, status=status)
            shown = f"{row['images_per_s']:,.1f} images/s" if status == Status.OK else row["note"]
            yield row["batch_size"], status, shown
            continue
        status, note = ending(message, *failure)
        for batch in pending:
            row = {"model": name, "batch_size": batch, "note": note}
            store.put(stage, name, config(batch), row, status=status)
            yield batch, status, note
        return
