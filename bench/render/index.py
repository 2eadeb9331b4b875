"""A run's index.md: the headline plot, what each network costs and what it buys as two tables
of one number per cell (each empty cell's reason in a footnote), the device's yardsticks, the
runs of ``python -m bench all`` and every other page."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.console import plural
from bench.provenance import cpu_of
from bench.render.format import (
    CONVENTIONS,
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
from bench.render.headline import headline
from bench.render.setups import speed_setup
from bench.render.training import BOOK_PRESETS, bounded, evaluated_at_end
from bench.schema import MEASURED, Status
from bench.store import Store

STAGE_PAGES = {
    "findings.md": "the book's claims beside what was measured here: one screen",
    "profile/summary.md": "cost of each network: parameters, MACs/FLOPs, memory (counted)",
    "speed/speed.md": "throughput, latency and peak memory across batch sizes (measured)",
    "onnx/onnx.md": "ONNX export, parity and onnxruntime against PyTorch (measured)",
    "pipeline/pipeline.md": "input pipelines against compute alone (measured)",
    "train/train.md": "Fashion-MNIST training runs and their curves (measured)",
    "tradeoffs.md": "accuracy against parameters, MACs, memory and throughput",
    "exercises.md": "the chapters' compute and memory exercises, answered from the store",
    "memory.md": "memory of a step: estimated, read from the CPU allocator, measured",
    "peers.md": "other FLOP counters beside ours, and why each differs",
    "history.md": "how this run was made: every command that wrote to its store",
}
PLOTS = {
    "accuracy_vs_macs": "accuracy against forward MACs as trained: each network's book recipe "
    "and best fast recipe, Pareto frontier",
    "accuracy_vs_params": "accuracy against the trained build's parameters, Pareto frontier",
    "throughput_vs_batch": "throughput against batch size, the book's nine networks (PyTorch "
    "and onnxruntime)",
    "memory_vs_batch": "peak memory against batch size, the book's nine networks",
    "training_curves": "test accuracy after each epoch against training time, the book's nine "
    "networks",
    "fast_recipe": "time to accuracy: the fast recipes against the book's loop on their schedule",
    "conv_vs_fc": "parameters and MACs of the book's nine networks: conv against fully connected",
    "roofline": "achieved FLOP/s against arithmetic intensity, under the roof",
}
RUN_COLUMNS = [
    (column, header, fmt_text)
    for column, header in [
        ("started", "started"),
        ("preset", "preset"),
        ("networks", "networks"),
        ("wall", "wall time"),
        ("steps", "each step: outcome, time (measured)"),
    ]
]


def runs_of_all(store: Store) -> pd.DataFrame:
    """Each ``python -m bench all`` the store records: when, which preset and networks, its
    wall time, and each step's outcome and time (a step with a time and no outcome did not
    finish: the run was stopped in it)."""

    def took(seconds: float) -> str:
        return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"

    rows = []
    for run in store.rows("run"):
        times = run.get("stage_s", {})  # not recorded by the runs of earlier versions
        steps = [
            f"{name}: {run['stages'].get(name, 'did not finish')}"
            + (f", {took(times[name])}" if name in times else "")
            for name in dict.fromkeys([*run["stages"], *times])
        ]
        rows.append(
            {
                "started": run["config"]["started"],
                "preset": run["preset"],
                "networks": run["models"] or "the preset's",
                "wall": took(run["wall_s"]),
                "steps": "; ".join(steps),
            }
        )
    return pd.DataFrame(rows)


TIMED_STAGES = ("speed", "onnx", "pipeline", "layers", "train")
UNRECORDED_HEAP = "not recorded, so malloc's own adaptive thresholds"


def _noted(show: Callable[[Any], str]) -> Callable[[Any], str]:
    """A formatter that passes an empty cell's footnote mark through."""
    return lambda v: v if isinstance(v, str) else show(v)


COST_COLUMNS: list[Column] = [
    ("network", "network", fmt_text),
    ("side", "book input (px)", fmt_int),
    ("params", "parameters", _noted(fmt_int)),
    ("fwd_macs_per_image", "fwd MACs (M)", _noted(fmt_mega)),
    ("train_mib", "training step (MiB, estimated)", _noted(fmt_ratio)),
    ("infer_images_per_s", "inference images/s", _noted(fmt_int)),
    ("infer_batch", "at batch", _noted(fmt_int)),
    ("infer_setup", "setup", fmt_text),
    ("infer_cv", "CV", _noted(fmt_percent)),
]
BUY_COLUMNS: list[Column] = [
    ("model", "run", fmt_text),
    ("trained_side", "input (px)", fmt_int),
    ("test_acc", "test accuracy", fmt_percent),
    ("trained_macs", "fwd MACs (M)", _noted(fmt_mega)),
    ("optimizer", "optimizer", fmt_text),
    ("lr", "lr", fmt_text),
    ("batch_size", "batch", fmt_int),
    ("epochs", "epochs", fmt_int),
    ("train_images", "images per epoch", fmt_int),
    ("test_images", "test images", fmt_int),
    ("train_images_per_s", "training images/s", fmt_int),
    ("train_cv", "CV", _noted(fmt_percent)),
    ("timed_by", "timed by", fmt_text),
    ("to_80", "to 80% (s)", _noted(fmt_bound)),
]
# why a cell is empty: its mark and what the footnote says
NOT_COUNTED = ("¹", "not counted at the book's input yet: `python -m bench profile`")
NOT_TIMED = (
    "²",
    "not timed at the book's input: `python -m bench speed --models <network> --image-size "
    "<its book input>`",
)
WHOLE = ("³", "the run was timed as a whole: no spread over epochs")
NEVER_80 = ("⁴", "never reached 80 % test accuracy")
BOUND = ("≤", "tested after the last epoch alone: it reached 80 % at or before that time")


def _costs(table: pd.DataFrame) -> pd.DataFrame:
    """One row per network: its cost at its book input, an empty cell marked with why."""
    rows = []
    for _, r in table.drop_duplicates("network").iterrows():
        counted = not pd.isna(r.get("params"))
        point = r["infer_point"]
        timed = isinstance(point, dict)
        rows.append(
            {
                "network": r["network"],
                "side": r["side"],
                **{
                    key: r[key] if counted else NOT_COUNTED[0]
                    for key in ("params", "fwd_macs_per_image", "train_mib")
                },
                "infer_images_per_s": point["images_per_s"] if timed else NOT_TIMED[0],
                "infer_batch": point["batch_size"] if timed else NOT_TIMED[0],
                "infer_setup": speed_setup(point) if timed else NOT_TIMED[0],
                "infer_cv": point["cv"] if timed else NOT_TIMED[0],
            }
        )
    return pd.DataFrame(rows)


def _optimizer(run: dict[str, Any]) -> str:
    techniques = run["techniques"].split("+")
    if "adam" in techniques:
        return "Adam"
    return "SGD, momentum" if "momentum" in techniques else "SGD"


def _bought(table: pd.DataFrame) -> pd.DataFrame:
    """One row per trained run of the headline, its settings and timing one number a cell."""
    rows = []
    for _, r in table.dropna(subset=["test_acc"]).iterrows():
        run = r["run"]
        swept = r["train_swept"] if isinstance(r["train_swept"], dict) else None  # NaN: none
        config = run["config"]
        at_end = evaluated_at_end(run)
        to_80 = bounded(run.get("time_to_80_s"), at_end)
        cv = r["train_cv"] if swept is None else swept["cv"]
        rows.append(
            {
                "model": r["model"],
                "section": "fast"
                if r["kind"] == "fast"
                else "book"
                if run["preset"] in BOOK_PRESETS
                else "budget",
                "trained_side": run["resize"] or 28,
                "test_acc": run["test_acc"],
                "trained_macs": r["trained_macs"],
                "optimizer": _optimizer(run),
                "lr": f"{run['lr']:g}",
                "batch_size": run["batch_size"],
                "epochs": config.get("epochs"),
                "train_images": 10 * (config.get("train_per_class") or 6000),
                "test_images": 10 * (config.get("test_per_class") or 1000),
                "train_images_per_s": (swept or run)["images_per_s"],
                "train_cv": WHOLE[0] if pd.isna(cv) else cv,
                "timed_by": "training run" if swept is None else "speed sweep",
                "to_80": NEVER_80[0] if to_80 is None else to_80,
            }
        )
    return pd.DataFrame(rows)


SECTIONS = {
    "book": "### The book's recipe\n\nSGD at each network's learning rate, batch 128, 10 epochs "
    "over all 60,000 training images, tested on all 10,000 (under book_cpu: at the smallest "
    "side of at least 32 pixels each network accepts).",
    "fast": "### The fast recipe\n\nA small ResNet at 28 pixels on a one-cycle schedule of its "
    "own with every technique of the recipe on (the training page lists them); the median "
    "over its seeds.",
    "budget": "### Fixed work of a CPU budget\n\nWhat a preset's few epochs over a part of the "
    "data buy, not what the book's recipe reaches: rows to read beside each other, not beside "
    "the book's.",
}


def _notes(frames: list[pd.DataFrame], marks: list[tuple[str, str]]) -> str:
    """The footnotes of the marks the tables use."""
    used = [
        (mark, text)
        for mark, text in marks
        if any(
            frame.map(lambda v, m=mark: isinstance(v, str) and v.startswith(m)).any().any()
            for frame in frames
        )
    ]
    return "".join(f"\n\n{mark} {text}" for mark, text in used)


def what_it_costs(table: pd.DataFrame) -> str:
    costs = _costs(table)
    return (
        "## What each network costs\n\nAt the book's input, counted on the meta device (memory: "
        "a training step with SGD at batch 128, estimated); inference images/s: the best point "
        "of the speed sweep, with its batch, setup and coefficient of variation (measured).\n\n"
        + markdown(costs, COST_COLUMNS)
        + _notes([costs], [NOT_COUNTED, NOT_TIMED])
    )


def what_it_buys(table: pd.DataFrame) -> str:
    bought = _bought(table) if "test_acc" in table else pd.DataFrame()
    parts = ["## What it buys\n\nTest accuracy on Fashion-MNIST after each run's fixed work"]
    parts[0] += (
        " (measured); training images/s at the run's batch and input: from the speed sweep "
        "where it timed that point, else the run's own images over its training time."
        if len(bought)
        else ": no network trained yet (`python -m bench train`)."
    )
    for section, text in SECTIONS.items():
        rows = bought[bought["section"] == section] if len(bought) else bought
        if len(rows):
            parts.append(text + "\n\n" + markdown(rows, BUY_COLUMNS))
    untrained = table[table["test_acc"].isna()] if "test_acc" in table else table
    waiting = [f"{r['network']}: {r['accuracy']}" for _, r in untrained.iterrows()]
    if waiting:
        parts.append("Without an accuracy: " + "; ".join(waiting) + ".")
    notes = _notes([bought], [WHOLE, NEVER_80, BOUND]) if len(bought) else ""
    return "\n\n".join(parts) + notes


def write_index(store: Store, out_dir: Path, preset: str | None) -> list[Path]:
    """A run's index.md: the findings first, the headline plot, the two tables, then every
    page."""
    table = headline(store)
    pages = [(page, text) for page, text in STAGE_PAGES.items() if (out_dir / page).exists()]
    plots = [
        (f"plots/{stem}.png", text)
        for stem, text in PLOTS.items()
        if (out_dir / "plots" / f"{stem}.png").exists()
    ]
    rows = [r for stage in ("profile", "speed", "train") for r in store.rows(stage)]
    dates = sorted(r["provenance"]["date"] for r in rows) or ["-"]
    machines = sorted({f"{r['provenance']['device']} / {cpu_of(r['provenance'])}" for r in rows})
    timed = [r for stage in TIMED_STAGES for r in store.rows(stage) if r["status"] in MEASURED]
    heaps = Counter(r["provenance"].get("heap", UNRECORDED_HEAP) for r in timed)
    intro = (
        (
            f"Results of `python -m bench all --preset {preset}`"
            if preset
            else "Results of `python -m bench` stage commands"
        )
        + f", {dates[0]} to {dates[-1]}, on {'; '.join(machines) or '-'}. {CONVENTIONS}"
        + (
            " Heap of the timings and memory readings: "
            + "; ".join(f"{heap}: {plural(n, 'row')}" for heap, n in heaps.most_common())
            + "."
            if heaps
            else ""
        )
    )
    roofs = [r for r in store.rows("machine") if r["status"] == Status.OK]
    yardsticks = "".join(
        f"\n- {r['model']}, {r['config']['precision']}: peak {r['peak_flops_per_s'] / 1e9:,.0f} "
        f"GFLOP/s ({r['peak_source']}); achieved {r['achievable_flops_per_s'] / 1e9:,.0f} "
        f"GFLOP/s, {r['achievable_flops_per_s'] / r['peak_flops_per_s']:.0%} of the peak "
        f"({r['achievable_source']}); memory {r['bandwidth_bytes_per_s'] / 1e9:,.1f} GB/s "
        f"({r['bandwidth_source']})"
        for r in roofs
    )
    runs = runs_of_all(store)
    headline_plot = "".join(f"![{text}]({path})\n\n" for path, text in plots[:1])
    links = "\n".join(f"- [{page}]({page}): {text}" for page, text in pages)
    links += "".join(
        f"\n- [{path}]({path}) ([svg]({path[:-4]}.svg)): {text}" for path, text in plots
    )
    text = (
        "# cnnbench: what each network costs and what it buys\n\n"
        + intro
        + "\n\n"
        + (
            "**[Findings](findings.md)**: the book's claims beside what was measured here, on "
            "one screen.\n\n"
            if (out_dir / "findings.md").exists()
            else ""
        )
        + headline_plot
        + (what_it_costs(table) + "\n\n" + what_it_buys(table) if len(table) else "No results yet.")
        + (
            "\n\n## Yardsticks\n\nWhat the device does at its best, measured by the speed "
            "stage beside its datasheet or instruction-set peak:\n" + yardsticks
            if roofs
            else ""
        )
        + (
            "\n\n## Runs of `python -m bench all`\n\n" + markdown(runs, RUN_COLUMNS)
            if len(runs)
            else ""
        )
        + "\n\n## Everything else\n\n"
        + links
        + "\n"
    )
    written = out_dir / "index.md"
    atomic_write(written, text)
    return [written]
