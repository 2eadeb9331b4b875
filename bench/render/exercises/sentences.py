"""The sentences under the answers: each a function of the answer's rows, so that what it
says follows the numbers (rankings, ratios, whether a gap is within the test sets' noise)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from bench.recipes import EVAL_BATCH_SIZE
from bench.render.format import MIB
from bench.schema import Status


def ratio_text(a: float, b: float) -> str:
    return f"{a / b:,.1f}x"


def say_conv_cost(frame: pd.DataFrame) -> str:
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
    )


def say_grid(frame: pd.DataFrame) -> str:
    base = frame["fwd_macs_counted"].iloc[0]
    parts = [
        f"{case}: {m / base:.2f}x"
        for case, m in zip(frame["case"][1:], frame["fwd_macs_counted"][1:], strict=True)
    ]
    return (
        "MACs relative to the first row: " + "; ".join(parts) + ". Doubling either channel count "
        "doubles the cost, doubling both quadruples it; padding only enlarges the output."
    )


def say_shape(frame: pd.DataFrame) -> str:
    row = frame.iloc[0]
    same = (row["formula_h"], row["formula_w"]) == (row["built_h"], row["built_w"])
    return (
        f"floor((n + 2p - k) / s) + 1 gives {row['formula_h']} x {row['formula_w']}; the built "
        f"layer outputs {row['built_h']} x {row['built_w']}: "
        + ("they agree." if same else "they DISAGREE.")
    )


def say_fastest(label: str) -> Callable[[pd.DataFrame], str]:
    def say(frame: pd.DataFrame) -> str:
        best, worst = frame.loc[frame["median_ms"].idxmin()], frame.loc[frame["median_ms"].idxmax()]
        text = (
            f"Outputs were checked equal before timing. Fastest: {best[label]} "
            f"({best['median_ms']:.3f} ms), slowest: {worst[label]} ({worst['median_ms']:.3f} ms), "
            f"{ratio_text(worst['median_ms'], best['median_ms'])} apart"
        )
        if worst["median_ms"] - best["median_ms"] < max(best["iqr_ms"], worst["iqr_ms"]):
            return f"{text}: less than the spread of their timed calls (IQR), no clear winner."
        return f"{text}."

    return say


def say_groups(frame: pd.DataFrame) -> str:
    dense = frame.loc[frame["groups"] == 1].iloc[0]
    grouped = frame[frame["groups"] != 1]
    fewer, faster = dense["macs"] / grouped["macs"], dense["median_ms"] / grouped["median_ms"]
    parts = [
        f"{int(g)} groups: {m:.0f}x fewer MACs, {t:.1f}x faster"
        for g, m, t in zip(grouped["groups"], fewer, faster, strict=True)
    ]
    if (faster < fewer).all():
        parts[-1] += (
            ". Latency falls less than the MACs: small groups use the hardware "
            "poorly, and the memory traffic does not shrink with the groups"
        )
    return "; ".join(parts) + "."


def say_corr2d(frame: pd.DataFrame) -> str:
    side = int(frame["side"].max())
    largest = frame[frame["side"] == side].set_index("method")["median_ms"]
    return (
        f"At {side}x{side}: the Python loop takes "
        f"{largest['loop']:.3f} ms, unfold+matmul {largest['unfold']:.3f} ms, conv2d "
        f"{largest['conv2d']:.3f} ms ({ratio_text(largest['loop'], largest['conv2d'])} between "
        "the loop and conv2d); the loop's time grows with the output's area."
    )


def _share(frame: pd.DataFrame, part: str, whole: str, model: str) -> str:
    return f"{frame.loc[model, part] / frame.loc[model, whole]:.1%}"


def say_params(frame: pd.DataFrame) -> str:
    parts = [f"{m} {frame.loc[m, 'params'] / 1e6:,.2f} M" for m in frame.index]
    most = frame["params"].idxmax()
    return (
        "Parameters: "
        + ", ".join(parts)
        + f". {most} has the most; fully connected layers hold "
        + ", ".join(f"{_share(frame, 'params_linear', 'params', m)} of {m}'s" for m in frame.index)
        + "."
    )


def say_macs_split(frame: pd.DataFrame) -> str:
    return (
        "Convolutions do "
        + ", ".join(
            f"{_share(frame, 'fwd_conv_macs_per_image', 'fwd_macs_per_image', m)} of {m}'s MACs"
            for m in frame.index
        )
        + ": the fully connected layers hold the parameters, the convolutions do the arithmetic."
    )


def say_head(frame: pd.DataFrame) -> str:
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


def say_totals(frame: pd.DataFrame) -> str:
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


def say_memory_totals(frame: pd.DataFrame) -> str:
    """The totals, then a training step's memory against inference's and how much of it the
    activations saved for backward take; for two networks, whether memory follows their
    parameters and MACs."""
    train, saved = frame["train_bytes_est_sgd"], frame["saved_activation_bytes"]
    parts = [
        f"{m} {train[m] / MIB:,.0f} MiB ({ratio_text(train[m], frame.loc[m, 'infer_bytes_est'])}"
        f", {saved[m] / train[m]:.1%})"
        for m in frame.index
    ]
    text = (
        f"{say_totals(frame)} At batch 128 a training step needs (estimated; in brackets: "
        f"how many times inference's memory, and the share taken by the activations saved "
        f"for backward) {', '.join(parts)}."
    )
    if len(frame) == 2:
        text += _pair(frame, "train_bytes_est_sgd", "training memory", (saved / train).min() > 0.5)
    return text


def say_activations(frame: pd.DataFrame) -> str:
    """The totals, and for two networks whether the activations they save for backward follow
    their parameters and MACs."""
    return say_totals(frame) + _pair(
        frame, "saved_activation_bytes", "activations saved for backward"
    )


def _pair(frame: pd.DataFrame, column: str, what: str, activations: bool = True) -> str:
    """The first network's parameters, MACs and ``column`` as multiples of the second's; where
    ``column`` outgrows both by half again and is mostly ``activations``, why."""
    a, b = frame.index
    params, macs, other = (
        frame.loc[a, c] / frame.loc[b, c] for c in ("params", "fwd_macs_per_image", column)
    )
    outgrows = other > 1.5 * max(params, macs)
    text = (
        f" {a} has {params:.2f}x {b}'s parameters and {macs:.2f}x its MACs, "
        f"{'yet' if outgrows else 'and'} {other:.2f}x its {what}"
    )
    return text + (
        ": what backward keeps grows with the feature maps the layers write, not with the "
        "weights or the arithmetic."
        if outgrows and activations
        else "."
    )


def _label(row: pd.Series) -> str:
    return f"{row['model']} at {row['side']} px"


def _loop(techniques: str) -> str:
    """A run's techniques in words: the book's loop, or what changes it."""
    return "the book's loop" if techniques == "-" else f"techniques {techniques}"


def say_work(frame: pd.DataFrame) -> str:
    """What the runs trained on, and whether the comparison is on equal work."""
    works = sorted(set(frame["budget"]))
    same = len(works) == 1 and frame["techniques"].nunique() == 1 and frame["lr"].nunique() == 1
    return (
        f"All on the same work ({works[0]}, {_loop(frame['techniques'].iloc[0])}, lr "
        f"{frame['lr'].iloc[0]:g})."
        if same
        else "Not on equal work: "
        + "; ".join(f"{_label(r)}: {r['budget']}, lr {r['lr']:g}" for _, r in frame.iterrows())
        + "."
    )


def say_compare(frame: pd.DataFrame) -> str:
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
        shown = _percent_points(best["test_acc"]) - _percent_points(worst["test_acc"])
        text += (
            f"The most accurate, {_label(best)}, is {shown:.1f} points above "
            f"{_label(worst)} for {macs:,.2f}x its MACs per image and "
            f"{best['images_per_s'] / worst['images_per_s']:,.2f}x its training throughput"
            + (
                f"; the gap is within the test sets' noise (two standard errors: "
                f"{100 * noise:.1f} points). "
                if gap < noise
                else ". "
            )
            + _say_seeds(ranked)
        )
    return text + say_work(frame)


def _say_seeds(ranked: pd.DataFrame) -> str:
    """Where every run compared has several seeds: each one's accuracy over them, and how far
    the seeds move one network against the gap between the networks' means."""
    if "seeds" not in ranked or any(len(seeds) < 2 for seeds in ranked["seeds"]):
        return ""
    means = [sum(s.values()) / len(s) for s in ranked["seeds"]]
    moved = max(max(s.values()) - min(s.values()) for s in ranked["seeds"])
    each = "; ".join(
        f"{r['model']} " + ", ".join(f"{a:.1%}" for a in r["seeds"].values()) + f" (mean {m:.1%})"
        for (_, r), m in zip(ranked.iterrows(), means, strict=True)
    )
    gap = _percent_points(max(means)) - _percent_points(min(means))
    return (
        f"Over seeds {', '.join(map(str, ranked['seeds'].iloc[0]))}: {each}; the seeds move a "
        f"network by up to {100 * moved:.1f} points, the means differ by {gap:.1f}. "
    )


def _percent_points(accuracy: float) -> float:
    """An accuracy in percent as the sentences print it (to a tenth of a point), so that a gap
    printed beside two printed accuracies is their difference."""
    return float(f"{accuracy:.1%}".rstrip("%"))


def _standard_error(a: pd.Series, b: pd.Series) -> float:
    """Of the difference of two test accuracies, each a binomial proportion over its test set."""

    def variance(row: pd.Series) -> float:
        per_class = row["config"]["test_per_class"]
        return row["test_acc"] * (1 - row["test_acc"]) / (10 * per_class if per_class else 10_000)

    return math.sqrt(variance(a) + variance(b))


def say_epochs(frame: pd.DataFrame, history: dict[str, list[dict]]) -> str:
    """What the epochs after the first bought each run."""
    parts = []
    for _, r in frame.iterrows():
        points = history[r["model"]]
        parts.append(
            f"{_label(r)} went from {points[0]['test_acc']:.1%} after epoch 1 to "
            f"{points[-1]['test_acc']:.1%} after epoch {len(points)} "
            f"({r['train_s']:.0f} s of training)"
        )
    return "; ".join(parts) + ". " + say_work(frame)


def say_batch(frame: pd.DataFrame) -> str:
    rows = frame.sort_values("batch_size")
    small, large = rows.iloc[0], rows.iloc[-1]
    return (
        f"From batch {small['batch_size']} to {large['batch_size']}, training throughput goes "
        f"from {small['images_per_s']:,.0f} to {large['images_per_s']:,.0f} images/s "
        f"({large['images_per_s'] / small['images_per_s']:.1f}x) and test accuracy from "
        f"{small['test_acc']:.1%} to {large['test_acc']:.1%}: on the same epochs a larger "
        f"batch takes {large['batch_size'] // small['batch_size']}x fewer optimizer steps. "
        f"Peak memory of the run (measured; evaluation, in batches of {EVAL_BATCH_SIZE}, "
        f"included): {small['peak_bytes'] / MIB:,.1f} and {large['peak_bytes'] / MIB:,.1f} MiB."
    )


def say_lr_grid(frame: pd.DataFrame) -> str:
    parts = []
    for model, group in frame.groupby("model", sort=False):
        learned = group[(group["status"] == Status.OK) & (group["test_acc"] >= 0.5)]["lr"].tolist()
        failed = group[~group["lr"].isin(learned)]
        if not learned:
            parts.append(f"{model} reaches 50% at no learning rate tried")
            continue
        over = failed[failed["lr"] > max(learned)]["lr"].tolist()
        under = failed[failed["lr"] < min(learned)]["lr"].tolist()
        parts.append(
            f"{model} reaches 50% at lr {', '.join(f'{v:g}' for v in learned)}"
            + (f", not at the smaller {', '.join(f'{v:g}' for v in under)}" if under else "")
            + (f", and fails from lr {min(over):g}" if over else ", the largest tried included")
        )
    counts = {
        m: int(((g["status"] == Status.OK) & (g["test_acc"] >= 0.5)).sum())
        for m, g in frame.groupby("model", sort=False)
    }
    wider = max(counts, key=counts.get)
    works = ", ".join(
        sorted(
            {f"{b}, {_loop(t)}" for b, t in zip(frame["budget"], frame["techniques"], strict=True)}
        )
    )
    return (
        "; ".join(parts) + f". {wider} trains at {counts[wider]} of the "
        f"{frame.groupby('model').size().max()} learning rates tried, the most. Work: "
        f"{works}."
    )


def say_memory_modes(frame: pd.DataFrame, cost: pd.Series) -> str:
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
            " dominate"
        )
    text = "; ".join(parts)
    text = (
        text[0].upper()
        + text[1:]
        + (". Inference frees each activation once used and keeps no gradients.")
    )
    if len(peaks) < frame["batch_size"].nunique():
        text += (
            " A batch size the table shows in one mode only was not timed in the other "
            "(the speed page's note says why)."
        )
    return text


def say_bias(frame: pd.DataFrame) -> str:
    cost = frame.set_index("model")
    saved = int(cost.loc["bn_lenet", "params"] - cost.loc["bn_lenet_nobias", "params"])
    return (
        f"Removing the bias of the layers before a batch norm saves {saved} parameters: batch "
        "norm subtracts the batch mean, so a constant added before it has no effect. "
        + say_compare(frame)
    )


def say_bn_layers(frame: pd.DataFrame) -> str:
    cost = frame.set_index("model")
    extra = int(cost.loc["bn_lenet", "params"] - cost.loc["bn_lenet_convs", "params"])
    return (
        f"Batch norm after the linear layers too costs {extra} more parameters than after the "
        "convs only. " + say_compare(frame)
    )
