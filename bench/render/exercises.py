"""reports/exercises.md: the chapters' compute and memory exercises answered from the results
store. Each answer is a table of stored numbers, the preset and device behind them, and a
sentence computed from those numbers; an exercise whose rows are missing names the command that
measures them. The exercises are data: (id, question, the rows it needs, how to read them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import archs
from bench.render.format import (
    MIB,
    Column,
    atomic_write,
    book_rank,
    budget_text,
    fmt_int,
    fmt_mega,
    fmt_mib,
    fmt_ms,
    fmt_percent,
    fmt_ratio,
    fmt_text,
    markdown,
)
from bench.store import Store

Answer = tuple[pd.DataFrame, list[Column], str]  # rows, columns shown, the reasoning


@dataclass(frozen=True)
class Exercise:
    id: str
    question: str
    answer: Callable[[Store], Answer | None]  # None: the rows are not in the store
    command: str  # what measures the rows


def _profiles(store: Store, models: list[str]) -> pd.DataFrame:
    """Profile rows (book input size, batch 128) of ``models``, in that order."""
    found = {}
    for row in store.rows("profile"):
        if (row["status"] == "ok" and row["batch_size"] == 128 and row["model"] in models
                and row["image_size"] == archs.spec(row["model"]).input_size):  # fmt: skip
            found[row["model"]] = row
    if set(found) != set(models):
        return pd.DataFrame()
    frame = pd.DataFrame([found[m] for m in models])
    frame["source"] = [_source(r, "profile") for r in (found[m] for m in models)]
    return frame


def _source(row: dict[str, Any], stage: str) -> str:
    """Where a row comes from: its stage, its training preset if any, its device."""
    prov = row["provenance"]
    machine = prov["device"] if prov["device"] != "cpu" else f"CPU {prov['cpu']}"
    preset = f", {row['config']['name']} preset" if stage == "train" else ""
    return f"{stage}{preset}, {machine}"


def _runs(store: Store, models: tuple[str, ...], keep: Callable[[dict], bool] | None = None
          ) -> pd.DataFrame:  # fmt: skip
    """Finished training runs of ``models``: each one's preset run, or those ``keep`` picks,
    under the preset closest to the book's, in book order."""
    from bench.render.headline import PRESET_RANK, preset_run

    done = [r for r in store.rows("train") if r["status"] in ("ok", "diverged")]
    if keep is None:
        rows = [r for m in models if (r := preset_run([x for x in done if x["model"] == m], m))]
    else:
        rows = [r for r in done if r["model"] in models and keep(r)]
        best = min((PRESET_RANK.get(r["profile"], 9) for r in rows), default=0)
        rows = [r for r in rows if PRESET_RANK.get(r["profile"], 9) == best]
    rows.sort(key=lambda r: (book_rank(r["model"]), r["lr"], r["batch_size"], r["resize"] or 28))
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["source"] = [_source(r, "train") for r in rows]
        frame["budget"] = [budget_text(r) for r in rows]
        frame["side"] = [r["resize"] or 28 for r in rows]
    return frame


def _micro(store: Store, group: str) -> pd.DataFrame:
    rows = [r for r in store.rows("microbench") if r["model"] == group]
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["median_ms"] = 1000 * frame["median"]
        frame["iqr_ms"] = 1000 * frame["iqr"]
        frame["source"] = [_source(r, "microbench") for r in rows]
    return frame


def _blocks(store: Store, exercises: tuple[str, ...]) -> pd.DataFrame:
    rows = [r for r in store.rows("blocks") if r["model"] in exercises]
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["case"] = [r["config"]["case"] for r in rows]
        frame["source"] = [_source(r, "blocks") for r in rows]
    return frame


def _times(a: float, b: float) -> str:
    return f"{a / b:,.1f}x"


MODEL: Column = ("model", "model", fmt_text)
PARAMS: Column = ("params", "params", fmt_int)
CONV_PARAMS: Column = ("params_conv", "conv params", fmt_int)
FC_PARAMS: Column = ("params_linear", "fully connected params", fmt_int)
MACS: Column = ("fwd_macs_per_image", "fwd MACs / image (M, counted)", fmt_mega)
CONV_MACS: Column = ("fwd_conv_macs_per_image", "conv MACs (M, counted)", fmt_mega)
FC_MACS: Column = ("fwd_linear_macs_per_image", "fully connected MACs (M, counted)", fmt_mega)
TRAIN_MEM: Column = ("train_bytes_est_sgd", "training, SGD, batch 128 (MiB, estimated)", fmt_mib)
INFER_MEM: Column = ("infer_bytes_est", "inference, batch 128 (MiB, estimated)", fmt_mib)
SAVED: Column = ("saved_activation_bytes", "saved for backward, batch 128 (MiB, counted)", fmt_mib)
INPUT: Column = ("image_size", "input side", fmt_int)
INTENSITY: Column = ("fwd_flops_per_byte", "fwd FLOPs / byte (estimated)", fmt_ratio)
RUN: list[Column] = [
    ("model", "model", fmt_text),
    ("side", "input side", fmt_int),
    ("lr", "lr", fmt_text),
    ("batch_size", "batch", fmt_int),
    ("tricks", "techniques", fmt_text),
    ("budget", "work", fmt_text),
    ("status", "status", fmt_text),
    ("test_acc", "test accuracy", fmt_percent),
    ("images_per_s", "training images/s (measured)", fmt_ratio),
    ("peak_bytes", "peak memory (MiB, measured)", fmt_mib),
]
TRAINED: list[Column] = [
    ("params", "params", fmt_int),
    ("fwd_macs_per_image", "fwd MACs / image as trained (M, counted)", fmt_mega),
]


def _cost(models: list[str], columns: list[Column], say: Callable[[pd.DataFrame], str]):
    """An answer from profile rows: cost columns of ``models`` and a sentence about them."""

    def answer(store: Store) -> Answer | None:
        frame = _profiles(store, models)
        if frame.empty:
            return None
        return frame, [MODEL, *columns], say(frame.set_index("model"))

    return answer


def _varies(row: dict[str, Any], key: str) -> bool:
    """Whether ``row`` is its network's preset run with at most ``key`` changed (a grid)."""
    from bench.train import PRESETS, Run, config

    if row["profile"] not in PRESETS:
        return False
    expected = config(Run(row["model"]), PRESETS[row["profile"]], row["pipeline"])
    return all(row["config"].get(k) == v for k, v in expected.items() if k != key)


def _run_answer(models: tuple[str, ...], say: Callable[[pd.DataFrame], str],
                keep: Callable[[dict], bool] | None = None):  # fmt: skip
    """An answer from training runs: each network's preset run (or those ``keep`` picks),
    with its cost as trained, and a sentence computed from them."""

    def answer(store: Store) -> Answer | None:
        frame = _runs(store, models, keep)
        if frame.empty or set(frame["model"]) != set(models):
            return None
        return frame, [*RUN, *TRAINED], say(frame)

    return answer


def _block_answer(exercises: tuple[str, ...], columns: list[Column],
                  say: Callable[[pd.DataFrame], str]):  # fmt: skip
    def answer(store: Store) -> Answer | None:
        frame = _blocks(store, exercises)
        return None if frame.empty else (frame, columns, say(frame))

    return answer


def _micro_answer(group: str, label: Column, say: Callable[[pd.DataFrame], str]):
    def answer(store: Store) -> Answer | None:
        frame = _micro(store, group)
        if frame.empty:
            return None
        columns = [label, ("median_ms", "median (ms, measured)", fmt_ms),
                   ("iqr_ms", "IQR (ms)", fmt_ms), ("rounds", "rounds", fmt_int)]  # fmt: skip
        return frame, columns, say(frame)

    return answer


SHAPES: list[Column] = [(f"{way}_{side}", f"{way} {side}", fmt_int)
                        for way in ("formula", "built") for side in "hw"]  # fmt: skip
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
    ("fwd_ms", "fwd, batch 32 (ms, measured)", fmt_ms),
    ("fwd_bwd_ms", "fwd + bwd, batch 32 (ms, measured)", fmt_ms),
]


def _say_conv_cost(frame: pd.DataFrame) -> str:
    agree = (frame["fwd_macs_formula"] == frame["fwd_macs_counted"]).all() and (
        frame["bwd_macs_formula"] == frame["bwd_macs_counted"]
    ).all()
    ratio = (frame["fwd_bwd_ms"] / frame["fwd_ms"]).median()
    verdict = "agrees with both formulas in every row" if agree else "DISAGREES with a formula"
    return (
        f"Forward MACs are c_i c_o k_h k_w h_o w_o and backward twice that (input and weight "
        f"gradients); the counter {verdict}. "
        f"Backward keeps the layer's input, not its output. Measured, forward plus backward "
        f"takes {ratio:.1f}x the forward time (median over the rows), against 3x in MACs."
    )  # fmt: skip


def _say_grid(frame: pd.DataFrame) -> str:
    base = frame["fwd_macs_counted"].iloc[0]
    parts = [f"{case}: {m / base:.2f}x" for case, m in zip(frame["case"][1:],
             frame["fwd_macs_counted"][1:], strict=True)]  # fmt: skip
    return (
        "MACs relative to the first row: " + "; ".join(parts) + ". Doubling either channel count "
        "doubles the cost, doubling both quadruples it; padding only enlarges the output."
    )


def _say_shape(frame: pd.DataFrame) -> str:
    row = frame.iloc[0]
    same = (row["formula_h"], row["formula_w"]) == (row["built_h"], row["built_w"])
    return (
        f"floor((n + 2p - k) / s) + 1 gives {row['formula_h']} x {row['formula_w']}; the built "
        f"layer outputs {row['built_h']} x {row['built_w']}: "
        + ("they agree." if same else "they DISAGREE.")
    )


def _say_pool(frame: pd.DataFrame) -> str:
    row = frame.iloc[0]
    return (
        f"A {row['kernel']}x{row['kernel']} average pool has no parameters and costs k^2 FLOPs "
        f"per output ({row['fwd_flops_formula'] / 1e6:,.2f} M per image by formula, "
        f"{row['fwd_flops_counted'] / 1e6:,.2f} M counted)."
    )


def _say_fastest(label: str) -> Callable[[pd.DataFrame], str]:
    def say(frame: pd.DataFrame) -> str:
        best, worst = frame.loc[frame["median_ms"].idxmin()], frame.loc[frame["median_ms"].idxmax()]
        return (
            f"Outputs were checked equal before timing. Fastest: {best[label]} "
            f"({best['median_ms']:.3f} ms), slowest: {worst[label]} ({worst['median_ms']:.3f} ms), "
            f"{_times(worst['median_ms'], best['median_ms'])} apart."
        )

    return say


def _say_groups(frame: pd.DataFrame) -> str:
    dense = frame.loc[frame["groups"] == 1].iloc[0]
    parts = [
        f"{int(r['groups'])} groups: {dense['macs'] / r['macs']:.0f}x fewer MACs, "
        f"{dense['median_ms'] / r['median_ms']:.1f}x faster"
        for _, r in frame[frame["groups"] != 1].iterrows()
    ]
    return "; ".join(parts) + ". Latency falls far less than MACs: small groups use the " \
        "hardware poorly and memory traffic does not shrink with the groups."  # fmt: skip


def _say_corr2d(frame: pd.DataFrame) -> str:
    largest = frame[frame["size"] == frame["size"].max()].set_index("method")["median_ms"]
    return (
        f"At {int(frame['size'].max())}x{int(frame['size'].max())}: the Python loop takes "
        f"{largest['loop']:.3f} ms, unfold+matmul {largest['unfold']:.3f} ms, conv2d "
        f"{largest['conv2d']:.3f} ms ({_times(largest['loop'], largest['conv2d'])} between "
        "the loop and conv2d); the loop's time grows with the output's area."
    )  # fmt: skip


def _share(frame: pd.DataFrame, part: str, whole: str, model: str) -> str:
    return f"{frame.loc[model, part] / frame.loc[model, whole]:.1%}"


def _say_params(frame: pd.DataFrame) -> str:
    parts = [f"{m} {frame.loc[m, 'params'] / 1e6:,.2f} M" for m in frame.index]
    most = frame["params"].idxmax()
    return (
        "Parameters: "
        + ", ".join(parts)
        + f". {most} has the most; fully connected layers hold "
        + ", ".join(f"{_share(frame, 'params_linear', 'params', m)} of {m}'s" for m in frame.index)
        + "."
    )


def _say_macs_split(frame: pd.DataFrame) -> str:
    return (
        "Convolutions do "
        + ", ".join(
            f"{_share(frame, 'fwd_conv_macs_per_image', 'fwd_macs_per_image', m)} of {m}'s MACs"
            for m in frame.index
        )
        + ": the fully connected layers hold the parameters, the convolutions do the arithmetic."
    )


def _say_head(frame: pd.DataFrame) -> str:
    first = frame.index[0]
    parts = [
        f"{m}: {frame.loc[m, 'params'] / 1e6:,.2f} M parameters "
        f"({frame.loc[first, 'params'] / frame.loc[m, 'params']:,.1f}x fewer than {first}), "
        f"{_share(frame, 'params_linear', 'params', m)} of them fully connected"
        for m in frame.index[1:]
    ]
    return (
        f"{first} has {frame.loc[first, 'params'] / 1e6:,.2f} M parameters, "
        f"{_share(frame, 'params_linear', 'params', first)} fully connected; "
        + "; ".join(parts)
        + ". Narrowing the convs alone leaves the fully connected layers holding almost every "
        "parameter: the first one's input is the flattened last feature map. Shrinking that "
        "map and the head's width is what cuts the parameters."
    )


def _say_totals(frame: pd.DataFrame) -> str:
    text = "; ".join(
        f"{m}: {frame.loc[m, 'params'] / 1e6:,.1f} M params, "
        f"{frame.loc[m, 'fwd_macs_per_image'] / 1e9:,.2f} G MACs per image"
        for m in frame.index
    )
    if frame["image_size"].nunique() > 1:
        text += (
            " (inputs differ: "
            + ", ".join(f"{m} at {frame.loc[m, 'image_size']} px" for m in frame.index)
            + "; MACs per image grow with the input's area, parameters do not)"
        )
    return text + "."


def _label(row: pd.Series) -> str:
    return f"{row['model']} at {row['side']} px"


def _say_work(frame: pd.DataFrame) -> str:
    """What the runs trained on, and whether the comparison is on equal work."""
    works = sorted(set(frame["budget"]))
    same = len(works) == 1 and frame["tricks"].nunique() == 1 and frame["lr"].nunique() == 1
    return (
        f"All on the same work ({works[0]}, techniques {frame['tricks'].iloc[0]}, lr "
        f"{frame['lr'].iloc[0]:g})."
        if same
        else "Not on equal work: "
        + "; ".join(f"{_label(r)}: {r['budget']}, lr {r['lr']:g}" for _, r in frame.iterrows())
        + "."
    )


def _say_compare(frame: pd.DataFrame) -> str:
    """Accuracy ranking with each run's cost as trained: best, worst, what the best costs."""
    ranked = frame.sort_values("test_acc", ascending=False)
    best, worst = ranked.iloc[0], ranked.iloc[-1]
    text = (
        "Test accuracy: "
        + ", ".join(f"{_label(r)} {r['test_acc']:.1%}" for _, r in ranked.iterrows())
        + ". "
    )
    if len(frame) > 1:
        macs = best["fwd_macs_per_image"] / worst["fwd_macs_per_image"]
        gap, noise = best["test_acc"] - worst["test_acc"], 2 * _standard_error(best, worst)
        text += (
            f"The most accurate, {_label(best)}, is {100 * gap:.1f} points above "
            f"{_label(worst)} for {macs:,.2f}x its MACs per image and "
            f"{best['images_per_s'] / worst['images_per_s']:,.2f}x its training throughput"
            + (f"; the gap is within the test sets' noise (two standard errors: "
               f"{100 * noise:.1f} points). " if gap < noise else ". ")
        )  # fmt: skip
    return text + _say_work(frame)


def _standard_error(a: pd.Series, b: pd.Series) -> float:
    """Of the difference of two test accuracies, each a binomial proportion over its test set."""

    def variance(row: pd.Series) -> float:
        per_class = row["config"]["test_per_class"]
        return row["test_acc"] * (1 - row["test_acc"]) / (10 * per_class if per_class else 10_000)

    return math.sqrt(variance(a) + variance(b))


def _say_epochs(frame: pd.DataFrame, history: dict[str, list[dict]]) -> str:
    """What the epochs after the first bought each run."""
    parts = []
    for _, r in frame.iterrows():
        points = history[r["model"]]
        parts.append(f"{_label(r)} went from {points[0]['test_acc']:.1%} after epoch 1 to "
                     f"{points[-1]['test_acc']:.1%} after epoch {len(points)} "
                     f"({r['train_s']:.0f} s of training)")  # fmt: skip
    return "; ".join(parts) + ". " + _say_work(frame)


def _say_batch(frame: pd.DataFrame) -> str:
    rows = frame.sort_values("batch_size")
    small, large = rows.iloc[0], rows.iloc[-1]
    return (
        f"From batch {small['batch_size']} to {large['batch_size']}, training throughput goes "
        f"from {small['images_per_s']:,.0f} to {large['images_per_s']:,.0f} images/s "
        f"({large['images_per_s'] / small['images_per_s']:.1f}x) and test accuracy from "
        f"{small['test_acc']:.1%} to {large['test_acc']:.1%}: on the same epochs a larger "
        f"batch takes {large['batch_size'] // small['batch_size']}x fewer optimizer steps. "
        f"Peak memory (measured): {small['peak_bytes'] / MIB:,.1f} and "
        f"{large['peak_bytes'] / MIB:,.1f} MiB."
    )


def _say_lr_grid(frame: pd.DataFrame) -> str:
    parts = []
    for model, group in frame.groupby("model", sort=False):
        learned = group[(group["status"] == "ok") & (group["test_acc"] >= 0.5)]["lr"].tolist()
        failed = group[~group["lr"].isin(learned)]
        if not learned:
            parts.append(f"{model} reaches 50% at no learning rate tried")
            continue
        over = failed[failed["lr"] > max(learned)]["lr"].tolist()
        parts.append(f"{model} reaches 50% at lr {', '.join(f'{v:g}' for v in learned)}"
                     + (f" and fails from lr {min(over):g}" if over else
                        ", the largest tried included"))  # fmt: skip
    counts = {m: int(((g["status"] == "ok") & (g["test_acc"] >= 0.5)).sum())
              for m, g in frame.groupby("model", sort=False)}  # fmt: skip
    wider = max(counts, key=counts.get)
    works = ", ".join(sorted(set(frame["budget"] + ", techniques " + frame["tricks"])))
    return ("; ".join(parts) + f". {wider} trains at {counts[wider]} of the "
            f"{frame.groupby('model').size().max()} learning rates tried, the most. Work: "
            f"{works}.")  # fmt: skip


def _say_memory_modes(frame: pd.DataFrame, cost: pd.Series) -> str:
    peaks = frame.pivot_table(index="batch_size", columns="mode", values="peak_bytes").dropna()
    if not {"infer", "train"} <= set(peaks.columns) or peaks.empty:
        return "Training and inference were not both measured at one batch size."
    grads = 4 * cost["params"]  # fp32 weight gradients
    parts = []
    for batch in peaks.index:
        train, infer = peaks.loc[batch, "train"], peaks.loc[batch, "infer"]
        saved = cost["saved_activation_bytes"] / cost["batch_size"] * batch
        parts.append(
            f"at batch {batch}, training peaks at {train / MIB:,.0f} MiB against "
            f"{infer / MIB:,.0f} MiB for inference (measured); of what training adds, the weight "
            f"gradients are {grads / MIB:,.0f} MiB and the activations saved for backward "
            f"{saved / MIB:,.0f} MiB (counted): {'gradients' if grads > saved else 'activations'}"
            " dominate")  # fmt: skip
    text = "; ".join(parts)
    return (text[0].upper() + text[1:] + ". Inference frees each activation once used and "
            "keeps no gradients. Batch sizes missing from the table were skipped: one step would "
            "have exceeded the sweep's step limit.")  # fmt: skip


def _speed(model: str) -> Callable[[Store], Answer | None]:
    def answer(store: Store) -> Answer | None:
        rows = [r for r in store.rows("speed") if r["model"] == model and r["status"] == "ok"
                and r["image_size"] == archs.spec(model).input_size]  # fmt: skip
        cost = _profiles(store, [model])
        if not rows or cost.empty:
            return None
        frame = pd.DataFrame(rows).sort_values(["mode", "batch_size"])
        frame["source"] = [_source(r, "speed") for r in rows]
        columns = [MODEL, ("image_size", "input side", fmt_int), ("mode", "mode", fmt_text),
                   ("batch_size", "batch", fmt_int),
                   ("images_per_s", "images/s (measured)", fmt_ratio),
                   ("median_ms", "ms/step median", fmt_ms), ("cv", "CV", fmt_percent),
                   ("peak_bytes", "peak memory (MiB, measured)", fmt_mib)]  # fmt: skip
        return frame, columns, _say_memory_modes(frame, cost.iloc[0])

    return answer


def _layer_bytes(store: Store, model: str) -> Answer | None:
    """Parameters and one image's activations, in bytes (fp32), of conv against linear layers."""
    cost = _profiles(store, [model])
    if cost.empty:
        return None
    row = cost.iloc[0]
    layers = pd.DataFrame(store.details("profile", model, row["config"], "layers"))
    layers["kind"] = layers["type"].map({"Conv2d": "conv", "Linear": "fully connected"})
    layers = layers.dropna(subset=["kind"])
    layers["output_elements"] = [
        int(pd.Series(shape.split("x"), dtype=int).prod()) for shape in layers["output_shape"]
    ]
    frame = layers.groupby("kind", as_index=False).agg(
        layers=("layer", "size"), params=("params", "sum"), outputs=("output_elements", "sum")
    )
    frame["param_bytes"], frame["output_bytes"] = 4 * frame["params"], 4 * frame["outputs"]
    frame["model"], frame["source"] = model, row["source"]
    by = frame.set_index("kind")
    conv, fc = by.loc["conv"], by.loc["fully connected"]
    weights, outputs = by["param_bytes"].idxmax(), by["output_bytes"].idxmax()
    sizes = by[["param_bytes", "output_bytes"]]
    ratio = sizes.max() / sizes.min()
    text = (
        f"In fp32 the fully connected weights take {fc['param_bytes'] / MIB:,.1f} MiB and the "
        f"conv weights {conv['param_bytes'] / MIB:,.1f} MiB; one image's conv outputs take "
        f"{conv['output_bytes'] / 1024:,.0f} KiB and its fully connected outputs "
        f"{fc['output_bytes'] / 1024:,.0f} KiB. The {weights} layers dominate the memory for "
        f"parameters ({ratio['param_bytes']:,.1f}x), the {outputs} layers the memory for "
        f"activations ({ratio['output_bytes']:,.1f}x, growing with the batch)."
    )
    columns = [MODEL, ("kind", "layers", fmt_text), ("layers", "count", fmt_int), PARAMS,
               ("param_bytes", "weights (MiB, fp32)", fmt_mib),
               ("output_bytes", "outputs for one image (KiB, fp32)",
                lambda v: f"{v / 1024:,.1f}")]  # fmt: skip
    return frame, columns, text


def _epochs(models: tuple[str, ...]) -> Callable[[Store], Answer | None]:
    """Each network's preset run and what its epochs after the first bought."""

    def answer(store: Store) -> Answer | None:
        frame = _runs(store, models)
        if frame.empty or set(frame["model"]) != set(models):
            return None
        history = {r["model"]: store.details("train", r["model"], r["config"], "history")
                   for _, r in frame.iterrows()}  # fmt: skip
        return frame, [*RUN, *TRAINED], _say_epochs(frame, history)

    return answer


def _pooling(store: Store) -> Answer | None:
    """7.5.3: the pool's cost (counted against the formula) and its two implementations timed."""
    cost, timed = _blocks(store, ("7.5.3",)), _micro(store, "avg_pool")
    if cost.empty or timed.empty:
        return None
    row = cost.iloc[0]
    times = timed.set_index("method")["median_ms"]
    text = (
        f"A {row['kernel']}x{row['kernel']} average pool has no parameters and costs k^2 FLOPs "
        f"per output ({row['fwd_flops_formula'] / 1e6:,.2f} M per image by formula, "
        f"{row['fwd_flops_counted'] / 1e6:,.2f} M counted). As a depthwise conv with a constant "
        f"1/k^2 kernel it gives the same outputs (checked) with the same arithmetic, yet "
        f"avg_pool2d takes {times['avg_pool2d']:.3f} ms and the conv {times['conv2d']:.3f} ms "
        f"({_times(times['avg_pool2d'], times['conv2d'])}): with equal FLOPs the gap is the "
        "kernel's, not the arithmetic's. On this CPU the conv goes to oneDNN's vectorized "
        "depthwise kernel while avg_pool2d on an NCHW tensor runs PyTorch's generic pooling "
        "loop; the gap is a property of the library and device, not of pooling."
    )
    columns = [("method", "method", fmt_text), ("median_ms", "median (ms, measured)", fmt_ms),
               ("iqr_ms", "IQR (ms)", fmt_ms), ("rounds", "rounds", fmt_int)]  # fmt: skip
    return timed.assign(source=f"{timed['source'].iloc[0]}; {row['source']}"), columns, text


def _say_ridge(store: Store, frame: pd.DataFrame) -> str:
    machines = [r for r in store.rows("machine") if r["status"] == "ok"]
    text = "; ".join(f"{m}: {frame.loc[m, 'fwd_flops_per_byte']:.1f} FLOPs/byte"
                     for m in frame.index)  # fmt: skip
    if machines:
        m = machines[-1]
        ridge = m["peak_flops_per_s"] / m["bandwidth_bytes_per_s"]
        text += (f". This machine's ridge point (measured peak over measured bandwidth) is "
                 f"{ridge:.1f} FLOPs/byte: a network below it is limited by memory bandwidth, "
                 "above it by arithmetic")  # fmt: skip
    return text + "."


def _intensity(store: Store) -> Answer | None:
    frame = _profiles(store, ["alexnet", "googlenet"])
    if frame.empty:
        return None
    return frame, [MODEL, PARAMS, MACS, INTENSITY], _say_ridge(store, frame.set_index("model"))


def _min_size(store: Store) -> Answer | None:
    frame = _profiles(store, ["googlenet"])
    if frame.empty:
        return None
    side = int(frame["min_input_size"].iloc[0])
    return (
        frame,
        [MODEL, ("min_input_size", "smallest input side (found by building)", fmt_int)],
        (
            f"GoogLeNet accepts inputs down to {side}x{side}: every conv and pool pads, so no "
            "layer's output becomes empty; below 32 pixels the 7x7/2 stem and four stride-2 "
            "stages leave 1x1 maps, so it runs, but on almost no spatial information."
        ),
    )


def _say_bias(frame: pd.DataFrame) -> str:
    cost = frame.set_index("model")
    saved = int(cost.loc["bn_lenet", "params"] - cost.loc["bn_lenet_nobias", "params"])
    return (
        f"Removing the bias of the layers before a batch norm saves {saved} parameters: batch "
        "norm subtracts the batch mean, so a constant added before it has no effect. "
        + _say_compare(frame)
    )


def _say_bn_layers(frame: pd.DataFrame) -> str:
    cost = frame.set_index("model")
    extra = int(cost.loc["bn_lenet", "params"] - cost.loc["bn_lenet_convs", "params"])
    return (
        f"Batch norm after the linear layers too costs {extra} more parameters than after the "
        "convs only. " + _say_compare(frame)
    )


def _per_stage(models: list[str]) -> Callable[[Store], Answer | None]:
    def answer(store: Store) -> Answer | None:
        frame = _profiles(store, models)
        if frame.empty:
            return None
        rows = []
        for row in frame.to_dict("records"):
            layers = pd.DataFrame(store.details("profile", row["model"], row["config"], "layers"))
            stage = layers["layer"].astype(str).str.split(".").str[0]
            for name, params in layers.groupby(stage, sort=False)["params"].sum().items():
                rows.append({"model": row["model"], "stage": name, "params": params,
                             "source": row["source"]})  # fmt: skip
        stages = pd.DataFrame(rows)
        totals = frame.set_index("model")["params"]
        return (
            stages,
            [MODEL, ("stage", "top-level module", fmt_text), PARAMS],
            (
                "Totals: "
                + ", ".join(f"{m} {totals[m] / 1e6:,.2f} M" for m in models)
                + ". Each conv of a dense block writes only the growth rate's channels (its "
                "input grows along the block), and the transition layers halve the width; each "
                "3x3 conv of a residual stage maps the stage's full width to itself, so its "
                "weights grow with the square of the width."
            ),
        )

    return answer


C7 = "python -m bench blocks"
MICRO = "nox -s microbench"
PROFILE = "python -m bench profile"
TRAIN = "python -m bench train --experiment"

EXERCISES: tuple[Exercise, ...] = (
    Exercise("7.3.1", "Output shape of a conv with kernel (3, 5), padding (0, 1), stride (3, 4) "
             "on 8x8: formula against the built layer.",
             _block_answer(("7.3.1",), SHAPES, _say_shape), C7),
    Exercise("7.4.2", "Cost of one conv layer: forward MACs, memory, backward memory and MACs: "
             "formula, counted and measured (a stride and a kernel size beside the base layer "
             "of 7.4.3).", _block_answer(("7.4.2",), CONV_CASE, _say_conv_cost), C7),
    Exercise("7.4.3", "Doubling the input and output channels, and doubling the padding: how "
             "the MACs change.", _block_answer(("7.4.3",), CONV_CASE, _say_grid), C7),
    Exercise("7.4.5", "A 1x1 conv as conv2d and as one matrix product (64 -> 64 channels, "
             "56x56): equal outputs, time of each.",
             _micro_answer("conv1x1", ("method", "method", fmt_text), _say_fastest("method")),
             MICRO),
    Exercise("7.4.7", "Block-diagonal weights (g groups): MACs fall by g; how far does the "
             "measured latency fall?", _micro_answer("grouped_conv", ("groups", "groups", fmt_int),
                                                     _say_groups), MICRO),
    Exercise("7.5.3", "Average pooling as a convolution: equal outputs, the time of each; the "
             "cost of a pooling layer.", _pooling, f"{C7}; {MICRO}"),
    Exercise("7.2.x", "Cross-correlation as a Python loop, as unfold + matmul and as conv2d, at "
             "growing sizes.", _micro_answer("corr2d", ("name", "case", fmt_text), _say_corr2d),
             MICRO),
    Exercise("8.1.5.1.1", "AlexNet: memory of conv layers against fully connected layers "
             "(parameters, and activations for one image).", lambda s: _layer_bytes(s, "alexnet"),
             PROFILE),
    Exercise("8.1.5.1.2", "AlexNet: compute of conv layers against fully connected layers.",
             _cost(["alexnet"], [MACS, CONV_MACS, FC_MACS], _say_macs_split), PROFILE),
    Exercise("8.1.5.1.3", "AlexNet: memory in training against inference, measured at growing "
             "batch sizes.", _speed("alexnet"), "python -m bench speed --models alexnet"),
    Exercise("8.1.5.4", "AlexNet against LeNet: what more epochs buy each.",
             _epochs(("lenet", "alexnet")), f"{TRAIN} book"),
    Exercise("8.1.5.5.1", "A simpler AlexNet-style network that trains faster (a VGG for 28x28 "
             "inputs): cost and accuracy beside AlexNet.",
             _run_answer(("alexnet", "vgg_28"), _say_compare), f"{TRAIN} book networks_28"),
    Exercise("8.1.5.5.2", "Networks that work on 28x28 images directly: cost and accuracy.",
             _run_answer(("lenet", "lenet_28", "vgg_28", "resnet9_28"), _say_compare),
             f"{TRAIN} book networks_28"),
    Exercise("8.1.5.6", "Batch size against throughput, accuracy and peak memory (LeNet).",
             _run_answer(("lenet",), _say_batch, keep=lambda r: _varies(r, "batch_size")),
             f"{TRAIN} batch_sweep"),
    Exercise("8.1.5.7", "LeNet-5 with ReLU, and with ReLU and dropout, against the original.",
             _run_answer(("lenet", "lenet_modern", "lenet_dropout"), _say_compare),
             f"{TRAIN} book lenet_variants"),
    Exercise("8.2.5.1.1", "Parameters of AlexNet against VGG-11, VGG-16 and VGG-19.",
             _cost(["alexnet", "vgg11", "vgg16", "vgg19"], [PARAMS, CONV_PARAMS, FC_PARAMS],
                   _say_params), PROFILE),
    Exercise("8.2.5.1.2", "MACs in conv against fully connected layers, AlexNet against VGG-11.",
             _cost(["alexnet", "vgg11"], [MACS, CONV_MACS, FC_MACS], _say_macs_split), PROFILE),
    Exercise("8.2.5.1.3", "Reducing the fully connected cost: VGG-11, the book's quarter-width "
             "VGG-11, a 28x28 VGG with a 256-wide head.",
             _cost(["vgg11", "vgg11_small", "vgg_28"], [PARAMS, FC_PARAMS, MACS, FC_MACS],
                   _say_head), PROFILE),
    Exercise("8.2.5.3", "VGG-16 and VGG-19 from the paper's Table 1: parameters and MACs.",
             _cost(["vgg16", "vgg19"], [PARAMS, MACS], _say_totals), PROFILE),
    Exercise("8.2.5.4", "The small VGG-11 at smaller inputs than 224: cost and accuracy.",
             _run_answer(("vgg11_small",), _say_compare, keep=lambda r: _varies(r, "resize")),
             f"{TRAIN} book vgg_sizes"),
    Exercise("8.3.5.1-3", "NiN with one or three 1x1 convs, 3x3 convs, a fully connected head: "
             "parameters and MACs (accuracy: trained by the book preset only).",
             _cost(["nin", "nin_one_1x1", "nin_three_1x1", "nin_3x3", "nin_fc"], [PARAMS, MACS],
                   _say_totals), f"{TRAIN} book nin_variants --preset book"),
    Exercise("8.3.5.4", "NiN's resources: parameters, computation, memory for training and "
             "for prediction.", _cost(["nin"], [PARAMS, MACS, TRAIN_MEM, INFER_MEM, SAVED],
                                      _say_totals), PROFILE),
    Exercise("8.4.5.1", "GoogLeNet with batch norm against without: cost and accuracy.",
             _run_answer(("googlenet", "googlenet_bn"), _say_compare), f"{TRAIN} book variants"),
    Exercise("8.4.5.2", "The smallest image GoogLeNet accepts (found by building).", _min_size,
             PROFILE),
    Exercise("8.4.5.3", "A GoogLeNet variant that keeps 28x28 resolution: cost beside the "
             "book's at 96 pixels.",
             _cost(["googlenet", "googlenet_28"], [PARAMS, MACS, TRAIN_MEM], _say_totals),
             PROFILE),
    Exercise("8.4.5.4", "Parameters of AlexNet, VGG-11, NiN and GoogLeNet: where the savings "
             "come from.", _cost(["alexnet", "vgg11", "nin", "googlenet"],
                                 [PARAMS, CONV_PARAMS, FC_PARAMS], _say_params), PROFILE),
    Exercise("8.4.5.5", "GoogLeNet against AlexNet: computation and arithmetic intensity.",
             _intensity, f"{PROFILE}; python -m bench speed"),
    Exercise("8.5.7.1", "Bias before batch norm: parameters saved, accuracy.",
             _run_answer(("bn_lenet", "bn_lenet_nobias"), _say_bias),
             f"{TRAIN} book lenet_variants"),
    Exercise("8.5.7.2", "LeNet with and without batch norm over learning rates: where training "
             "fails.", _run_answer(("lenet", "bn_lenet"), _say_lr_grid,
                                   keep=lambda r: _varies(r, "lr")), f"{TRAIN} lr_grid"),
    Exercise("8.5.7.3", "Batch norm after every layer, after the convs only, and nowhere "
             "(ReLU LeNets).", _run_answer(("lenet_modern", "bn_lenet", "bn_lenet_convs"),
                                           _say_bn_layers), f"{TRAIN} book lenet_variants"),
    Exercise("8.6.7.1", "An Inception network against a residual network: cost and accuracy.",
             _run_answer(("googlenet", "resnet18"), _say_compare), f"{TRAIN} book"),
    Exercise("8.6.7.2", "ResNet-18/34/50/101/152: parameters, MACs, memory.",
             _cost(["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
                   [INPUT, PARAMS, MACS, TRAIN_MEM, SAVED], _say_totals), PROFILE),
    Exercise("8.6.7.3", "Bottleneck against basic blocks at equal depth (ResNet-50 against "
             "ResNet-34, both 3-4-6-3 blocks).", _cost(["resnet34", "resnet50"],
                                                      [PARAMS, MACS, SAVED], _say_totals),
             PROFILE),
    Exercise("8.6.7.4", "Pre-activation against post-activation ResNet-18: cost and accuracy.",
             _run_answer(("resnet18", "resnet18_preact"), _say_compare), f"{TRAIN} book variants"),
    Exercise("8.7.7.2", "Why DenseNet has fewer parameters than ResNet: per-stage parameters.",
             _per_stage(["densenet", "resnet18"]), PROFILE),
    Exercise("8.7.7.3", "DenseNet's memory against ResNet's at 224x224.",
             _cost(["densenet121", "resnet50"], [PARAMS, MACS, SAVED, TRAIN_MEM], _say_totals),
             PROFILE),
    Exercise("8.7.7.4", "DenseNet-121/169/201 from the paper's Table 1: parameters, MACs.",
             _cost(["densenet121", "densenet169", "densenet201"], [PARAMS, MACS], _say_totals),
             PROFILE),
    Exercise("8.8.6.1", "A four-stage AnyNet against the book's two-stage RegNetX: cost and "
             "accuracy.", _run_answer(("regnetx32", "anynet"), _say_compare),
             f"{TRAIN} book variants"),
    Exercise("8.8.6.2", "ResNeXt blocks against ResNet blocks in the same layout: cost and "
             "accuracy.", _run_answer(("resnet18", "resnext18"), _say_compare),
             f"{TRAIN} book variants"),
)  # fmt: skip


def render(store: Store) -> str:
    """The Markdown page."""
    sections = []
    for exercise in EXERCISES:
        answer = exercise.answer(store)
        head = f"## {exercise.id}\n\n{exercise.question}\n\n"
        if answer is None:
            sections.append(head + f"*Not measured yet*: `{exercise.command}` measures it.")
            continue
        frame, columns, reasoning = answer
        sources = "; ".join(sorted(set(frame["source"])))
        sections.append(head + markdown(frame, columns) + f"\n\nFrom: {sources}.\n\n{reasoning}")
    return (
        "# The chapters' exercises, answered with measured numbers\n\n"
        "Every number below is read from this run's results store (results.sqlite) by "
        "bench/render/exercises.py. MACs = multiply-accumulates, FLOPs = 2 x MACs; *counted* "
        "figures are exact counts on the meta device, *estimated* ones sums of counted parts, "
        "*measured* ones timings or memory peaks on the device named under each table. "
        "Accuracies come from the training runs of this run's preset: each table names the "
        "input side, optimizer, techniques and fixed work of its runs, and says what that work "
        "buys, not what the book's 10 epochs reach.\n\n" + "\n\n".join(sections) + "\n"
    )


def write_exercises(store: Store, out_dir: Path) -> list[Path]:
    path = out_dir / "exercises.md"
    atomic_write(path, render(store))
    return [path]
