"""Figures rendered from the results store only (matplotlib, PNG and SVG): nothing here measures.

Every figure's title names what is plotted and how it was obtained; the source rows are the
tables of the other report pages.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.render.format import book_rank
from bench.render.headline import fast_recipes, headline
from bench.render.setups import BOOK_SETUP, book_speed, fp32_roof, per_point, speed_setup
from bench.schema import ALLOCATED, MEASURED, Status
from bench.store import Store

MIB = 2**20
matplotlib.rcParams["svg.hashsalt"] = "cnnbench"  # the same store renders the same SVG bytes


def _save(figure: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".svg"):
        path = out_dir / (stem + suffix)
        partial = path.with_name(path.name + ".partial")
        figure.savefig(
            partial,
            format=suffix[1:],
            dpi=120,
            bbox_inches="tight",
            metadata={"Date": None} if suffix == ".svg" else None,
        )
        partial.replace(path)
        written.append(path)
    plt.close(figure)
    return written


def pareto(points: pd.DataFrame, cost: str, value: str) -> pd.DataFrame:
    """The rows no other row beats: lower ``cost`` and higher ``value`` (ties keep the first)."""
    best, keep = -float("inf"), []
    for index, row in points.sort_values([cost, value], ascending=[True, False]).iterrows():
        if row[value] > best:
            best = row[value]
            keep.append(index)
    return points.loc[keep]


CHANCE = 10.0  # test accuracy (%) of a guess among ten balanced classes
KINDS = {
    "book": ("s", "the book's recipe, in full"),
    "fixed work": ("o", "the book's recipe on a preset's fixed work"),
    "fast": ("*", "the fast recipe (median over seeds)"),
}


def colour(model: str) -> tuple[float, ...]:
    """A network's colour, the same in every figure: the book's nine networks get distinct
    colours, the others colours of a second palette."""
    import archs

    if model in archs.BOOK_MODELS:
        return plt.cm.tab10.colors[archs.BOOK_MODELS.index(model)]
    names = archs.list_models()
    return plt.cm.tab20b.colors[names.index(model) % 20 if model in names else 0]


def family_colour(family: str) -> tuple[float, ...]:
    """A family's colour, the same in every figure (tv/timm: the colour after the chapters')."""
    import archs

    families = list(dict.fromkeys(archs.spec(n).family for n in archs.list_models()))
    place = families.index(family) if family in families else len(families)
    return plt.cm.tab10.colors[place % 10]


def label_heights(
    xs: list[float], ys: list[float], gap: float = 3.0, near: float = 0.12
) -> list[float]:
    """Heights for labels placed right of points on a log x axis: points within ``near``
    decades of each other form a cluster, whose labels keep their points' order and mean height
    but stand at least ``gap`` apart."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    clusters: list[list[int]] = []
    for i in order:
        if clusters and math.log10(xs[i] / xs[clusters[-1][-1]]) <= near:
            clusters[-1].append(i)
        else:
            clusters.append([i])
    heights = list(ys)
    for cluster in clusters:
        ranked = sorted(cluster, key=lambda i: (ys[i], i))
        placed: list[float] = []
        for i in ranked:
            placed.append(max(ys[i], placed[-1] + gap) if placed else ys[i])
        shift = (sum(placed) - sum(ys[i] for i in ranked)) / len(ranked)
        for i, height in zip(ranked, placed, strict=True):
            heights[i] = height - shift
    return heights


def _accuracy_against(
    table: pd.DataFrame, cost: str, label: str, title: str, out_dir: Path, stem: str
) -> list[Path]:
    """Accuracy against ``cost``: one colour per family, one marker per kind of run, a number
    beside each point keyed at the right, the Pareto frontier and the chance line."""
    if cost not in table:  # nothing counted yet
        return []
    points = table.dropna(subset=[cost, "test_acc"]).sort_values(cost).reset_index(drop=True)
    if points.empty:
        return []
    figure, (axes, side) = plt.subplots(1, 2, figsize=(11, 5.5), width_ratios=(3, 1))
    side.axis("off")  # holds the key of the numbered points
    front = pareto(points, cost, "test_acc")
    axes.step(
        front[cost],
        100 * front["test_acc"],
        where="post",
        color="0.6",
        linewidth=1,
        zorder=1,
        label="Pareto frontier",
    )
    axes.axhline(CHANCE, color="0.3", linestyle="--", linewidth=1, label="chance (10%)")
    for family, group in points.groupby("family", sort=False):
        for kind, (marker, _) in KINDS.items():
            mine = group[group["kind"] == kind]
            size = 80 if kind == "fast" else 30
            axes.scatter(
                mine[cost],
                100 * mine["test_acc"],
                marker=marker,
                s=size,
                color=family_colour(family),
                zorder=3,
            )
    heights = label_heights(points[cost].tolist(), (100 * points["test_acc"]).tolist())
    for (number, row), height in zip(points.iterrows(), heights, strict=True):
        axes.annotate(
            str(number + 1),
            (row[cost], 100 * row["test_acc"]),
            fontsize=7,
            xytext=(row[cost] * 1.06, height),
            textcoords="data",
            va="center",
            arrowprops={"arrowstyle": "-", "color": "0.7", "linewidth": 0.5},
        )
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=family_colour(f), label=f)
        for f in dict.fromkeys(points["family"])
    ]
    handles += [
        plt.Line2D([], [], marker=m, linestyle="", color="0.4", label=text)
        for kind, (m, text) in KINDS.items()
        if kind in set(points["kind"])
    ]
    handles += axes.get_legend_handles_labels()[0]
    # the legend sits in the empty band between chance and the lowest accuracies
    axes.legend(
        handles=handles,
        fontsize=7,
        loc="lower right",
        bbox_to_anchor=(1.0, 0.12),
        title="colour: family; marker: run",
        title_fontsize=7,
        ncol=2,
    )
    key = "\n".join(
        f"{i + 1:>2}  {row['model']} @ {row['trained_input']}" for i, row in points.iterrows()
    )
    side.text(0.0, 1.0, key, transform=side.transAxes, fontsize=7, va="top", family="monospace")
    axes.set_xscale("log")
    axes.set_ylim(0, 100)
    axes.set_xlabel(label)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    return _save(figure, out_dir, stem)


def _per_model_lines(
    frame: pd.DataFrame,
    x: str,
    y: str,
    xlabel: str,
    ylabel: str,
    title: str,
    out_dir: Path,
    stem: str,
    scale: Callable[[Any], Any] = lambda v: v,
) -> list[Path]:
    """One panel per (device and setup, mode): a row of panels per device and setup, in the
    order stored, inference left and training right; one line per (model, line label)."""
    if frame.empty:
        return []
    rows = list(dict.fromkeys(frame["setting"]))
    columns = [m for m in ("inference", "training") if m in set(frame["mode_words"])]
    figure, axes = plt.subplots(
        len(rows),
        len(columns),
        figsize=(5 * len(columns) + 2.5, 4.5 * len(rows)),
        squeeze=False,
        layout="constrained",
    )
    for (setting, mode), ax in zip(itertools.product(rows, columns), axes.flat, strict=True):
        panel = frame[(frame["setting"] == setting) & (frame["mode_words"] == mode)]
        if panel.empty:
            ax.set_visible(False)
            continue
        for (model, line), group in panel.groupby(["model", "line"], sort=False):
            group = group.sort_values(x)
            style = "--" if line != "PyTorch" else "-"
            ax.plot(
                group[x],
                scale(group[y]),
                style,
                marker="o",
                markersize=3,
                color=colour(model),
                label=f"{model} ({line})",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{mode}, {setting}", fontsize=10)
        ax.grid(alpha=0.3)
    handles = {}
    for ax in axes.flat:
        handles.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    axes[0][-1].legend(
        handles.values(), handles.keys(), fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0)
    )
    figure.suptitle(title, fontsize=11)
    return _save(figure, out_dir, stem)


def _speed_frame(store: Store) -> pd.DataFrame:
    """The timed rows of PyTorch (one line label, one row per point) and onnxruntime (one per
    provider, beside PyTorch's eager fp32), each with its device and setup."""
    rows = [{**r, "setup": speed_setup(r)} for r in per_point(store.rows("speed"))]
    rows += [
        {**r, "mode": "infer", "setup": BOOK_SETUP, "line": f"onnxruntime, {r['provider']}"}
        for r in store.rows("onnx")
        if r["status"] == Status.OK
    ]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["line"] = frame["line"].fillna("PyTorch") if "line" in frame else "PyTorch"
    frame["mode_words"] = frame["mode"].map({"infer": "inference", "train": "training"})
    frame["setting"] = frame["device_name"].astype(str) + ", " + frame["setup"]
    return frame


def _curves(store: Store) -> pd.DataFrame:
    """Evaluation points of each network's preset run and of the fast recipe's runs."""
    from bench.render.headline import preset_run

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


def _log_seconds(axes: plt.Axes) -> None:
    """A time axis on a log scale (runs that differ a hundredfold share it), ticks in plain
    seconds."""
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())


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
        _log_seconds(axes)
        axes.set_xlabel(xlabel)
        axes.set_ylim(0, 100)
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("test accuracy (%) after each epoch")
    panels[0].set_title("Against training time", fontsize=10)
    panels[1].set_title("Against wall clock: time to accuracy", fontsize=10)
    panels[1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return _save(figure, out_dir, "training_curves")


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
    _log_seconds(axes)
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
    return _save(figure, out_dir, "fast_recipe")


def conv_vs_fc(store: Store, out_dir: Path) -> list[Path]:
    """Shares of parameters and forward MACs in conv, fully connected and other layers
    (counted), one bar per network, its total at the end."""
    rows = [r for r in store.rows("profile") if r["status"] == Status.OK and r["batch_size"] == 128]
    if not rows:
        return []
    frame = pd.DataFrame(rows).drop_duplicates("model")
    frame = frame.sort_values("model", key=lambda m: m.map(book_rank))
    labels = frame["model"] + " @" + frame["image_size"].astype(str)
    figure, panels = plt.subplots(1, 2, figsize=(12, 0.28 * len(frame) + 1.5), sharey=True)
    splits = (
        (
            "parameters",
            "params",
            1e6,
            "M",
            {
                "conv": "params_conv",
                "fully connected": "params_linear",
                "norm and other": ("params_norm", "params_other"),
            },
        ),
        (
            "forward MACs per image",
            "fwd_macs_per_image",
            1e9,
            "G",
            {
                "conv": "fwd_conv_macs_per_image",
                "fully connected": "fwd_linear_macs_per_image",
                "norm and other": ("fwd_other_macs_per_image",),
            },
        ),
    )
    for axes, (title, total, unit, suffix, parts) in zip(panels, splits, strict=True):
        left = pd.Series(0.0, index=frame.index)
        for name, columns in parts.items():
            columns = (columns,) if isinstance(columns, str) else columns
            share = 100 * frame[list(columns)].fillna(0).sum(axis=1) / frame[total]
            axes.barh(labels, share, left=left, label=name)
            left += share
        for y, value in enumerate(frame[total]):
            axes.annotate(
                f"{value / unit:.3g} {suffix}",
                (101, y),
                va="center",
                fontsize=6,
                annotation_clip=False,
            )
        axes.set_xlim(0, 100)
        axes.set_xlabel("share of the total (%)")
        axes.set_title(f"{title} (counted; total at the right)", fontsize=10, pad=22)
        axes.legend(
            fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False
        )
        axes.tick_params(axis="y", labelsize=7)
    panels[0].invert_yaxis()
    return _save(figure, out_dir, "conv_vs_fc")


ROOFLINE_BATCH = 128  # the batch of the profile's intensities and of the timed points


def roofline(store: Store, out_dir: Path) -> list[Path]:
    """Achieved forward FLOP/s (measured inference, eager fp32) against arithmetic intensity
    (counted FLOPs over estimated bytes moved), both at batch 128 and the same input side, under
    the device's fp32 roof; networks not timed at batch 128 are left out."""
    machine = fp32_roof(store)
    if machine is None:
        return []
    intensity = {
        (r["model"], r["image_size"]): r["fwd_flops_per_byte"]
        for r in store.rows("profile")
        if r["status"] == Status.OK and r["batch_size"] == ROOFLINE_BATCH
    }
    timed = [
        r
        for r in book_speed(store.rows("speed"))
        if r["mode"] == "infer"
        and r["batch_size"] == ROOFLINE_BATCH
        and r["device_name"] == machine["model"]
        and (r["model"], r["image_size"]) in intensity
    ]
    if not timed:
        return []
    peak, bandwidth = machine["peak_flops_per_s"], machine["bandwidth_bytes_per_s"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    x = [0.1, peak / bandwidth, 1e4]
    axes.plot(
        x,
        [min(peak, bandwidth * i) for i in x],
        color="black",
        label=f"roof: {peak / 1e9:,.0f} GFLOP/s ({machine['peak_source']}), "
        f"{bandwidth / 1e9:,.1f} GB/s ({machine['bandwidth_source']})",
    )
    for row in timed:
        x = intensity[(row["model"], row["image_size"])]
        axes.scatter(x, row["achieved_flops_per_s"], s=15, color=colour(row["model"]))
        axes.annotate(
            f"{row['model']} ({row['image_size']} px)",
            (x, row["achieved_flops_per_s"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(
        f"forward FLOPs per byte moved (counted FLOPs / estimated bytes, batch {ROOFLINE_BATCH})"
    )
    axes.set_ylabel(f"achieved FLOP/s (measured inference, batch {ROOFLINE_BATCH})")
    axes.set_title(f"Roofline: {machine['model']}, eager fp32", fontsize=10)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return _save(figure, out_dir, "roofline")


def write_plots(store: Store, out_dir: Path, preset: str | None) -> list[Path]:
    """Every figure the store has data for, into ``out_dir``."""
    table = headline(store)
    written: list[Path] = []
    if "test_acc" in table:
        where = f"{preset} preset" if preset else "stage commands"
        written += _accuracy_against(
            table,
            "trained_macs",
            "forward MACs per image at the input trained at (counted; log)",
            f"What a network buys for its compute ({where}; test accuracy, measured)",
            out_dir,
            "accuracy_vs_macs",
        )
        written += _accuracy_against(
            table,
            "params",
            "parameters (counted; log)",
            f"Accuracy against parameters ({where})",
            out_dir,
            "accuracy_vs_params",
        )
    speed = _speed_frame(store)
    if not speed.empty:
        title = "Throughput against batch size (solid: PyTorch, dashed: onnxruntime)"
        written += _per_model_lines(
            speed,
            "batch_size",
            "images_per_s",
            "batch size",
            "images/s (measured, median step)",
            title,
            out_dir,
            "throughput_vs_batch",
        )
    if "peak_bytes" in speed:  # the speed stage's: onnx rows have none
        memory = speed[(speed["line"] == "PyTorch") & (speed["peak_bytes"] > 0)]  # log axis
        written += _per_model_lines(
            memory,
            "batch_size",
            "peak_bytes",
            "batch size",
            "peak memory (MiB, measured)",
            "Peak memory of a step, over the weights in memory",
            out_dir,
            "memory_vs_batch",
            scale=lambda v: v / MIB,
        )
    written += training_curves(store, out_dir)
    written += fast_recipe(store, out_dir)
    written += conv_vs_fc(store, out_dir)
    written += roofline(store, out_dir)
    return written
