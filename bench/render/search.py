"""The search for the fast recipe (``FAST_SEARCH`` in ``bench.recipes``) as a table of
the training page: each step's runs, their medians over seeds, and what the step's one change
bought against the step it changes, in test accuracy and in wall clock."""

from __future__ import annotations

import json
import statistics
from typing import Any

import pandas as pd

from bench.console import plural
from bench.recipes import FAST_SEARCH, Run
from bench.render.format import (
    Column,
    fmt_int,
    fmt_points,
    fmt_ratio,
    fmt_seconds_delta,
    fmt_text,
    markdown,
)
from bench.schema import Status

# what tells a step's runs apart from other runs (the seed aside)
SETTINGS = ("model", "lr", "batch_size", "resize", "epochs", "technique_settings")


def _settings(settings: dict[str, Any]) -> str:
    return json.dumps([settings[k] for k in SETTINGS], sort_keys=True)


def recipe_median(rows: list[dict[str, Any]], run: Run) -> str:
    """The median over seeds of ``run``'s finished runs among ``rows`` (every seed of it, under
    a preset that keeps its schedule), in words; "-" where none finished."""
    key = _settings(run.settings())
    done = [
        r
        for r in rows
        if r["status"] == Status.OK and r["preset"] != "smoke" and _settings(r) == key
    ]
    if not done:
        return "-"
    accuracy = statistics.median(r["test_acc"] for r in done)
    wall = statistics.median(r["wall_s"] for r in done)
    return f"{accuracy:.1%} in {wall:,.0f} s ({plural(len(done), 'seed')}, median)"


SEARCH_COLUMNS: list[Column] = [
    ("step", "step: the change", fmt_text),
    ("after", "to the step", fmt_text),
    ("preset", "preset", fmt_text),
    ("seeds", "seeds", fmt_int),
    ("test_acc", "test accuracy (median)", lambda v: f"{v:.2%}"),
    ("acc_range", "seed range", fmt_text),
    ("acc_delta", "bought (points)", fmt_points),
    ("wall_s", "wall clock (s, median)", fmt_ratio),
    ("wall_range", "wall clock range (s)", fmt_text),
    ("wall_delta", "cost (s)", fmt_seconds_delta),
]


def search_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per search step and preset with finished runs, in the search's order."""
    step_of = {_settings(run.settings()): step for step, (_, run) in FAST_SEARCH.items()}
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        step = step_of.get(_settings(row))
        if step is not None and row["status"] == Status.OK:
            found.setdefault((step, row["preset"]), []).append(row)
    medians = {
        key: (pd.Series([r["test_acc"] for r in runs]), pd.Series([r["wall_s"] for r in runs]))
        for key, runs in found.items()
    }
    lines = []
    for step, (after, _) in FAST_SEARCH.items():
        for preset in sorted({p for s, p in found if s == step}):
            accuracy, wall = medians[step, preset]
            before = medians.get((after, preset))
            lines.append(
                {
                    "step": step,
                    "after": after or "-",
                    "preset": preset,
                    "seeds": len(accuracy),
                    "test_acc": accuracy.median(),
                    "acc_range": f"{accuracy.min():.2%} - {accuracy.max():.2%}",
                    "acc_delta": accuracy.median() - before[0].median() if before else None,
                    "wall_s": wall.median(),
                    "wall_range": f"{wall.min():,.1f} - {wall.max():,.1f}",
                    "wall_delta": wall.median() - before[1].median() if before else None,
                }
            )
    return pd.DataFrame(lines)


def search_section(rows: list[dict[str, Any]]) -> str:
    """The training page's section on the search, or nothing before its first run."""
    table = search_table(rows)
    if table.empty:
        return ""
    return (
        "\n## The search for the five-minute recipe\n\n"
        "Each step changes one thing of the step it names (`FAST_SEARCH` in "
        "bench/recipes.py) and is judged on three seeds: what it bought is the "
        "difference of the medians over seeds, in test accuracy on all 10,000 test images and "
        "in wall clock (training and evaluation); compare it with the seed ranges. A step "
        "that did not pay stays listed; the steps after it change the step before it. "
        "`python -m bench train --preset book --experiment fast_search` trains them.\n\n"
        + markdown(table, SEARCH_COLUMNS)
        + "\n"
    )
