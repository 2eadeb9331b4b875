"""What an exercise whose question is accuracy still needs trained with the book's recipe on
this store's device (the book preset on a GPU, book_cpu on a CPU), and what each run would cost:
its training time estimated from a network of its family trained under that preset, whose
training images/s are scaled by the ratio of forward MACs per image."""

from __future__ import annotations

import functools
import statistics
from typing import Any

import archs
from bench.console import plural
from bench.flops.profile import step_flops_per_image
from bench.recipes import EXPERIMENTS, PRESETS, Preset, Run, config, describe
from bench.render.training import BOOK_PRESETS
from bench.schema import MEASURED
from bench.store import Store


def book_preset(store: Store) -> str:
    """The preset that trains the book's recipe on the store's device."""
    rows = [r for stage in ("train", "speed", "profile") for r in store.rows(stage)]
    return "book" if any(r["provenance"]["device"] != "cpu" for r in rows) else "book_cpu"


def _work(key: dict[str, Any]) -> dict[str, Any]:
    """A run's key without its preset's name and device: the work itself (a 28-pixel network's
    book run is its book_cpu run)."""
    return {k: v for k, v in key.items() if k not in ("name", "device")}


@functools.cache
def forward_macs(model: str, side: int) -> int:
    """Forward MACs per image of ``model`` at ``side`` pixels, counted on the meta device."""
    built = archs.build(model, image_size=side, device="meta")
    return step_flops_per_image(built, (1, side, side))["infer"] // 2


def minutes(run: Run, preset: Preset, done: list[dict[str, Any]]) -> tuple[float, str] | None:
    """The training minutes of ``run`` under ``preset``, estimated from the book-recipe runs of
    its family in ``done`` (the median of their forward MACs per second), and the networks that
    rate comes from; None where its family has no such run. Its forward MACs per image are a
    stored run's at the same side, else counted."""
    family = archs.spec(run.model).family
    peers = [
        r
        for r in done
        if r["preset"] in BOOK_PRESETS
        and r["changes"] == []
        and archs.spec(r["model"]).family == family
    ]
    if not peers:
        return None
    rate = statistics.median(r["fwd_macs_per_image"] * r["images_per_s"] for r in peers)
    adapted, work = preset.adapt(run)
    side = adapted.resize or 28
    images = 10 * (work.train_per_class or 6000) * work.epochs
    stored = [
        r["fwd_macs_per_image"]
        for r in done
        if r["model"] == run.model and (r["resize"] or 28) == side
    ]
    macs = stored[0] if stored else forward_macs(run.model, side)
    return images * macs / rate / 60, ", ".join(sorted({r["model"] for r in peers}))


def left_to_train(store: Store, experiments: tuple[str, ...], models: tuple[str, ...]) -> str:
    """A sentence on the runs of ``experiments`` for ``models`` not yet trained under the
    store's book preset: each with its estimated cost, and the command that trains them (empty
    when none is left)."""
    name = book_preset(store)
    preset = PRESETS[name]
    done = [r for r in store.rows("train") if r["status"] in MEASURED]
    stored = [_work(r["config"]) for r in done if r["preset"] in BOOK_PRESETS]
    runs = dict.fromkeys(r for e in experiments for r in EXPERIMENTS[e] if r.model in models)
    presets = {name, "book"}  # a run trained with the book's own recipe counts too
    left = [
        r for r in runs if all(_work(config(r, PRESETS[p], "ours")) not in stored for p in presets)
    ]
    if not left:
        return ""
    costs = []
    for run in left:
        settings = config(run, preset, "ours")
        what = f"{run.model} at {settings['resize'] or 28} px"
        changed = describe(run, preset, "ours")["changes"] or []
        what += "".join(
            f", {label} {settings[key]:g}"
            for key, label in (("lr", "lr"), ("batch_size", "batch"), ("seed", "seed"))
            if key in changed
        )
        estimate = minutes(run, preset, done)
        costs.append(
            f"{what}: about {estimate[0]:,.0f} min (from {estimate[1]})"
            if estimate
            else f"{what}: cost not estimated (no network of its family trained under {name})"
        )
    command = (
        f"python -m bench train --preset {name} --experiment {' '.join(experiments)} "
        f"--models {','.join(sorted({r.model for r in left}))}"
    )
    return (
        f"*Not trained yet under the {name} preset* ({plural(len(left), 'run')}; training "
        f"time estimated from this folder's own runs): {'; '.join(costs)}. `{command}` trains "
        + ("it." if len(left) == 1 else "them.")
    )


def untrained(name: str, preset: str) -> str:
    """Why a network has no accuracy: the command that trains it with the book's recipe, or
    that no experiment trains it (a paper's network, counted only)."""
    experiment = next((e for e, runs in EXPERIMENTS.items() if Run(name) in runs), None)
    if experiment is None:
        return "counted only: no experiment trains it"
    return (
        f"not trained yet: `python -m bench train --preset {preset} --experiment {experiment} "
        f"--models {name}`"
    )
