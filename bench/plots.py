"""Figures rendered from the results store only (matplotlib, PNG and SVG): nothing here measures.

Every figure's title names what is plotted and how it was obtained; the source rows are the
tables of the other report pages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd

from bench.report import book_rank, budget_text, headline
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
        figure.savefig(partial, format=suffix[1:], dpi=120, bbox_inches="tight",
                       metadata={"Date": None} if suffix == ".svg" else None)  # fmt: skip
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


def _accuracy_against(table: pd.DataFrame, cost: str, label: str, profile: str, out_dir: Path,
                      stem: str) -> list[Path]:  # fmt: skip
    points = table.dropna(subset=[cost, "test_acc"])
    if points.empty:
        return []
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.scatter(points[cost], 100 * points["test_acc"], color="tab:blue")
    for _, row in points.iterrows():
        axes.annotate(row["model"], (row[cost], 100 * row["test_acc"]), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")  # fmt: skip
    front = pareto(points, cost, "test_acc")
    axes.step(front[cost], 100 * front["test_acc"], where="post", color="tab:red",
              label="Pareto frontier")  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel(label)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"Accuracy against cost ({profile or 'stage commands'})", fontsize=10)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return _save(figure, out_dir, stem)


def _per_model_lines(frame: pd.DataFrame, x: str, y: str, panels: str, xlabel: str,
                     ylabel: str, title: str, out_dir: Path, stem: str,
                     scale: Callable[[Any], Any] = lambda v: v) -> list[Path]:  # fmt: skip
    """One panel per value of ``panels``, one line per (model, line label) in each."""
    if frame.empty:
        return []
    names = list(dict.fromkeys(frame[panels]))
    models = list(dict.fromkeys(frame["model"]))
    colours = {model: plt.cm.tab20.colors[i % 20] for i, model in enumerate(models)}
    figure, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        panel = frame[frame[panels] == name]
        for (model, line), group in panel.groupby(["model", "line"], sort=False):
            group = group.sort_values(x)
            style = "--" if line != "PyTorch" else "-"
            ax.plot(group[x], scale(group[y]), style, marker="o", markersize=3,
                    color=colours[model], label=f"{model} ({line})")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {name}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    return _save(figure, out_dir, stem)


def _speed_frame(store: Store) -> pd.DataFrame:
    rows = [r for r in store.rows("speed") if r["status"] == "ok"]
    rows += [{**r, "mode": "infer", "line": f"onnxruntime, {r['provider']}"}
             for r in store.rows("onnx") if r["status"] == "ok"]  # fmt: skip
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["line"] = frame["line"].fillna("PyTorch") if "line" in frame else "PyTorch"
    frame["panel"] = frame["mode"].map({"infer": "inference", "train": "training"})
    frame["panel"] += ", " + frame["device_name"].astype(str)
    return frame


def _curves(store: Store) -> pd.DataFrame:
    """Evaluation points of the runs that are not exercise variants: each network's book
    recipe, and the fast recipe with every technique on (its ablation has its own table)."""
    from bench.train import FAST

    points = []
    for run in store.rows("train"):
        tricks = run.get("tricks", "-")
        if run["status"] not in ("ok", "diverged") or run["config"]["short"]:
            continue
        if tricks not in ("-", FAST.names()):
            continue
        recipe = "book's loop" if tricks == "-" else f"fast recipe, seed {run['seed']}"
        label = f"{run['model']}, {recipe}, lr {run['lr']} ({run['config']['name']}: " \
            f"{budget_text(run)})"  # fmt: skip
        for point in store.details("train", run["model"], run["config"], "history"):
            points.append({**point, "label": label, "fast": tricks != "-"})
    return pd.DataFrame(points)


def _curve_plot(curves: pd.DataFrame, x: str, xlabel: str, title: str, out_dir: Path,
                stem: str) -> list[Path]:  # fmt: skip
    """Test accuracy against ``x``, one line per run: fast recipe solid, book's loop dashed."""
    if curves.empty:
        return []
    figure, axes = plt.subplots(figsize=(11, 5))
    axes.set_prop_cycle(color=plt.cm.tab20.colors)  # a colour per run for up to 20 runs
    for label, group in curves.groupby("label", sort=False):
        fast = bool(group["fast"].iloc[0])
        axes.plot(group[x], 100 * group["test_acc"], "-" if fast else "--", marker="o",
                  markersize=3, linewidth=2 if fast else 1, label=label)  # fmt: skip
    for target in (90, 92):
        axes.axhline(target, color="grey", linewidth=0.5)
    axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, out_dir, stem)


def training_curves(store: Store, out_dir: Path) -> list[Path]:
    """Test accuracy against training time (evaluation excluded)."""
    return _curve_plot(_curves(store), "train_s", "training time (s, measured; evaluation "
                       "excluded; log)", "Training curves: test accuracy at each evaluation "
                       "point", out_dir, "training_curves")  # fmt: skip


def time_to_accuracy(store: Store, out_dir: Path) -> list[Path]:
    """Accuracy against wall-clock seconds (training and evaluation), fast recipe against book."""
    return _curve_plot(_curves(store), "wall_s", "wall clock (s, measured: training and "
                       "evaluation; log)", "Time to accuracy: the fast recipe (solid) against "
                       "the book's loop (dashed); lines at 90% and 92%", out_dir,
                       "time_to_accuracy")  # fmt: skip


def conv_vs_fc(store: Store, out_dir: Path) -> list[Path]:
    """Shares of parameters and forward MACs in conv, fully connected and other layers
    (counted), one bar per network, its total at the end."""
    rows = [r for r in store.rows("profile") if r["status"] == "ok" and r["batch_size"] == 128]
    if not rows:
        return []
    frame = pd.DataFrame(rows).drop_duplicates("model")
    frame = frame.sort_values("model", key=lambda m: m.map(book_rank))
    labels = frame["model"] + " @" + frame["image_size"].astype(str)
    figure, panels = plt.subplots(1, 2, figsize=(12, 0.28 * len(frame) + 1.5), sharey=True)
    splits = (
        ("parameters", "params", 1e6, "M",
         {"conv": "params_conv", "fully connected": "params_linear",
          "norm and other": ("params_norm", "params_other")}),
        ("forward MACs per image", "fwd_macs_per_image", 1e9, "G",
         {"conv": "fwd_conv_macs_per_image", "fully connected": "fwd_linear_macs_per_image",
          "norm and other": ("fwd_other_macs_per_image",)}),
    )  # fmt: skip
    for axes, (title, total, unit, suffix, parts) in zip(panels, splits, strict=True):
        left = pd.Series(0.0, index=frame.index)
        for name, columns in parts.items():
            columns = (columns,) if isinstance(columns, str) else columns
            share = 100 * frame[list(columns)].fillna(0).sum(axis=1) / frame[total]
            axes.barh(labels, share, left=left, label=name)
            left += share
        for y, value in enumerate(frame[total]):
            axes.annotate(f"{value / unit:.3g} {suffix}", (101, y), va="center", fontsize=6,
                          annotation_clip=False)  # fmt: skip
        axes.set_xlim(0, 100)
        axes.set_xlabel("share of the total (%)")
        axes.set_title(f"{title} (counted; total at the right)", fontsize=10, pad=22)
        axes.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3,
                    frameon=False)  # fmt: skip
        axes.tick_params(axis="y", labelsize=7)
    panels[0].invert_yaxis()
    return _save(figure, out_dir, "conv_vs_fc")


def roofline(store: Store, out_dir: Path) -> list[Path]:
    """Achieved forward FLOP/s (measured inference at each batch size) against arithmetic
    intensity (counted FLOPs over estimated bytes moved), under the device's roof."""
    machines = [r for r in store.rows("machine") if r["status"] == "ok"]
    intensity = {r["model"]: r["fwd_flops_per_byte"] for r in store.rows("profile")
                 if r["status"] == "ok" and r["batch_size"] == 128}  # fmt: skip
    timed = [
        r
        for r in store.rows("speed")
        if r["status"] == "ok" and r["mode"] == "infer" and r["model"] in intensity
    ]
    if not (machines and timed):
        return []
    machine = machines[-1]
    peak, bandwidth = machine["peak_flops_per_s"], machine["bandwidth_bytes_per_s"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    x = [0.1, peak / bandwidth, 1e4]
    axes.plot(x, [min(peak, bandwidth * i) for i in x], color="black",
              label=f"roof: {peak / 1e9:,.0f} GFLOP/s ({machine['peak_source']}), "
                    f"{bandwidth / 1e9:,.1f} GB/s ({machine['bandwidth_source']})")  # fmt: skip
    frame = pd.DataFrame(timed)
    for model, group in frame.groupby("model", sort=False):
        best = group.loc[group["achieved_flops_per_s"].idxmax()]
        axes.scatter(intensity[model], best["achieved_flops_per_s"], s=15)
        axes.annotate(f"{model} (batch {best['batch_size']})",
                      (intensity[model], best["achieved_flops_per_s"]), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")  # fmt: skip
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("forward FLOPs per byte moved (counted FLOPs / estimated bytes, batch 128)")
    axes.set_ylabel("achieved FLOP/s (measured inference, best batch)")
    axes.set_title(f"Roofline: {machine['model']}", fontsize=10)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return _save(figure, out_dir, "roofline")


def write_plots(store: Store, out_dir: Path, profile: str | None) -> list[Path]:
    """Every figure the store has data for, into ``out_dir``."""
    table = headline(store)
    written: list[Path] = []
    if "test_acc" in table:
        table["fwd_gflops"] = 2 * table["fwd_macs_per_image"] / 1e9
        written += _accuracy_against(table, "fwd_gflops", "forward GFLOPs per image (counted; "
                                     "log)", profile, out_dir, "accuracy_vs_gflops")  # fmt: skip
        written += _accuracy_against(table, "params", "parameters (counted; log)", profile,
                                     out_dir, "accuracy_vs_params")  # fmt: skip
    speed = _speed_frame(store)
    if not speed.empty:
        written += _per_model_lines(speed, "batch_size", "images_per_s", "panel", "batch size",
                                    "images/s (measured, median step)", "Throughput", out_dir,
                                    "throughput_vs_batch")  # fmt: skip
        memory = speed[speed["line"] == "PyTorch"].dropna(subset=["peak_bytes"])
        memory = memory[memory["peak_bytes"] > 0]
        written += _per_model_lines(memory, "batch_size", "peak_bytes", "panel", "batch size",
                                    "peak memory (MiB, measured)", "Peak memory", out_dir,
                                    "memory_vs_batch", scale=lambda v: v / MIB)  # fmt: skip
    written += training_curves(store, out_dir)
    written += time_to_accuracy(store, out_dir)
    written += conv_vs_fc(store, out_dir)
    written += roofline(store, out_dir)
    return written
