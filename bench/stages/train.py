"""``train``: the runs of the chosen experiments on Fashion-MNIST, as a preset adapts them,
each in a child process, into the store; runs that differ only by seed get their medians."""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
from dataclasses import dataclass
from typing import Any

import archs
from bench.console import Progress, plural
from bench.device import backend_for
from bench.executors import Job, dispatch
from bench.isolation import Row
from bench.recipes import EXPERIMENTS, PRESETS, Preset, Run, config, describe
from bench.schema import FAILED, MEASURED, Status
from bench.stages.common import (
    Command,
    OnData,
    UsageError,
    device_of,
    option,
    select_models,
    timeout_option,
)
from bench.store import Store, config_hash
from bench.training.loop import train_rows


def preset_option(help: str) -> Any:
    return option(None, help, choices=tuple(PRESETS))


@dataclass(frozen=True)
class Settings(OnData):
    experiment: tuple[str, ...] = option(
        ("book",),
        "named groups of runs (bench/recipes.py)",
        choices=tuple(EXPERIMENTS),
        many=True,
    )
    preset: str | None = preset_option(
        "what each run trains on; None: book with a GPU, cpu without"
    )
    pipeline: str = option(
        "ours",
        "ours: batches on the device; torchvision: the book's DataLoader",
        choices=("ours", "torchvision"),
    )
    timeout: float = timeout_option(4 * 3600, "run")


def preset_name(s: Any) -> str:
    """The preset asked for, else the device's: the book's recipes on a GPU, the cpu preset
    without."""
    return getattr(s, "preset", None) or ("book" if device_of(s).type == "cuda" else "cpu")


def run(s: Settings) -> int:
    """Train the runs of the chosen experiments, each in a child process, into the store."""
    device, name = device_of(s), preset_name(s)
    preset = PRESETS[name]
    selected = set(select_models(s.models))
    runs = [r for e in s.experiment for r in EXPERIMENTS[e] if r.model in selected]
    if not runs:
        raise UsageError(f"no run of {', '.join(s.experiment)} trains {s.models!r}")
    skipped = sorted({r.model for r in runs if not preset.trains(r.model)})
    if skipped:
        print(
            f"train: the {name} preset does not train {', '.join(skipped)} (the book preset does)"
        )
    runs = [r for r in runs if preset.trains(r.model)]
    s.data()  # fail fast, in one line, if the data is missing
    device_name = backend_for(device).name
    store = Store(s.store)
    keys = [(run, {**config(run, preset, s.pipeline), "device": device_name}) for run in runs]
    keys = list({config_hash(k): (r, k) for r, k in keys}.values())  # experiments may share runs
    runner = s.runner(device)
    todo = by_work(
        store,
        [(r, k) for r, k in keys if not store.has("train", r.model, k, MEASURED)],
        longest_first=runner.side_by_side,
    )
    print(
        f"train: {plural(len(todo), 'run')} to train ({len(keys) - len(todo)} already in "
        f"{s.store}), preset {name}, on {device_name}"
    )
    if name == "smoke":
        print(
            "train: the smoke preset checks that training runs end to end, on far too little "
            "work to learn: its accuracies mean nothing"
        )
    checkpoints = s.out / "checkpoints"  # one a run, while it trains
    jobs = [
        Job(
            train_rows,
            dict(
                run=run,
                preset=preset,
                data_dir=s.data_dir,
                device=str(device),
                checkpoint=checkpoints / f"{config_hash(key)}.pt",
                pipeline=s.pipeline,
            ),
            s.timeout,
        )
        for run, key in todo
    ]
    outcomes = {}  # a job's index -> (status, note): from the row it sent, then as it ended
    with Progress("train", len(todo)) as progress:

        def stored(index: int, message: Row) -> None:
            run, key = todo[index]
            result = message.value
            summary = {**result["summary"], **describe(run, preset, s.pipeline)}
            history = {"history": result["history"]}
            status = summary["status"]
            store.put(
                "train",
                run.model,
                key,
                summary,
                status=status,
                details=history,
                origin=message.origin,
            )
            outcomes[index] = status, f"test accuracy {summary['test_acc']:.3f}"

        def ended(index: int, status: Status, note: str) -> None:
            run, key = todo[index]
            if status == Status.OK:  # finished: as its row says, if it sent one
                status, note = outcomes.get(
                    index, (Status.ERROR, "the child process ended without a result")
                )
            outcomes[index] = status, note
            described = describe(run, preset, s.pipeline)
            if status in FAILED:
                row = {**run.settings(), **described, "note": note}
                store.put("train", run.model, key, row, status=status)
            settings = preset.adapt(run)[0].settings()
            progress.item(
                f"{run.model}, lr {settings['lr']}, batch {settings['batch_size']}, "
                f"{settings['resize'] or 28} px, {described['work']}, techniques "
                f"{settings['techniques']}, seed {run.seed}: {status}, {note}"
            )

        dispatch(runner, jobs, stored, ended)
    failures = sum(status in FAILED for status, _ in outcomes.values())
    with contextlib.suppress(OSError):  # the folder is left where a checkpoint is left to resume
        checkpoints.rmdir()
    for line in seed_medians(store, [r for r, _ in keys], preset, s.pipeline, device_name):
        print(line)
    store.close()
    return 1 if failures else 0


def by_work(
    store: Store, todo: list[tuple[Run, dict]], longest_first: bool
) -> list[tuple[Run, dict]]:
    """The runs by counted training FLOPs (epochs x images x forward and backward FLOPs per
    image, from the store's profile of the network at the run's input side): on one device
    the shortest first, so that a run of ``all`` stopped part way (a time limit) holds the most
    networks; side by side (``--executor ray``), the longest first, so that they end close
    together. A run whose network has no such profile row keeps its place after them."""

    def flops(item: tuple[Run, dict]) -> float | None:
        run, key = item
        side = key["resize"] or 28
        row = store.get(
            "profile",
            run.model,
            {
                "image_size": side,
                "batch_size": 128,
                "in_channels": archs.spec(run.model).in_channels,
            },
        )
        if row is None or row["status"] != Status.OK:
            return None
        images = 60_000 if key["train_per_class"] is None else 10 * key["train_per_class"]
        return key["epochs"] * images * (row["fwd_flops_per_image"] + row["bwd_flops_per_image"])

    costs = [flops(item) for item in todo]
    known = sorted(
        (i for i, c in enumerate(costs) if c is not None),
        key=lambda i: -costs[i] if longest_first else costs[i],
    )
    return [todo[i] for i in known + [i for i, c in enumerate(costs) if c is None]]


def seed_medians(
    store: Store, runs: list[Run], preset: Preset, pipeline: str, device: str
) -> list[str]:
    """For runs that differ only by seed: the median test accuracy and wall clock over seeds."""
    seeds: dict[Run, list[dict]] = {}
    for run in runs:
        row = store.get("train", run.model, {**config(run, preset, pipeline), "device": device})
        if row is not None and row["status"] in MEASURED:
            seeds.setdefault(dataclasses.replace(run, seed=0), []).append(row)

    def spread(values: list[float], unit: str) -> str:
        return (
            f"{statistics.median(values):{unit}} (range {min(values):{unit}} to "
            f"{max(values):{unit}})"
        )

    return [
        f"{run.model}, techniques {run.techniques.names()}: median of {len(rows)} seeds: test "
        f"accuracy {spread([r['test_acc'] for r in rows], '.2%')}, wall clock "
        f"{spread([r['wall_s'] for r in rows], '.0f')} s (training and evaluation)"
        for run, rows in seeds.items()
        if len(rows) > 1
    ]


COMMAND = Command(
    "train", "Fashion-MNIST training: the book's recipes under a preset", Settings, run
)
