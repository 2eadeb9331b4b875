"""What every figure shares: matplotlib without a display, atomic PNG and SVG files, each
network's and family's colour, the Pareto frontier, labels placed beside their points, a log
time axis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.text import Annotation, Text
from matplotlib.ticker import FuncFormatter, NullFormatter
from matplotlib.transforms import Bbox

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
KINDS = {  # a run's marker, and what it means
    "book": ("s", "the book's recipe"),
    "lr fix": ("D", "the book's recipe, its learning rate changed"),
    "budget": ("o", "the book's recipe on a CPU budget's fixed work"),
    "fast": ("*", "the fast recipe (median over seeds)"),
}


def preset_words(presets: list[str]) -> str:
    """Presets named in a title: "book preset", "book, book_cpu presets"."""
    names = sorted(set(presets))
    return f"{', '.join(names)} preset{'s' if len(names) > 1 else ''}"


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


# where a label may stand beside its point, in points, tried nearest first: right, then left
OFFSETS = tuple((dx, dy) for dy in (0, 9, -9, 18, -18, 27, -27, 36, -36, 45, -45) for dx in (6, -6))


def place_labels(axes: plt.Axes, xs: list[float], ys: list[float], texts: list[str]) -> None:
    """Each text beside its point, at the first place (``OFFSETS``) where it stays inside the
    axes and covers no text already there, no point and not the legend; a label moved more
    than a line away is joined to its point by a line. Where no place is free, the first
    inside the axes. Set the axes' scales, limits, legend and other texts first."""
    renderer = axes.figure.canvas.get_renderer()
    inside = axes.get_window_extent(renderer)
    taken = [  # the points' own markers, a few pixels wide, and the legend
        Bbox.from_bounds(*(axes.transData.transform((x, y)) - 4), 8, 8)
        for x, y in zip(xs, ys, strict=True)
    ]
    if axes.get_legend() is not None:
        taken.append(axes.get_legend().get_window_extent(renderer))
    taken += [text_box(text, renderer) for text in axes.texts]  # what is written there already

    def label(x: float, y: float, text: str, dx: int, dy: int) -> plt.Annotation:
        return axes.annotate(
            text,
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            fontsize=8,
            va="center",
            ha="left" if dx > 0 else "right",
            arrowprops=(
                {"arrowstyle": "-", "color": "0.6", "linewidth": 0.5} if abs(dy) > 9 else None
            ),
        )

    for x, y, text in sorted(zip(xs, ys, texts, strict=True)):
        free = None
        for dx, dy in OFFSETS:
            tried = label(x, y, text, dx, dy)
            box = text_box(tried, renderer).expanded(1.04, 1.25)  # with a margin
            tried.remove()
            if not (inside.x0 <= box.x0 and box.x1 <= inside.x1):
                continue
            if not (inside.y0 <= box.y0 and box.y1 <= inside.y1):
                continue
            free = free or (dx, dy)
            if not any(box.overlaps(other) for other in taken):
                free = (dx, dy)
                break
        taken.append(text_box(label(x, y, text, *(free or OFFSETS[0])), renderer))


def text_box(text: Text, renderer: Any) -> Bbox:
    """Where a text lies on the canvas: an annotation's text alone, without its leader line
    (which may cross what it points past)."""
    if isinstance(text, Annotation):
        text.update_positions(renderer)
    return Text.get_window_extent(text, renderer)


def log_seconds(axes: plt.Axes) -> None:
    """A time axis on a log scale (runs that differ a hundredfold share it), ticks in plain
    seconds."""
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
