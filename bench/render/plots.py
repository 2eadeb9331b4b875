"""Figures rendered from the results store only (matplotlib, PNG and SVG): nothing here measures.

Every figure's title names what is plotted and how it was obtained; the source rows are the
tables of the other report pages.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter

import archs
from bench.render.curves import fast_recipe, training_curves
from bench.render.figure import (
    CHANCE,
    KINDS,
    MIB,
    colour,
    family_colour,
    pareto,
    place_labels,
    preset_words,
    save,
)
from bench.render.format import book_rank
from bench.render.headline import headline
from bench.render.setups import BOOK_SETUP, book_speed, fp32_roof, per_point, speed_setup
from bench.render.training import BOOK_PRESETS, PRESET_RANK
from bench.schema import Status
from bench.store import Store


def _bought(table: pd.DataFrame, cost: str) -> pd.DataFrame:
    """The runs an accuracy figure shows, each with its marker's kind and its label: every
    network's book recipe (and, labelled, the learning rate that makes a stuck one learn) and
    its most accurate fast recipe. A budget's fixed work, which buys less by design, only where
    no network has a book-recipe run."""
    if cost not in table or "test_acc" not in table:
        return pd.DataFrame()
    runs = table.dropna(subset=[cost, "test_acc"])
    plain = runs[runs["kind"] != "fast"]
    for presets in (BOOK_PRESETS, *((p,) for p in PRESET_RANK if p not in BOOK_PRESETS)):
        book = plain[plain["preset"].isin(presets)]  # the presets closest to the book's
        if len(book):
            break
    fast = runs[runs["kind"] == "fast"].sort_values("test_acc").groupby("network").tail(1)
    fixed = book["model"] != book["network"]
    lrs = [run["lr"] for run in book["run"]]
    budget = presets[0] not in BOOK_PRESETS
    return pd.concat(
        [
            book.assign(
                mark=["budget" if budget else "lr fix" if f else "book" for f in fixed],
                label=[
                    f"{n}, lr {lr:g}" if f else n
                    for n, lr, f in zip(book["network"], lrs, fixed, strict=True)
                ],
            ),
            fast.assign(mark="fast", label=[f"{n}, fast recipe" for n in fast["network"]]),
        ]
    )


def accuracy_figure(table: pd.DataFrame, cost: str, label: str, what: str) -> plt.Figure | None:
    """Accuracy against ``cost`` for the runs ``_bought`` picks: one colour per family, one
    marker per kind of run, each point labelled beside it, the Pareto frontier and chance."""
    points = _bought(table, cost)
    if points.empty:
        return None
    figure, axes = plt.subplots(figsize=(9, 5.5))
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
    for (family, mark), group in points.groupby(["family", "mark"], sort=False):
        axes.scatter(
            group[cost],
            100 * group["test_acc"],
            marker=KINDS[mark][0],
            s=70 if mark == "fast" else 30,
            color=family_colour(family),
            zorder=3,
        )
    marks = [
        plt.Line2D([], [], marker=m, linestyle="", color="0.4", label=text)
        for mark, (m, text) in KINDS.items()
        if mark in set(points["mark"])
    ]
    axes.legend(handles=marks + axes.get_legend_handles_labels()[0], fontsize=8, loc="best")
    axes.set_xscale("log")
    axes.set_xlim(points[cost].min() / 2, points[cost].max() * 4)  # room for the labels
    axes.set_ylim(0, 100)
    axes.set_xlabel(label)
    axes.set_ylabel("test accuracy (%, measured)")
    presets = list(points.loc[points["mark"] != "fast", "preset"])
    shown = [f"the book's recipe ({preset_words(presets)})"] if presets else []
    shown += ["the fast recipe"] if "fast" in set(points["mark"]) else []
    axes.set_title(f"{what}: {' and '.join(shown)}", fontsize=10)
    axes.grid(alpha=0.3)
    place_labels(
        axes, points[cost].tolist(), (100 * points["test_acc"]).tolist(), list(points["label"])
    )
    return figure


def per_model_lines(
    frame: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, title: str
) -> plt.Figure | None:
    """The book's nine networks, one panel per (device and setup, mode): a row of panels per
    device and setup, in the order stored, inference left and training right; one line per
    (network, line label), PyTorch's solid and named at its last point, others dashed."""
    frame = frame[frame["model"].isin(archs.BOOK_MODELS)]
    if frame.empty:
        return None
    rows = list(dict.fromkeys(frame["setting"]))
    columns = [m for m in ("inference", "training") if m in set(frame["mode_words"])]
    figure, axes = plt.subplots(
        len(rows), len(columns), figsize=(6 * len(columns), 4.5 * len(rows)), squeeze=False
    )
    styles = {}
    for (setting, mode), ax in zip(itertools.product(rows, columns), axes.flat, strict=True):
        panel = frame[(frame["setting"] == setting) & (frame["mode_words"] == mode)]
        if panel.empty:
            ax.set_visible(False)
            continue
        ends = []
        for (model, line), group in panel.groupby(["model", "line"], sort=False):
            group = group.sort_values(x)
            style = "-" if line == "PyTorch" else "--"
            styles[style] = "PyTorch" if style == "-" else "onnxruntime (CPU provider)"
            ax.plot(group[x], group[y], style, marker="o", markersize=3, color=colour(model))
            if line == "PyTorch":
                ends.append((group[x].iloc[-1], group[y].iloc[-1], model))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlim(panel[x].min() / 1.5, panel[x].max() * 5)  # room for the names
        ax.set_ylim(panel[y].min() / 2, panel[y].max() * 2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{mode}, {setting}", fontsize=10)
        ax.grid(alpha=0.3)
        if ends:
            place_labels(ax, *map(list, zip(*ends, strict=True)))
    handles = [plt.Line2D([], [], linestyle=s, color="0.3", label=t) for s, t in styles.items()]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    return figure


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


def conv_vs_fc(store: Store, out_dir: Path) -> list[Path]:
    """Shares of parameters and forward MACs in conv, fully connected and other layers
    (counted), one bar per network of the book's nine at its book input, its total at the
    end, in one unit per panel."""
    rows = [
        r
        for r in store.rows("profile")
        if r["status"] == Status.OK
        and r["batch_size"] == 128
        and r["model"] in archs.BOOK_MODELS
        and r["image_size"] == archs.spec(r["model"]).image_size
    ]
    if not rows:
        return []
    frame = pd.DataFrame(rows).drop_duplicates("model")
    frame = frame.sort_values("model", key=lambda m: m.map(book_rank))
    labels = frame["model"] + " (" + frame["image_size"].astype(str) + " px)"
    figure, panels = plt.subplots(1, 2, figsize=(12, 0.4 * len(frame) + 1.8), sharey=True)
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
            1e6,
            "M",
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
                f"{value / unit:,.2f} {suffix}",
                (101, y),
                va="center",
                fontsize=8,
                annotation_clip=False,
            )
        axes.set_xlim(0, 100)
        axes.set_xlabel("share of the total (%)")
        axes.set_title(f"{title} (counted; total at the right)", fontsize=10, pad=22)
        axes.legend(
            fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False
        )
        axes.tick_params(axis="y", labelsize=8)
    panels[0].invert_yaxis()
    return save(figure, out_dir, "conv_vs_fc")


ROOFLINE_BATCH = 128  # the batch of the profile's intensities and of the timed points


def roofline_figure(store: Store) -> plt.Figure | None:
    """Achieved forward FLOP/s (measured inference, eager fp32) against arithmetic intensity
    (counted FLOPs over estimated bytes moved), both at batch 128 and the same input side, under
    the device's fp32 roof, each roof and point named on the plot; networks not timed at batch
    128 are left out."""
    machine = fp32_roof(store)
    if machine is None:
        return None
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
        return None
    peak, bandwidth = machine["peak_flops_per_s"] / 1e9, machine["bandwidth_bytes_per_s"] / 1e9
    ridge = peak / bandwidth
    xs = [intensity[(r["model"], r["image_size"])] for r in timed]
    ys = [r["achieved_flops_per_s"] / 1e9 for r in timed]
    low, high = min(*xs, ridge) / 4, max(*xs, ridge) * 4  # the data and the ridge, no more
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot([low, ridge, high], [bandwidth * low, peak, peak], color="black", linewidth=1.2)
    axes.set_xscale("log")
    axes.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    axes.xaxis.set_major_formatter(plain)
    axes.yaxis.set_major_formatter(plain)
    axes.yaxis.set_minor_formatter(plain)
    axes.set_xlim(low, high)
    axes.set_ylim(min(*ys, bandwidth * low) / 1.5, peak * 2)
    roofs = (  # each roof named on it: the flat one at its right end, the slope below the ridge
        (f"compute roof: {peak:,.0f} GFLOP/s", (high, peak), (-4, 4), "bottom"),
        (f"memory roof: {bandwidth:,.1f} GB/s", (ridge, peak), (-6, 0), "top"),
    )
    for text, at, offset, va in roofs:
        axes.annotate(
            text, at, xytext=offset, textcoords="offset points", ha="right", va=va, fontsize=8
        )
    for row, x, y in zip(timed, xs, ys, strict=True):
        axes.scatter(x, y, s=18, color=colour(row["model"]), zorder=3)
    place_labels(axes, xs, ys, [f"{r['model']} ({r['image_size']} px)" for r in timed])
    axes.set_xlabel(f"forward FLOPs per byte moved (counted / estimated, batch {ROOFLINE_BATCH})")
    axes.set_ylabel(f"achieved GFLOP/s (measured inference, batch {ROOFLINE_BATCH})")
    axes.set_title(
        f"Roofline: {machine['model']}, eager fp32; roofs: {machine['peak_source']}; "
        f"{machine['bandwidth_source']}",
        fontsize=8,
        wrap=True,
    )
    axes.grid(alpha=0.3)
    return figure


ACCURACY_FIGURES = (  # cost, its axis, what the figure asks, file stem
    (
        "trained_macs",
        "forward MACs per image at the input trained at (counted; log)",
        "What a network buys for its compute",
        "accuracy_vs_macs",
    ),
    (
        "trained_params",
        "parameters of the network as trained (counted; log)",
        "What a network buys for its parameters",
        "accuracy_vs_params",
    ),
)


SPEED_FIGURES = (  # file stem, column, its axis, the title, its scale
    (
        "throughput_vs_batch",
        "images_per_s",
        "images/s (measured, median step)",
        "Throughput against batch size: the book's nine networks (the others: speed.md)",
        lambda v: v,
    ),
    (
        "memory_vs_batch",
        "peak_bytes",
        "peak memory over the weights (MiB, measured)",
        "Peak memory of a step against batch size: the book's nine networks (the others: speed.md)",
        lambda v: v / MIB,
    ),
)


def write_plots(store: Store, out_dir: Path, preset: str | None) -> list[Path]:
    """Every figure the store has data for, into ``out_dir``."""
    table = headline(store)
    written: list[Path] = []
    for cost, label, what, stem in ACCURACY_FIGURES:
        figure = accuracy_figure(table, cost, label, what)
        if figure is not None:
            written += save(figure, out_dir, stem)
    speed = _speed_frame(store)
    for stem, y, ylabel, title, scale in SPEED_FIGURES:
        if y not in speed:  # the onnx stage's rows alone have no memory
            continue
        lines = speed.dropna(subset=[y])
        lines = lines.assign(**{y: scale(lines[y])})
        lines = lines[lines[y] > 0]  # a log axis
        figure = per_model_lines(lines, "batch_size", y, "batch size", ylabel, title)
        written += save(figure, out_dir, stem) if figure is not None else []
    written += training_curves(store, out_dir)
    written += fast_recipe(store, out_dir)
    written += conv_vs_fc(store, out_dir)
    roof = roofline_figure(store)
    written += save(roof, out_dir, "roofline") if roof is not None else []
    return written
