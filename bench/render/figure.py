"""What every figure shares: matplotlib without a display, atomic PNG and SVG files, each
network's and family's colour, the Pareto frontier, label placement, a log time axis."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

import archs

MIB = 2**20
matplotlib.rcParams["svg.hashsalt"] = "cnnbench"  # the same store renders the same SVG bytes


def save(figure: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
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
    if model in archs.BOOK_MODELS:
        return plt.cm.tab10.colors[archs.BOOK_MODELS.index(model)]
    names = archs.list_models()
    return plt.cm.tab20b.colors[names.index(model) % 20 if model in names else 0]


def family_colour(family: str) -> tuple[float, ...]:
    """A family's colour, the same in every figure (tv/timm: the colour after the chapters')."""
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


def log_seconds(axes: plt.Axes) -> None:
    """A time axis on a log scale (runs that differ a hundredfold share it), ticks in plain
    seconds."""
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
