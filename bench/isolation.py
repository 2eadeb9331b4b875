"""Child processes for whatever can crash, run out of memory or hang: a stage runs each job in a
child process with a timeout and reads typed messages from it, so that one job's failure loses
nothing already measured.

A child sends ``Row``s; its stream ends with one of ``Done`` (it said so), ``Failed`` (an
exception in the child), ``TimedOut`` (the child outlived its time and was killed) or ``Exited``
(it died without saying it was done); an executor may end it with ``Lost`` (bench.executors).
``ending`` turns each ending but ``Done`` into the status and note a stage stores.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.children import children
from bench.provenance import environment
from bench.schema import Status


@dataclass(frozen=True)
class Row:
    """One result the child measured, and where: ``origin`` is the measuring machine's host,
    device and code version (``bench.provenance.environment``)."""

    value: Any
    origin: dict[str, Any] | None = None


@dataclass(frozen=True)
class Done:
    """The child said it was done."""


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


@dataclass(frozen=True)
class Lost:
    """The process running the job was lost (a Ray worker or its node died) on each of
    ``tries`` tries; ``reason``: the last loss, in one line."""

    tries: int
    reason: str


Message = Row | Done | Failed | TimedOut | Exited | Lost
_DONE = "done"


def ending(message: Failed | TimedOut | Exited | Lost) -> tuple[Status, str]:
    """The (status, note) to store for a job that ended without its rows."""
    if isinstance(message, Failed):
        return Status.ERROR, message.message
    if isinstance(message, TimedOut):
        return Status.TIMEOUT, f"no result within {message.seconds:g} s"
    if isinstance(message, Exited):
        return Status.ERROR, f"the child process exited with code {message.code}"
    return Status.ERROR, f"its worker was lost on each of {message.tries} tries: {message.reason}"


def run_isolated(target: Callable[..., Any], args: tuple, timeout_s: float) -> Iterator[Message]:
    """Run ``target(send, *args)`` in a child process and yield what it sends, as it sends it
    (``stream_rows`` is such a target).

    Ends with ``Done`` or ``Failed`` as the child says, ``TimedOut`` if it outlives
    ``timeout_s``, or ``Exited`` if it dies without saying it is done. Nothing the child sent
    before is lost.
    """
    context = children()
    receive, send = context.Pipe(duplex=False)
    # not a daemon: the child may start workers of its own (the book's DataLoader does); the
    # finally below ends it however this generator ends, a Ctrl-C while it starts included (it
    # ignores SIGINT until it runs our code: children)
    child = context.Process(target=_child, args=(os.getpid(), target, send, *args))
    deadline, grace = time.monotonic() + timeout_s, 0.0
    try:
        child.start()
        send.close()
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
                if message == _DONE or isinstance(message, Failed):
                    grace = 30.0  # let it exit by itself, and its own workers with it
                    yield message if isinstance(message, Failed) else Done()
                    return
                yield message
            elif not child.is_alive() and not receive.poll():
                break
        child.join(5)
        yield Exited(child.exitcode)
    finally:
        if child.pid is not None:  # it started (else it ends with this process: end_with)
            child.join(grace)
            if child.is_alive():
                child.kill()
            child.join()
        send.close()
        receive.close()


def end_with(parent: int) -> None:
    """In a child process: end it at once and quietly at Ctrl-C (SIGINT to the whole process
    group: the parent, interrupted too, says what was kept), and once ``parent``, the process
    that started it, is gone (a driver killed, a Ray worker lost), so that no orphan goes on
    measuring for nobody. (Its parent in the process tree is the fork server, which outlives
    the process that started it as long as a child of it lives.)"""

    def watch() -> None:
        while alive(parent):
            time.sleep(0.5)
        os._exit(1)

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    threading.Thread(target=watch, daemon=True).start()


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # Linux says which state it is in
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _child(parent: int, target: Callable[..., Any], *args: Any) -> None:
    end_with(parent)
    target(*args)


def rows_of(produce: Callable[..., Any], job: dict[str, Any]) -> Iterator[Row]:
    """A ``Row`` for each row ``produce(**job)`` yields (or the one it returns, where it is not
    a generator), with where it was measured."""
    produced = produce(**job)
    for row in produced if isinstance(produced, Iterator) else [produced]:
        yield Row(row, environment())


def stream_rows(send: Any, produce: Callable[..., Any], job: dict[str, Any]) -> None:
    """Child-process body for ``run_isolated``: send the job's rows (``rows_of``) as they come,
    then say it is done. An exception ends the stream with one ``Failed``."""
    import torch

    torch.manual_seed(0)
    try:
        for row in rows_of(produce, job):
            send.send(row)
    except Exception as error:
        send.send(Failed(f"{type(error).__name__}: {error}".splitlines()[0]))
    send.send(_DONE)
