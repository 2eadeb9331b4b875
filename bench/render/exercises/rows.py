"""The rows an answer needs: readers of the store for each kind (profiles at the book's input,
training runs, chapter 7's single layers and primitives), the columns shown, and answers built from
one kind of row and a sentence computed from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

import archs
from bench.provenance import cpu_of
from bench.render.format import (
    MIB,
    Column,
    book_rank,
    fmt_int,
    fmt_mega,
    fmt_mib,
    fmt_ms,
    fmt_percent,
    fmt_ratio,
    fmt_text,
)
from bench.render.memory import tracked_growth
from bench.render.setups import book_speed, spread
from bench.render.training import BOOK_PRESETS, PRESET_RANK, preset_run, throughput_cv
from bench.schema import MEASURED, Status
from bench.store import Store

Answer = tuple[pd.DataFrame, list[Column], str]  # rows, columns shown, the reasoning


def profile_rows(store: Store, models: Sequence[str], side: int | None = None) -> pd.DataFrame:
    """Profile rows (batch 128, at ``side``, None: each network's book input size) of
    ``models``, in that order."""
    found = {}
    for row in store.rows("profile"):
        wanted = side or archs.spec(row["model"]).image_size
        if (
            row["status"] == Status.OK
            and row["batch_size"] == 128
            and row["model"] in models
            and row["image_size"] == wanted
        ):
            found[row["model"]] = row
    if set(found) != set(models):
        return pd.DataFrame()
    frame = pd.DataFrame([found[m] for m in models])
    frame["source"] = [source_of(r, "profile") for r in (found[m] for m in models)]
    return frame


def source_of(row: dict[str, Any], stage: str) -> str:
    """Where a row comes from: its stage, its training preset if any, its device (the CPU where
    the row says it ran there, on a machine with a GPU too)."""
    prov = row["provenance"]
    on_cpu = "cpu" in (prov["device"], row.get("device"))
    machine = f"CPU {cpu_of(prov)}" if on_cpu else prov["device"]
    preset = f", {row['preset']} preset" if stage == "train" else ""
    return f"{stage}{preset}, {machine}"


def train_rows(
    store: Store, models: tuple[str, ...], keep: Callable[[dict], bool] | None = None
) -> pd.DataFrame:
    """Finished training runs of ``models``: each one's preset run, or those ``keep`` picks,
    under the preset closest to the book's, in book order. Preset runs compare at equal work:
    all from the book's recipe (book, book_cpu), else all from one other preset where every
    network has one, else each network's own."""
    done = [r for r in store.rows("train") if r["status"] in MEASURED]
    if keep is None:
        for presets in (BOOK_PRESETS, *((p,) for p in PRESET_RANK if p not in BOOK_PRESETS), None):
            pool = [r for r in done if presets is None or r["preset"] in presets]
            rows = [r for m in models if (r := preset_run([x for x in pool if x["model"] == m]))]
            if len(rows) == len(models):
                break
    else:
        rows = [r for r in done if r["model"] in models and keep(r)]
        best = min((PRESET_RANK.get(r["preset"], 9) for r in rows), default=0)
        rows = [r for r in rows if PRESET_RANK.get(r["preset"], 9) == best]
    rows.sort(key=lambda r: (book_rank(r["model"]), r["lr"], r["batch_size"], r["resize"] or 28))
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["source"] = [source_of(r, "train") for r in rows]
        frame["budget"] = [r["work"] for r in rows]
        frame["side"] = [r["resize"] or 28 for r in rows]
        frame["images_per_s_cv"] = [
            throughput_cv(store.details("train", r["model"], r["config"], "history")) for r in rows
        ]
        frame["seeds"] = [_seeds(r, done) for r in rows]
    return frame


def _seeds(run: dict, done: list[dict]) -> dict[int, float]:
    """The test accuracy of each seed of ``run``'s settings among ``done``, by seed."""

    def settings(r: dict) -> tuple:
        return r["model"], sorted((k, str(v)) for k, v in r["config"].items() if k != "seed")

    same = [r for r in done if settings(r) == settings(run)]
    seeds = {r["config"].get("seed", 0): r["test_acc"] for r in same}
    return dict(sorted(seeds.items()))


def block_rows(store: Store, exercises: tuple[str, ...], timed: bool = False) -> pd.DataFrame:
    """Chapter 7's rows of ``exercises``: the ways of a primitive timed against each other
    (``timed``), or the single layers."""
    rows = [
        r
        for r in store.rows("layers")
        if r["model"] in exercises and r["status"] in MEASURED and ("median_ms" in r) == timed
    ]
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["case"] = [r["config"]["case"] for r in rows]
        frame["source"] = [source_of(r, "layers") for r in rows]
    return frame


MODEL: Column = ("model", "model", fmt_text)
PARAMS: Column = ("params", "params", fmt_int)
CONV_PARAMS: Column = ("params_conv", "conv params", fmt_int)
FC_PARAMS: Column = ("params_linear", "fully connected params", fmt_int)
MACS: Column = ("fwd_macs_per_image", "fwd MACs / image (M, counted)", fmt_mega)
CONV_MACS: Column = ("fwd_conv_macs_per_image", "conv MACs (M, counted)", fmt_mega)
FC_MACS: Column = ("fwd_linear_macs_per_image", "fully connected MACs (M, counted)", fmt_mega)
TRAIN_MEM: Column = (
    "train_bytes_est_sgd",
    "training step, SGD, batch 128: its fullest moment (MiB, estimated)",
    fmt_mib,
)
INFER_MEM: Column = (
    "infer_bytes_est",
    "inference, batch 128: weights + input + activation peak (MiB, estimated)",
    fmt_mib,
)
SAVED: Column = ("saved_activation_bytes", "saved for backward, batch 128 (MiB, counted)", fmt_mib)
INPUT: Column = ("image_size", "input side", fmt_int)
INTENSITY: Column = ("fwd_flops_per_byte", "fwd FLOPs / byte at batch 128 (estimated)", fmt_ratio)


RUN: list[Column] = [
    ("model", "model", fmt_text),
    ("side", "input side", fmt_int),
    ("lr", "lr", fmt_text),
    ("batch_size", "batch", fmt_int),
    ("techniques", "techniques", fmt_text),
    ("budget", "work", fmt_text),
    ("status", "status", fmt_text),
    ("test_acc", "test accuracy", fmt_percent),
    ("images_per_s", "training images/s (measured)", fmt_ratio),
    ("images_per_s_cv", "its CV over epochs", fmt_percent),
    ("peak_bytes", "peak memory (MiB, measured)", fmt_mib),
]


TRAINED: list[Column] = [
    ("params", "params", fmt_int),
    ("fwd_macs_per_image", "fwd MACs / image as trained (M, counted)", fmt_mega),
]


Measured = Callable[[pd.DataFrame, Store], tuple[Column, str]]  # adds a measured column


def costs(
    models: Sequence[str],
    columns: list[Column],
    say: Callable[[pd.DataFrame], str],
    *measured: Measured,
    side: int | None = None,
):
    """An answer from profile rows: cost columns of ``models`` (at ``side``, None: each at its
    book input) and a sentence about them; each of ``measured`` adds a column of the speed
    sweep's numbers and says what they show, or what is not measured yet."""

    def answer(store: Store) -> Answer | None:
        frame = profile_rows(store, models, side)
        if frame.empty:
            return None
        shown, reasoning = [MODEL, *columns], say(frame.set_index("model"))
        for add in measured:
            column, said = add(frame, store)
            shown.append(column)
            reasoning += f" {said}" if said else ""
        return frame, shown, reasoning

    return answer


def _timed(frame: pd.DataFrame, store: Store, mode: str) -> list[list[dict[str, Any]]]:
    """For each profile row in ``frame``, the speed sweep's ``mode`` rows at its input side in
    the book's setup."""
    rows = [r for r in book_speed(store.rows("speed")) if r["mode"] == mode]
    return [
        [r for r in rows if (r["model"], r["image_size"]) == (row.model, row.image_size)]
        for row in frame.itertuples()
    ]


def _cite(frame: pd.DataFrame, used: list[dict[str, Any] | None]) -> None:
    """Add the speed rows ``used`` (one per profile row, or None) to the rows' sources."""
    frame["source"] = [
        source if row is None else f"{source}; {source_of(row, 'speed')}"
        for source, row in zip(frame["source"], used, strict=True)
    ]


THROUGHPUT: Column = (
    "infer_best",
    "inference images/s, eager fp32, at the best batch timed (measured)",
    fmt_text,
)


def throughput(frame: pd.DataFrame, store: Store) -> tuple[Column, str]:
    """Each network's highest inference throughput at its input side, with its batch and
    spread; which networks are not timed yet."""
    best = [
        max(rows, key=lambda r: r["images_per_s"], default=None)
        for rows in _timed(frame, store, "infer")
    ]
    frame["infer_best"] = [
        "-" if r is None else f"{r['images_per_s']:,.0f} (batch {r['batch_size']}, {spread(r)})"
        for r in best
    ]
    _cite(frame, best)
    missing = frame.loc[frame["infer_best"] == "-"]
    untimed = missing["model"].tolist()
    sides, book = set(missing["image_size"]), {archs.spec(m).image_size for m in untimed}
    at = f" --image-size {sides.pop()}" if len(sides) == 1 and sides != book else ""
    return THROUGHPUT, (
        f"*Throughput not measured yet* for {', '.join(untimed)}: `python -m "
        f"bench speed --models {','.join(untimed)}{at}` measures it."
        if untimed
        else ""
    )


PEAK: Column = (
    "train_peak",
    "training step, SGD: memory growth at the largest batch timed for all (MiB, measured)",
    fmt_text,
)


def training_peak(frame: pd.DataFrame, store: Store) -> tuple[Column, str]:
    """What a training step grew memory by in the speed sweep, at the largest batch timed for
    every network in ``frame``; for two networks, their ratio, and the ratio counted (tracked
    growth, see bench.render.memory) at batch 1 and at the profile's batch."""
    timed = [
        {r["batch_size"]: r for r in rows if r.get("peak_bytes")}
        for rows in _timed(frame, store, "train")
    ]
    common = set.intersection(*(set(batches) for batches in timed))
    if not common:
        frame["train_peak"] = "-"
        models = ",".join(frame["model"])
        return PEAK, (
            f"*Training memory not measured yet at a batch common to all*: `python -m "
            f"bench speed --models {models} --mode train` measures it."
        )
    batch = max(common)
    used = [batches[batch] for batches in timed]
    frame["train_peak"] = [f"{r['peak_bytes'] / MIB:,.1f} (batch {batch})" for r in used]
    _cite(frame, used)
    said = f"Measured at batch {batch} ({used[0]['memory_kind']})"
    if len(used) == 2:
        (a, b), (x, y) = frame["model"], (r["peak_bytes"] for r in used)
        said += f", {a}'s training step grew memory {x / y:.2f}x as much as {b}'s"
        counted, profiles = [], frame.to_dict("records")
        for n, suffix in ((1, "_batch1"), (frame["batch_size"].iloc[0], "")):
            p, q = (tracked_growth(row, suffix) for row in profiles)
            if p is not None and q is not None:
                counted.append(f"{p / q:.2f}x at batch {n}")
        if counted:
            said += (
                f"; counted (the tensors a step holds at its fullest, tracked on the meta "
                f"device, less the weights), {' and '.join(counted)}"
            )
    return PEAK, said + "."


def varies(row: dict[str, Any], key: str) -> bool:
    """Whether ``row`` is its network's preset run with at most ``key`` changed (a grid)."""
    return row["changes"] is not None and set(row["changes"]) <= {key}


def trained(
    models: tuple[str, ...],
    say: Callable[[pd.DataFrame], str],
    keep: Callable[[dict], bool] | None = None,
    at_least: int = 1,
):
    """An answer from training runs: each network's preset run (or those ``keep`` picks, at
    least ``at_least`` of them), with its cost as trained, and a sentence computed from them."""

    def answer(store: Store) -> Answer | None:
        frame = train_rows(store, models, keep)
        if frame.empty or set(frame["model"]) != set(models) or len(frame) < at_least:
            return None
        return frame, [*RUN, *TRAINED], say(frame)

    return answer


def fuller(full: Callable[[Store], Answer | None], partial: Callable[[Store], Answer | None]):
    """``full`` where the store has its rows, else ``partial``."""

    def answer(store: Store) -> Answer | None:
        found = full(store)
        return found if found is not None else partial(store)

    return answer


def block_answer(
    exercises: tuple[str, ...], columns: list[Column], say: Callable[[pd.DataFrame], str]
):
    def answer(store: Store) -> Answer | None:
        frame = block_rows(store, exercises)
        return None if frame.empty else (frame, columns, say(frame))

    return answer


TIMES: list[Column] = [
    ("median_ms", "median (ms, measured)", fmt_ms),
    ("iqr_ms", "IQR (ms)", fmt_ms),
    ("n", "timed calls", fmt_int),
]


def timed_answer(exercise: str, label: Column, say: Callable[[pd.DataFrame], str]):
    def answer(store: Store) -> Answer | None:
        frame = block_rows(store, (exercise,), timed=True)
        return None if frame.empty else (frame, [label, *TIMES], say(frame))

    return answer


SHAPES: list[Column] = [
    (f"{way}_{side}", f"{way} {side}", fmt_int) for way in ("formula", "built") for side in "hw"
]


CONV_CASE: list[Column] = [
    ("case", "layer", fmt_text),
    ("out_side", "output side", fmt_int),
    ("fwd_macs_formula", "fwd MACs (M, formula)", fmt_mega),
    ("fwd_macs_counted", "fwd MACs (M, counted)", fmt_mega),
    ("bwd_macs_formula", "bwd MACs (M, formula)", fmt_mega),
    ("bwd_macs_counted", "bwd MACs (M, counted)", fmt_mega),
    ("weight_bytes_formula", "weights (KiB, formula)", lambda v: f"{v / 1024:,.1f}"),
    ("output_bytes_formula", "output / image (KiB, formula)", lambda v: f"{v / 1024:,.1f}"),
    ("saved_bytes_formula", "saved for bwd / image (KiB, formula)", lambda v: f"{v / 1024:,.1f}"),
    ("saved_bytes_counted", "saved for bwd / image (KiB, counted)", lambda v: f"{v / 1024:,.1f}"),
    ("fwd_ms", "fwd, batch 32 (ms, measured median)", fmt_ms),
    ("fwd_iqr_ms", "its IQR (ms)", fmt_ms),
    ("fwd_bwd_ms", "fwd + bwd, batch 32 (ms, measured median)", fmt_ms),
    ("fwd_bwd_iqr_ms", "its IQR (ms)", fmt_ms),
]
