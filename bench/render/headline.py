"""What each network costs and what it buys: the headline table (one row per network, its cost
beside what its training run bought), the tradeoffs page and a run's index, from the results
store only."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

import archs
from bench.console import plural
from bench.provenance import cpu_of
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
from bench.render.training import (
    bounded,
    evaluated_at_end,
    fast_recipes,
    learned,
    lr_fix,
    preset_run,
    throughput_cv,
)
from bench.schema import MEASURED, Status
from bench.store import Store

STAGE_PAGES = {
    "findings.md": "the book's claims beside what was counted here: one screen",
    "profile/summary.md": "cost of each network: parameters, MACs/FLOPs, memory (counted)",
    "speed/speed.md": "throughput, latency and peak memory across batch sizes (measured)",
    "onnx/onnx.md": "ONNX export, parity and onnxruntime against PyTorch (measured)",
    "pipeline/pipeline.md": "input pipelines against compute alone (measured)",
    "train/train.md": "Fashion-MNIST training runs and their curves (measured)",
    "tradeoffs.md": "accuracy against parameters, MACs, memory and throughput",
    "exercises.md": "the chapters' compute and memory exercises, answered from the store",
    "memory.md": "memory of a step: estimated, tracked through the step, measured",
    "peers.md": "other FLOP counters beside ours, and why each differs",
    "history.md": "how this run was made: every command that wrote to its store",
}
PLOTS = {
    "accuracy_vs_macs": "accuracy against forward MACs as trained, one colour per family, "
    "Pareto frontier",
    "accuracy_vs_params": "accuracy against parameters, Pareto frontier",
    "throughput_vs_batch": "throughput against batch size (PyTorch and onnxruntime)",
    "memory_vs_batch": "peak memory against batch size",
    "training_curves": "test accuracy against training time and against wall clock",
    "fast_recipe": "time to accuracy: the fast recipes against the book's loop on their schedule",
    "conv_vs_fc": "parameters and MACs: conv against fully connected",
    "roofline": "achieved FLOP/s against arithmetic intensity, under the roof",
}
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
HEADLINE_COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("input", "book's input", fmt_text),
    *COST_COLUMNS,
    *TRAINED_COLUMNS,
]


def _best(rows: list[dict], mode: str, size: int) -> str:
    """The highest throughput of the points (``per_point``) timed at input side ``size``, with
    its batch, setup and spread."""
    timed = [r for r in rows if (r["mode"], r["image_size"]) == (mode, size)]
    if not timed:
        return "-"
    best = max(timed, key=lambda r: r["images_per_s"])
    return (
        f"{best['images_per_s']:,.0f} ({best['batch_size']}, {speed_setup(best)}, {spread(best)})"
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


def swept_speed(run: dict[str, Any], speeds: list[dict[str, Any]]) -> str | None:
    """Training images/s at the run's batch and input from the speed sweep (``speeds``, one row
    per point), if it timed that point on the run's device in the run's setup; None for a
    compiled run (its compile mode may differ from the sweep's) and for a point not timed."""
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
    for r in speeds:
        if (r["mode"], r["batch_size"], r["image_size"], r["device_name"], speed_setup(r)) == point:
            return f"{r['images_per_s']:,.0f} (speed sweep, {setup}, {spread(r)})"
    return None


def own_speed(run: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """The training run's own images/s (images over training time), with its spread over the
    ``history``'s intervals."""
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
        costs = {"input": f"{size} px", "family": family}
        if cost:
            c = cost[0]
            costs.update(
                params=c["params"],
                fwd_macs_per_image=c["fwd_macs_per_image"],
                train_mib=c["train_bytes_est_sgd"] / MIB,
            )
        costs.setdefault("train_mib", None)  # a column of every table, counted or not
        costs["infer_best"] = _best(timed, "infer", size)
        trained = []  # (row label, kind, run)
        run = preset_run(mine)
        if run is not None:
            trained.append((name, "book" if run["preset"] == "book" else "fixed work", run))
            fix = None if learned(run) else lr_fix(run, mine)
            if fix is not None:  # labelled: the smallest change that makes it learn
                side = f"{run['resize'] or 28} px"
                label = f"{name}, lr {fix['lr']:g} (at {side} the book's lr does not learn)"
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
            rows.append(
                {
                    "model": label,
                    **costs,
                    "kind": kind,
                    "test_acc": run["test_acc"],
                    "preset": run["preset"],
                    "trained_input": f"{run['resize'] or 28} px",
                    "trained_macs": run.get("fwd_macs_per_image"),
                    "train_speed": swept_speed(run, timed)
                    or own_speed(
                        run, store.details("train", run["model"], run["config"], "history")
                    ),
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


TIMED_STAGES = ("speed", "onnx", "pipeline", "blocks", "train")
UNRECORDED_HEAP = "not recorded, so malloc's own adaptive thresholds"


def write_index(store: Store, out_dir: Path, preset: str | None) -> list[Path]:
    """A run's index.md: the headline plot and table, then every page."""
    table = headline(store)
    if "to_80" in table:
        at_end = table["evaluated_at_end"].eq(True)  # untrained networks: NaN
        table["to_80"] = [bounded(*pair) for pair in zip(table["to_80"], at_end, strict=True)]
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
        + f", {dates[0]} to {dates[-1]}, on "
        f"{'; '.join(machines) or '-'}. {CONVENTIONS} Accuracy: each network's book recipe "
        "as the preset named in the row adapts it (its input side, optimizer and fixed work "
        "are in the row), and the fast recipe. Training images/s are at the batch and input "
        "that run trained at: from the speed sweep where it timed that point, else from the "
        "training run itself (its images over its training time, evaluation excluded, with how "
        "much that varied from epoch to epoch)."
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
        + headline_plot
        + (
            markdown(table.reindex(columns=[c for c, _, _ in HEADLINE_COLUMNS]), HEADLINE_COLUMNS)
            if len(table)
            else "No results yet."
        )
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
