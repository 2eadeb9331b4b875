"""The commands of ``python -m bench``: one module per measuring stage (``profile``,
``peers``, ``layers``, ``speed``, ``memory``, ``onnx``, ``pipeline``, ``train``), each with its
typed settings and a ``run``; ``all`` runs them in order under a preset (``run_all``);
``render`` and ``compare`` read stores (``reading``); ``prune`` deletes rows. Stages write rows
to a run's store; pages are rendered from the store alone."""

from bench.stages import (
    layers,
    memory,
    onnx,
    peers,
    pipeline,
    profile,
    prune,
    reading,
    run_all,
    speed,
    train,
)
from bench.stages.common import Command

COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        profile.COMMAND,
        peers.COMMAND,
        layers.COMMAND,
        speed.COMMAND,
        memory.COMMAND,
        onnx.COMMAND,
        train.COMMAND,
        pipeline.COMMAND,
        reading.RENDER,
        reading.COMPARE,
        prune.COMMAND,
        run_all.COMMAND,
    )
}
