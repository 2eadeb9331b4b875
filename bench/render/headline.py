"""What each network costs and what it buys: the headline table (one row per network, its cost
beside what its training run bought) and the tradeoffs page, from the results store only; the
index (bench/render/index.py) shows the same table in two."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

import archs
from bench.console import plural
from bench.render.chance import learned, lr_fix
from bench.render.exercises.left import book_preset, untrained
from bench.render.format import (
    CONVENTIONS,
    MIB,
    Column,
    atomic_write,
    fmt_bound,
    fmt_int,
    fmt_mega,
    fmt_percent,
    fmt_ratio,
    fmt_text,
    markdown,
)
from bench.render.setups import per_point, speed_setup, spread
from bench.render.training import evaluated_at_end, fast_recipes, preset_run, throughput_cv
from bench.schema import MEASURED, Status
from bench.store import Store

COST_COLUMNS: list[Column] = [
    ("params", "params", fmt_int),
    ("fwd_macs_per_image", "fwd MACs / image at the book's input (M, counted)", fmt_mega),
    (
        "train_mib",
        "training step, SGD, batch 128: its fullest moment (MiB, estimated)",
        fmt_ratio,
    ),
    (
        "infer_best",
        "best inference images/s at the book's input (batch, setup, spread; measured)",
        fmt_text,
    ),
]
TRAINED_COLUMNS: list[Column] = [
    ("trained_input", "trained at", fmt_text),
    ("trained_macs", "fwd MACs / image as trained (M, counted)", fmt_mega),
    ("train_speed", "training images/s at its batch (measured; where)", fmt_text),
    ("test_acc", "test accuracy", fmt_percent),
    ("accuracy", "how trained", fmt_text),
    ("to_80", "to 80% (s of training; ≤: tested at the end alone)", fmt_bound),
]


def _best(rows: list[dict], mode: str, size: int) -> dict[str, Any] | None:
    """The point (``per_point``) of highest throughput timed at input side ``size``."""
    timed = [r for r in rows if (r["mode"], r["image_size"]) == (mode, size)]
    return max(timed, key=lambda r: r["images_per_s"], default=None)


def best_text(point: dict[str, Any] | None) -> str:
    """A point's images/s with its batch, setup and spread, in one cell."""
    if point is None:
        return "-"
    return (
        f"{point['images_per_s']:,.0f} ({point['batch_size']}, {speed_setup(point)}, "
        f"{spread(point)})"
    )


def run_text(run: dict[str, Any]) -> str:
    """How a run trained, in words: its preset (the fast recipe keeps its own schedule under
    any), techniques (with whether bf16 autocast ran, where they ask for it), optimizer
    settings, work, test set."""
    techniques = run["techniques"]
    if "bf16" in techniques.split("+"):
        techniques += f" (autocast {run.get('autocast', 'off')})"
    tested = run["config"]["test_per_class"]
    tested = "all 10,000" if tested is None else f"{10 * tested:,}"
    return (
        f"{'fast recipe' if run['fast_recipe'] else run['preset'] + ' preset'}: "
        f"{'' if techniques == '-' else techniques + ', '}"
        f"lr {run['lr']:g}, "
        f"batch {run['batch_size']}, {run['work']}; tested on {tested}"
    )


def preset_of(store: Store) -> str | None:
    """The preset of the store's latest ``python -m bench all`` (None if it never had one)."""
    runs = store.rows("run")
    return runs[-1]["preset"] if runs else None


def swept_point(run: dict[str, Any], speeds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The speed sweep's point (``speeds``, one row per point) at the run's batch and input, if
    it timed that point on the run's device in the run's setup; None for a compiled run (its
    compile mode may differ from the sweep's) and for a point not timed."""
    techniques = run["technique_settings"] or {}
    if techniques.get("compile"):
        return None
    setup = speed_setup(
        {
            "precision": "bf16" if run.get("autocast") == "bf16" else "fp32",
            "channels_last": techniques.get("channels_last", False),
            "compiled": False,
        }
    )
    point = ("train", run["batch_size"], run["resize"] or 28, run["device_name"], setup)
    return next(
        (
            r
            for r in speeds
            if (r["mode"], r["batch_size"], r["image_size"], r["device_name"], speed_setup(r))
            == point
        ),
        None,
    )


def train_speed(run: dict[str, Any], swept: dict[str, Any] | None, history: list[dict]) -> str:
    """A run's training images/s in one cell: its point in the speed sweep where ``swept``
    holds it, else the run's own (images over training time), with its spread over the
    ``history``'s intervals."""
    if swept is not None:
        return f"{swept['images_per_s']:,.0f} (speed sweep, {speed_setup(swept)}, {spread(swept)})"
    cv = throughput_cv(history)
    epochs = f"CV {cv:.0%} over {len(history)} epochs" if cv == cv else "timed as a whole"
    return f"{run['images_per_s']:,.0f} (training run, {epochs})"


def headline(store: Store) -> pd.DataFrame:
    """One row per network with a result in the store (and one per fast recipe that trained
    it): what it costs and what it buys, at the input it was trained at."""
    profiles = [
        r for r in store.rows("profile") if r["status"] == Status.OK and r["batch_size"] == 128
    ]
    speeds, trains = store.rows("speed"), store.rows("train")
    points = per_point(speeds)
    runs = [r for r in trains if r["status"] in MEASURED]
    book = book_preset(store)  # the preset that would train what is missing
    rows = []
    # the chapters' networks at their book input, then tv:/timm: networks at the input they were
    # measured at (read from the rows: rendering needs neither torchvision's list nor timm)
    networks = {n: (archs.spec(n).image_size, archs.spec(n).family) for n in archs.list_models()}
    for r in [*profiles, *speeds]:
        if ":" in r["model"]:
            networks.setdefault(r["model"], (r["image_size"], r["model"].split(":")[0]))
    for name, (size, family) in networks.items():
        cost = [r for r in profiles if r["model"] == name and r["image_size"] == size]
        timed = [r for r in points if r["model"] == name]
        mine = [r for r in runs if r["model"] == name]
        if not (cost or timed or mine):
            continue
        costs = {"network": name, "input": f"{size} px", "side": size, "family": family}
        if cost:
            c = cost[0]
            costs.update(
                params=c["params"],
                fwd_macs_per_image=c["fwd_macs_per_image"],
                train_mib=c["train_bytes_est_sgd"] / MIB,
            )
        costs.setdefault("train_mib", None)  # a column of every table, counted or not
        costs["infer_point"] = _best(timed, "infer", size)
        costs["infer_best"] = best_text(costs["infer_point"])
        trained = []  # (row label, kind, run)
        run = preset_run(mine)
        if run is not None:
            trained.append((name, "book" if run["preset"] == "book" else "fixed work", run))
            fix = None if learned(run) else lr_fix(run, mine)
            if fix is not None:  # labelled: the smallest change of the rate that makes it learn
                side = f"{run['resize'] or 28} px"
                label = f"{name}, lr {fix['lr']:g} (the book's lr stays at chance at {side})"
                trained.append((label, "fixed work", fix))
        for recipe, fast in fast_recipes(mine).items():  # the median over seeds
            median = sorted(fast, key=lambda r: r["test_acc"])[(len(fast) - 1) // 2]
            seeds = plural(len(fast), "seed") + (", median" if len(fast) > 1 else "")
            trained.append((f"{name}, {recipe} ({seeds})", "fast", median))
        if not trained:
            rows.append(
                {
                    "model": name,
                    **costs,
                    "accuracy": untrained(name, book),
                }
            )
        for label, kind, run in trained:
            history = store.details("train", run["model"], run["config"], "history")
            swept = swept_point(run, timed)
            rows.append(
                {
                    "model": label,
                    **costs,
                    "kind": kind,
                    "test_acc": run["test_acc"],
                    "preset": run["preset"],
                    "trained_input": f"{run['resize'] or 28} px",
                    "trained_macs": run.get("fwd_macs_per_image"),
                    "trained_params": run.get("params"),
                    "train_speed": train_speed(run, swept, history),
                    "train_swept": swept,
                    "train_cv": throughput_cv(history),
                    "run": run,
                    "accuracy": run_text(run),
                    "to_80": run.get("time_to_80_s"),
                    "evaluated_at_end": evaluated_at_end(run),
                }
            )
    return pd.DataFrame(rows)


TRADEOFF_COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("test_acc", "test accuracy", fmt_percent),
    *TRAINED_COLUMNS[:3],
    *COST_COLUMNS,
    ("accuracy", "how trained", fmt_text),
]


def write_tradeoffs(store: Store, out_dir: Path) -> list[Path]:
    """Accuracy beside every cost of each trained network, best accuracy first."""
    table = headline(store)
    if "test_acc" not in table:
        return []
    table = table.dropna(subset=["test_acc"]).sort_values("test_acc", ascending=False)
    text = (
        "# Accuracy against cost\n\n"
        f"{CONVENTIONS} Accuracy: the run named in each row, at the input it was trained at "
        "(a preset's fixed work says what that work buys, not what the book's 10 epochs "
        "reach).\n\n" + markdown(table, TRADEOFF_COLUMNS) + "\n"
    )
    written = [out_dir / "tradeoffs.md", out_dir / "tradeoffs.csv"]
    atomic_write(written[0], text)
    atomic_write(written[1], table.to_csv(index=False))
    return written
