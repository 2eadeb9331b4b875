"""How measuring children start (``children``): its own module, of the standard library
alone, so that ``python -m bench`` starts the fork server before it imports torch itself."""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.forkserver
import signal

# the commands that read a store and start no children (bench/stages/reading.py)
READING = ("render", "compare", "prune")


@functools.cache
def children() -> multiprocessing.context.BaseContext:
    """How children start: forked from a server process that imported torch and this package
    once and ran nothing (no OpenMP or CUDA state to inherit), so that a child starts in
    milliseconds instead of importing torch again; torch._dynamo too, which many of torch's
    functions import on their first call, for seconds.

    The server starts with SIGINT ignored, so that a child forked from it ignores SIGINT until
    ``end_with`` says how it ends (else a SIGINT while it unpickles its job ends it with exit
    code 1, an error, instead). This process ignores SIGINT while it starts the server, for
    milliseconds once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        [
            "bench.flops",
            "bench.timing",
            "bench.training.loop",
            "bench.onnx_runtime",
            "torch._dynamo",
        ]
    )
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through exec
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, handler)
    return context
