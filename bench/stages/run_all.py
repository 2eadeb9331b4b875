"""``all``: every stage in order under one preset, then every page of the run folder; each
preset says, as data, what each stage measures under it."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import archs
from bench.console import plural
from bench.stages import blocks, onnx, peers, pipeline, profile, speed, train
from bench.stages.common import (
    Command,
    OnData,
    UsageError,
    device_of,
    option,
)
from bench.store import Store, StoreError, provenance
from bench.training.recipes import EXPERIMENTS, PRESETS

BOOK = ",".join(archs.BOOK_MODELS)
# What `python -m bench all` runs under each preset: every stage, in order, with its settings.
PLANS: dict[str, dict[str, Any]] = {
    "smoke": {  # every stage end to end on the LeNets, in about a minute
        "profile": profile.Settings(models="lenet,bn_lenet"),
        "peers": peers.Settings(models="lenet"),
        "blocks": blocks.Settings(time_cap=0.02),
        "speed": speed.Settings(models="lenet", batch_sizes=(1, 8, 128), time_cap=0.05),
        "onnx": onnx.Settings(models="lenet", batch_sizes=(1, 8), time_cap=0.05),
        "pipeline": pipeline.Settings(models="lenet", seconds=0.3),
        "train": train.Settings(models="lenet,bn_lenet", preset="smoke"),
    },
    "cpu": {  # the book's networks on a CPU, on fixed work
        "profile": profile.Settings(),
        "peers": peers.Settings(),
        "blocks": blocks.Settings(),
        "speed": speed.Settings(models=BOOK, batch_sizes=(1, 16, 128), time_cap=0.5, max_step=1),
        "onnx": onnx.Settings(models=BOOK, batch_sizes=(1, 32), time_cap=0.5,
                              max_step=1),
        "pipeline": pipeline.Settings(seconds=2),
        "train": train.Settings(preset="cpu", experiment=(
            "book", "lr_grid", "batch_sweep", "vgg_sizes", "lenet_variants", "networks_28",
            "variants")),
    },
    "book": {  # a GPU: the chapter's recipes
        "profile": profile.Settings(),
        "peers": peers.Settings(),
        "blocks": blocks.Settings(),
        "speed": speed.Settings(),
        "onnx": onnx.Settings(),
        "pipeline": pipeline.Settings(),
        "train": train.Settings(preset="book", experiment=tuple(EXPERIMENTS)),
    },
}  # fmt: skip


@dataclass(frozen=True)
class Settings(OnData):
    models: str | None = option(None, "shell-style patterns, comma-separated; None: the "
                                "preset's choice for each stage")  # fmt: skip
    preset: str | None = train.preset_option("None: book with a GPU, cpu without")


def stage_settings(s: Settings, preset: str) -> list[tuple[str, Any]]:
    """Each stage's settings under ``preset``, with this run's folder, device, data and
    networks where the stage takes them."""
    given = {"store": s.store, "out": s.out, "device": s.device, "data_dir": s.data_dir,
             "executor": s.executor, "address": s.address}  # fmt: skip
    if s.models is not None:
        given["models"] = s.models
    staged = []
    for name, settings in PLANS[preset].items():
        fields = {f.name for f in dataclasses.fields(settings)}
        staged.append((name, dataclasses.replace(settings, **{
            k: v for k, v in given.items() if k in fields})))  # fmt: skip
    return staged


def run(s: Settings) -> int:
    """Every stage in order under one preset, then every page; a stage that fails is recorded
    and the next one runs."""
    from bench import runs
    from bench.stages import COMMANDS

    preset = train.preset_name(s)
    s.data()  # before anything runs: the data is there, or one line says how
    s.runner(device_of(s))  # and so is Ray, where it is asked for
    worst, outcomes = 0, {}
    started, began = time.perf_counter(), provenance()["date"]
    try:
        for stage, settings in stage_settings(s, preset):
            print(f"== {stage} ({preset} preset) ==", flush=True)
            try:
                code = COMMANDS[stage].run(settings)
                outcomes[stage] = "ok" if code == 0 else "some items failed (recorded)"
                worst = max(worst, code)
            except UsageError as error:  # e.g. no network of this stage matches --models
                outcomes[stage] = f"skipped: {error}"
                print(f"{stage} skipped: {error}", flush=True)
            except StoreError:
                raise  # the store itself is unusable: nothing after this can be kept
            except Exception as error:  # one stage's bug must not cost the others
                message = f"{type(error).__name__}: {error}".splitlines()[0]
                outcomes[stage], worst = f"failed: {message}", 1
                print(f"{stage} failed: {message}; the next stage runs", flush=True)
    finally:  # an interrupted run is recorded too, with the stages it finished
        store = Store(s.store)
        left = [m for m in archs.list_models() if not PRESETS[preset].trains(m)]
        store.put("run", preset, {"started": began}, {
            "preset": preset, "models": s.models, "wall_s": time.perf_counter() - started,
            "stages": outcomes, "not_trained": left})  # fmt: skip
    written = runs.render(store, s.out)
    store.close()
    print(
        f"all stages in {time.perf_counter() - started:.0f} s; "
        f"{plural(len(written), 'file')} in {s.out}; index: {s.out / 'index.md'}"
    )
    return worst


COMMAND = Command("all", "every stage in order, then every page of the run folder", Settings, run)
