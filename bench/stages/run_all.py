"""``all``: every stage under one preset, then every page of the run folder; each preset's plan
says, as data, in what order the stages run and what each measures (a stage may run more than
once, its work split by value)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import archs
from bench.provenance import provenance
from bench.recipes import EXPERIMENTS, PRESETS
from bench.stages import layers, memory, onnx, peers, pipeline, profile, speed, train
from bench.stages.common import (
    Command,
    OnData,
    UsageError,
    device_of,
    option,
    select_models,
)
from bench.store import Store, StoreError

BOOK = ",".join(archs.BOOK_MODELS)
# the stages a plan's steps run, by name
STAGES = {
    m.COMMAND.name: m.COMMAND
    for m in (profile, peers, layers, speed, memory, onnx, pipeline, train)
}
# The networks beside the book's nine whose speed the exercises read: NiN's variants (8.3.5),
# ResNet-34 to 152 (8.6.7.2), DenseNet-121 against ResNet-50 (8.7.7.3).
EXERCISE_SPEED = "nin_*,resnet34,resnet50,resnet101,resnet152,densenet121"
BF16 = {"precision": "bf16", "channels_last": True}  # the speed stage's mixed precision


class Step(NamedTuple):
    """One step of a plan: a stage with its settings; ``name`` tells apart the steps of a stage
    that a plan runs more than once (the stage's name otherwise). ``--models`` replaces a
    step's networks, but only narrows those of a step ``for_its_networks`` (one that measures
    particular networks for an exercise): it runs those of them that ``--models`` selects."""

    stage: str
    settings: Any
    name: str = ""
    for_its_networks: bool = False


# ResNet-18 and GoogLeNet, which the book runs at 96 pixels, counted at 224 beside the networks
# of the papers' tables (8.4.5.5, 8.6.7.2)
AT_224 = Step(
    "profile",
    profile.Settings(models="resnet18,googlenet", image_size=224, check=True),
    "profile: ResNet-18 and GoogLeNet at 224 pixels",
    for_its_networks=True,
)

# What `python -m bench all` runs under each preset: its steps, in order, each a stage with
# its settings.
PLANS: dict[str, tuple[Step, ...]] = {
    "smoke": (  # every stage end to end on the LeNets, in about a minute
        Step("profile", profile.Settings(models="lenet,bn_lenet")),
        Step("peers", peers.Settings(models="lenet")),
        Step("layers", layers.Settings(time_cap=0.02)),
        Step("speed", speed.Settings(models="lenet", batch_sizes=(1, 8, 128), time_cap=0.05)),
        Step("memory", memory.Settings(models="lenet")),
        Step("onnx", onnx.Settings(models="lenet", batch_sizes=(1, 8), time_cap=0.05)),
        Step("pipeline", pipeline.Settings(models="lenet", seconds=0.3)),
        Step("train", train.Settings(models="lenet,bn_lenet", preset="smoke")),
    ),
    "cpu": (  # the book's networks on a CPU, on fixed work
        Step("profile", profile.Settings(check=True)),
        AT_224,
        Step("peers", peers.Settings()),
        Step("layers", layers.Settings()),
        Step(
            "speed",
            speed.Settings(
                models=f"{BOOK},{EXERCISE_SPEED}",
                batch_sizes=(1, 16, 128),
                time_cap=0.5,
                max_step=1,
            ),
        ),
        # the memory exercises compare batch sizes that the 1 s step limit skips at 224 pixels:
        # AlexNet's training against its inference (8.1.5.1.3), DenseNet-121's training step
        # against ResNet-50's (8.7.7.3)
        Step(
            "speed",
            speed.Settings(models="alexnet", batch_sizes=(16, 128), time_cap=0.5, max_step=30),
            "speed: AlexNet at batch 16 and 128",
            for_its_networks=True,
        ),
        Step(
            "speed",
            speed.Settings(
                models="densenet121,resnet50",
                batch_sizes=(16,),
                mode=("train",),
                time_cap=0.5,
                max_step=10,
            ),
            "speed: DenseNet-121 and ResNet-50 training at batch 16",
            for_its_networks=True,
        ),
        Step("memory", memory.Settings(models=f"{BOOK},{EXERCISE_SPEED}")),
        Step("onnx", onnx.Settings(models=BOOK, batch_sizes=(1, 32), time_cap=0.5, max_step=1)),
        Step("pipeline", pipeline.Settings(seconds=2)),
        # AlexNet's batch sweep (8.1.5.6) would take the preset past its budget: python -m
        # bench train --experiment batch_sweep measures it
        Step(
            "train",
            train.Settings(
                preset="cpu",
                experiment=(
                    "book",
                    "lr_grid",
                    "vgg_sizes",
                    "lenet_variants",
                    "networks_28",
                    "variants",
                ),
            ),
        ),
    ),
    # A CPU, for hours: what the book's nine networks buy under the book's recipe at the
    # smallest side of at least 32 pixels each accepts, cheapest first
    "book_cpu": (
        Step("profile", profile.Settings(check=True)),
        Step("train", train.Settings(preset="book_cpu"), "train: the book's networks"),
    ),
    # A GPU: the chapter's recipes, the most valuable rows first, so that a run stopped part
    # way (and resumed later: what is stored is not measured again) holds them: the counts
    # (seconds, on the meta device), what the book's nine networks buy (the train stage runs
    # the cheapest first, by counted FLOPs, on one device), their speed in fp32 and
    # in bf16 with channels_last, then every network's, onnxruntime, the exercises' runs, the
    # rest, and torch.compile last, on the book's networks (it compiles for minutes each).
    "book": (
        Step("profile", profile.Settings(check=True)),
        AT_224,
        Step("train", train.Settings(preset="book"), "train: the book's networks"),
        Step(
            "speed", speed.Settings(models=BOOK, time_cap=0.5), "speed: fp32, the book's networks"
        ),
        Step(
            "speed",
            speed.Settings(models=BOOK, time_cap=0.5, **BF16),
            "speed: bf16, channels_last, the book's networks",
        ),
        Step("speed", speed.Settings(time_cap=0.5), "speed: fp32"),
        Step("speed", speed.Settings(time_cap=0.5, **BF16), "speed: bf16, channels_last"),
        # on a GPU machine whose onnxruntime lacks CUDA's provider, both runtimes run on its
        # CPU: the step cap keeps the largest networks' large batches from taking minutes each
        Step("onnx", onnx.Settings(time_cap=0.5, max_step=2)),
        Step(
            "train",
            train.Settings(preset="book", experiment=tuple(e for e in EXPERIMENTS if e != "book")),
            "train: the exercises and fast recipes",
        ),
        Step("pipeline", pipeline.Settings()),
        Step("layers", layers.Settings()),
        Step("peers", peers.Settings()),
        Step("memory", memory.Settings()),
        Step(
            "speed",
            speed.Settings(models=BOOK, time_cap=0.5, compile=True),
            "speed: fp32, torch.compile, the book's networks",
        ),
        Step(
            "speed",
            speed.Settings(models=BOOK, time_cap=0.5, compile=True, **BF16),
            "speed: bf16, channels_last, torch.compile, the book's networks",
        ),
    ),
}


@dataclass(frozen=True)
class Settings(OnData):
    models: str | None = option(
        None, "shell-style patterns, comma-separated; None: the preset's choice for each stage"
    )
    preset: str | None = train.preset_option("None: book with a GPU, cpu without")


def stage_settings(s: Settings, preset: str) -> list[Step]:
    """The steps of ``preset``'s plan, each stage's settings with this run's folder, device,
    data and networks where the stage takes them; None for the settings of a step for its
    networks of which ``--models`` selects none."""
    given = {
        "store": s.store,
        "out": s.out,
        "device": s.device,
        "data_dir": s.data_dir,
        "executor": s.executor,
        "address": s.address,
    }
    asked = None if s.models is None else select_models(s.models)
    staged = []
    for step in PLANS[preset]:
        fields = {f.name for f in dataclasses.fields(step.settings)}
        settings = dataclasses.replace(
            step.settings, **{k: v for k, v in given.items() if k in fields}
        )
        if asked is not None and "models" in fields:
            chosen = asked
            if step.for_its_networks:
                chosen = [name for name in select_models(step.settings.models) if name in asked]
            settings = dataclasses.replace(settings, models=",".join(chosen)) if chosen else None
        staged.append(Step(step.stage, settings, step.name or step.stage))
    return staged


def run(s: Settings) -> int:
    """Every step of the preset's plan in order (the pages follow, as after every command that
    writes a run folder); a step that fails is recorded and the next one runs. The run itself
    (each step's outcome and seconds, the wall time) is stored where it measured something or
    a step did not end ok: a run that finds every point in the store leaves it as it was."""
    preset = train.preset_name(s)
    s.data()  # before anything runs: the data is there, or one line says how
    s.runner(device_of(s))  # and so is Ray, where it is asked for
    steps = stage_settings(s, preset)  # and every pattern of --models matches a network
    worst, outcomes, seconds = 0, {}, {}
    started, began = time.perf_counter(), provenance()["date"]
    try:
        for stage, settings, name, _ in steps:
            print(f"== {name} ({preset} preset) ==", flush=True)
            step_started = time.perf_counter()
            try:
                if settings is None:
                    raise UsageError(f"none of its networks is among --models {s.models}")
                code = STAGES[stage].run(settings)
                outcomes[name] = "ok" if code == 0 else "some items failed (recorded)"
                worst = max(worst, code)
            except UsageError as error:  # e.g. no network of this stage matches --models
                outcomes[name] = f"skipped: {error}"
                print(f"{name} skipped: {error}", flush=True)
            except StoreError:
                raise  # the store itself is unusable: nothing after this can be kept
            except Exception as error:  # one stage's bug must not cost the others
                message = f"{type(error).__name__}: {error}".splitlines()[0]
                outcomes[name], worst = f"failed: {message}", 1
                print(f"{name} failed: {message}; the next stage runs", flush=True)
            finally:  # an interrupted step's time too
                seconds[name] = time.perf_counter() - step_started
    finally:  # an interrupted run is recorded too, with the stages it finished
        store = Store(s.store)
        stored = any(r["provenance"]["date"] >= began for r in store.rows() if r["stage"] != "run")
        if stored or any(outcomes.get(name) != "ok" for name in seconds):  # or one stopped
            left = [m for m in archs.list_models() if not PRESETS[preset].trains(m)]
            store.put(
                "run",
                preset,
                {"started": began},
                {
                    "preset": preset,
                    "models": s.models,
                    "wall_s": time.perf_counter() - started,
                    "stages": outcomes,
                    "stage_s": seconds,
                    "not_trained": left,
                },
            )
    store.close()
    each = ", ".join(f"{name} {took:.0f} s" for name, took in seconds.items())
    print(f"all stages in {time.perf_counter() - started:.0f} s ({each})")
    return worst


COMMAND = Command("all", "every stage in order, then every page of the run folder", Settings, run)
