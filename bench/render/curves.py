"""Training figures rendered from the results store only: test accuracy after each epoch of
the book's nine networks' preset runs, and the fast recipes' time to accuracy against their
goal."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import archs
from bench.render.figure import CHANCE, colour, log_seconds, place_labels, preset_words, save
from bench.render.training import BOOK_PRESETS, fast_recipes, preset_run
from bench.schema import ALLOCATED, MEASURED
from bench.store import Store


def _curves(store: Store) -> pd.DataFrame:
    """Evaluation points of each of the book's nine networks' preset run (its book recipe
    under the preset closest to the book's), labelled by network, and by preset where that is
    a budget's fixed work."""
    runs = [r for r in store.rows("train") if r["status"] in MEASURED]
    points = []
    for name in archs.BOOK_MODELS:
        run = preset_run([r for r in runs if r["model"] == name])
        if run is None:
            continue
        budget = "" if run["preset"] in BOOK_PRESETS else f" ({run['preset']} preset)"
        for point in store.details("train", run["model"], run["config"], "history"):
            points.append({**point, "label": name + budget, "model": name, "preset": run["preset"]})
    return pd.DataFrame(points)


def curves_figure(store: Store) -> plt.Figure | None:
    """Test accuracy after each epoch against training time, one line per network of the
    book's nine, each named at its last point."""
    curves = _curves(store)
    if curves.empty:
        return None
    figure, axes = plt.subplots(figsize=(9, 5.5))
    for level, text in ((CHANCE, "chance"), (90, "90%")):
        axes.axhline(level, color="0.5", linestyle=":", linewidth=0.8)
        axes.annotate(
            text,
            (0, level),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            xytext=(2, 2),
            textcoords="offset points",
            color="0.3",
        )
    ends = []
    for label, group in curves.groupby("label", sort=False):
        axes.plot(
            group["train_s"],
            100 * group["test_acc"],
            marker="o",
            markersize=3,
            linewidth=1.2,
            color=colour(group["model"].iloc[0]),
        )
        ends.append((group["train_s"].iloc[-1], 100 * group["test_acc"].iloc[-1], label))
    log_seconds(axes)
    axes.set_xlim(curves["train_s"].min() / 1.5, curves["train_s"].max() * 6)  # room for names
    axes.set_ylim(0, 100)
    axes.set_xlabel("training time (s, measured; evaluation excluded; log)")
    axes.set_ylabel("test accuracy (%) after each epoch")
    axes.set_title(
        "Test accuracy after each epoch: the book's nine networks "
        f"({preset_words(curves['preset'])})",
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    place_labels(axes, *map(list, zip(*ends, strict=True)))
    return figure


def training_curves(store: Store, out_dir: Path) -> list[Path]:
    figure = curves_figure(store)
    return save(figure, out_dir, "training_curves") if figure is not None else []


def _recipe(run: dict) -> str:
    """The name of a scheduled run's recipe: a fast recipe's, or the book's loop."""
    (name,) = fast_recipes([run]) or ["the book's loop"]
    return name


# The fast recipe's goals, test accuracy (%) within seconds: on a CPU of wall clock (training
# and evaluation), on a GPU of training alone; each with the clock it is read on.
GOALS = {
    "cpu": (94.0, 300.0, "wall_s", "wall clock (s, measured: training and evaluation; log)"),
    "gpu": (
        94.0,
        5.0,
        "train_s",
        "training time (s, measured: without evaluation or compilation; log)",
    ),
}


def fast_recipe(store: Store, out_dir: Path) -> list[Path]:
    figure = fast_recipe_figure(store)
    return save(figure, out_dir, "fast_recipe") if figure is not None else []


def fast_recipe_figure(store: Store) -> plt.Figure | None:
    """Time to accuracy of runs on a schedule of their own: each seed of each fast recipe, and
    the book's loop on such a schedule, test accuracy at each evaluation against the clock its
    device's goal is read on (GOALS); a colour and a legend entry per recipe."""
    runs = [
        r
        for r in store.rows("train")
        if r["status"] in MEASURED
        and r["epochs"] is not None
        and (r["fast_recipe"] or r["techniques"] == "-")
    ]
    if not runs:
        return None
    # a GPU's run measures the memory of CUDA's allocator
    accuracy, seconds, clock, label = GOALS[
        "gpu" if all(r["memory_kind"] == ALLOCATED for r in runs) else "cpu"
    ]
    figure, axes = plt.subplots(figsize=(9, 5))
    recipes: dict[tuple[str, str], list[dict]] = {}
    for run in runs:  # one colour and legend entry per recipe, a line per seed
        recipes.setdefault((run["model"], _recipe(run)), []).append(run)
    for number, ((model, name), seeds) in enumerate(recipes.items()):
        seeds_said = f"{len(seeds)} seeds" if len(seeds) > 1 else "1 seed"
        for i, run in enumerate(seeds):
            points = pd.DataFrame(store.details("train", model, run["config"], "history"))
            axes.plot(
                points[clock],
                100 * points["test_acc"],
                "-" if run["fast_recipe"] else "--",
                marker="o",
                markersize=3,
                linewidth=1,
                color=plt.cm.tab10.colors[number % 10],
                label=f"{model}, {name.removeprefix('fast recipe, ')} ({seeds_said})"
                if i == 0
                else None,
            )
    axes.axhline(accuracy, color="0.4", linestyle=":", linewidth=1)
    axes.axvline(seconds, color="0.4", linestyle=":", linewidth=1)
    axes.annotate(
        f"the fast recipe's goal: {accuracy:g}% within {seconds:g} s",
        (seconds, accuracy),
        fontsize=8,
        xytext=(4, 4),
        textcoords="offset points",
        color="0.3",
    )
    log_seconds(axes)
    left, right = axes.get_xlim()
    axes.set_xlim(min(left, seconds / 2), max(right, seconds * 6))  # the goal and its words
    axes.set_xlabel(label)
    axes.set_ylabel("test accuracy (%, measured)")
    axes.set_ylim(max(CHANCE, min(80.0, axes.get_ylim()[0])), 100)
    axes.grid(alpha=0.3)
    devices = sorted({r["device_name"] for r in runs})
    axes.set_title(
        f"Time to accuracy on {', '.join(devices)} ({preset_words([r['preset'] for r in runs])}):"
        " the fast recipes (solid) and the book's loop on their schedule (dashed)",
        fontsize=9,
    )
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    return figure
