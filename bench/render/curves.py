"""Training figures rendered from the results store only: test accuracy after each epoch of
each network's preset run and of the fast recipe's runs, and the fast recipes' time to
accuracy against their goal."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bench.render.figure import CHANCE, colour, log_seconds, save
from bench.render.training import fast_recipes, preset_run
from bench.schema import ALLOCATED, MEASURED
from bench.store import Store


def _curves(store: Store) -> pd.DataFrame:
    """Evaluation points of each network's preset run and of the fast recipe's runs."""
    runs = [r for r in store.rows("train") if r["status"] in MEASURED]
    chosen = [
        r
        for name in dict.fromkeys(r["model"] for r in runs)
        if (r := preset_run([x for x in runs if x["model"] == name]))
    ]
    chosen += [r for r in runs if r["fast_recipe"]]
    points = []
    for run in chosen:
        fast = run["fast_recipe"]
        recipe = f"{_recipe(run)}, seed {run['seed']}" if fast else run["techniques"]
        label = f"{run['model']} @ {run['resize'] or 28} px, {recipe} ({run['work']})"
        for point in store.details("train", run["model"], run["config"], "history"):
            points.append({**point, "label": label, "fast": fast, "model": run["model"]})
    return pd.DataFrame(points)


CURVE_AXES = (
    ("train_s", "training time (s, measured; evaluation excluded; log)"),
    ("wall_s", "wall clock (s, measured: training and evaluation; log)"),
)


def training_curves(store: Store, out_dir: Path) -> list[Path]:
    """Test accuracy after each epoch against training time and against wall clock (training
    and evaluation), one line per run: the fast recipe solid, the others dashed."""
    curves = _curves(store)
    if curves.empty:
        return []
    figure, panels = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    for axes, (x, xlabel) in zip(panels, CURVE_AXES, strict=True):
        for label, group in curves.groupby("label", sort=False):
            fast = bool(group["fast"].iloc[0])
            axes.plot(
                group[x],
                100 * group["test_acc"],
                "-" if fast else "--",
                marker="o",
                markersize=3,
                linewidth=2 if fast else 1,
                label=label,
                color=colour(group["model"].iloc[0]),
            )
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
        log_seconds(axes)
        axes.set_xlabel(xlabel)
        axes.set_ylim(0, 100)
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("test accuracy (%) after each epoch")
    panels[0].set_title("Against training time", fontsize=10)
    panels[1].set_title("Against wall clock: time to accuracy", fontsize=10)
    panels[1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save(figure, out_dir, "training_curves")


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
    """Time to accuracy of runs on a schedule of their own: each seed of each fast recipe, and
    the book's loop on such a schedule, test accuracy at each evaluation against the clock its
    device's goal is read on (GOALS)."""
    runs = [
        r
        for r in store.rows("train")
        if r["status"] in MEASURED
        and r["epochs"] is not None
        and (r["fast_recipe"] or r["techniques"] == "-")
    ]
    if not runs:
        return []
    # a GPU's run measures the memory of CUDA's allocator
    accuracy, seconds, clock, label = GOALS[
        "gpu" if all(r["memory_kind"] == ALLOCATED for r in runs) else "cpu"
    ]
    figure, axes = plt.subplots(figsize=(9, 5))
    names = list(dict.fromkeys(_recipe(r) for r in runs))
    for run in runs:
        name = _recipe(run)
        points = pd.DataFrame(store.details("train", run["model"], run["config"], "history"))
        axes.plot(
            points[clock],
            100 * points["test_acc"],
            "-" if run["fast_recipe"] else "--",
            marker="o",
            markersize=4,
            color=plt.cm.tab10.colors[names.index(name) % 10],
            label=f"{run['model']}, {name}, {run['preset']} preset, seed {run['seed']}",
        )
    axes.axhline(accuracy, color="0.4", linestyle=":", linewidth=1)
    axes.axvline(seconds, color="0.4", linestyle=":", linewidth=1)
    axes.annotate(
        f"goal: {accuracy:g}% within {seconds:g} s",
        (seconds, accuracy),
        fontsize=8,
        xytext=(4, 4),
        textcoords="offset points",
        color="0.3",
    )
    log_seconds(axes)
    axes.set_xlabel(label)
    axes.set_ylabel("test accuracy (%, measured)")
    axes.set_ylim(max(CHANCE, min(80.0, axes.get_ylim()[0])), 100)
    axes.grid(alpha=0.3)
    devices = sorted({r["device_name"] for r in runs})
    axes.set_title(
        f"Time to accuracy on Fashion-MNIST ({', '.join(devices)}): a point per evaluation",
        fontsize=10,
    )
    axes.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save(figure, out_dir, "fast_recipe")
