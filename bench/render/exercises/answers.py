"""Answers that join more than one kind of row (a speed sweep with its profile, layer tables,
training curves, chapter 7's pooling layer with its two ways timed, the machine's roof)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

import archs
from bench.render.exercises.rows import (
    INPUT,
    INTENSITY,
    MACS,
    MODEL,
    PARAMS,
    RUN,
    TIMES,
    TRAINED,
    Answer,
    block_rows,
    profile_rows,
    source_of,
    train_rows,
)
from bench.render.exercises.sentences import ratio_text, say_epochs, say_memory_modes
from bench.render.format import MIB, fmt_int, fmt_mib, fmt_ms, fmt_percent, fmt_ratio, fmt_text
from bench.render.setups import book_speed, fp32_roof, speed_setup
from bench.store import Store


def speed_answer(model: str) -> Callable[[Store], Answer | None]:
    def answer(store: Store) -> Answer | None:
        side = archs.spec(model).image_size
        rows = [
            r
            for r in book_speed(store.rows("speed"))
            if (r["model"], r["image_size"]) == (model, side)
        ]
        cost = profile_rows(store, [model])
        if not rows or cost.empty:
            return None
        frame = pd.DataFrame(rows)
        frame["source"] = [f"{source_of(r, 'speed')}, {speed_setup(r)}" for r in rows]
        frame = frame.sort_values(["mode", "batch_size"])
        columns = [
            MODEL,
            ("image_size", "input side", fmt_int),
            ("mode", "mode", fmt_text),
            ("batch_size", "batch", fmt_int),
            ("images_per_s", "images/s (measured)", fmt_ratio),
            ("median_ms", "ms/step median", fmt_ms),
            ("cv", "CV", fmt_percent),
            ("peak_bytes", "growth above the resident weights (MiB, measured)", fmt_mib),
        ]
        return frame, columns, say_memory_modes(frame, cost.iloc[0])

    return answer


def layer_bytes(store: Store, model: str) -> Answer | None:
    """Parameters and one image's activations, in bytes (fp32), of conv against linear layers."""
    cost = profile_rows(store, [model])
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
    columns = [
        MODEL,
        ("kind", "layers", fmt_text),
        ("layers", "count", fmt_int),
        PARAMS,
        ("param_bytes", "weights (MiB, fp32)", fmt_mib),
        ("output_bytes", "outputs for one image (KiB, fp32)", lambda v: f"{v / 1024:,.1f}"),
    ]
    return frame, columns, text


def epochs_answer(models: tuple[str, ...]) -> Callable[[Store], Answer | None]:
    """Each network's preset run and what its epochs after the first bought."""

    def answer(store: Store) -> Answer | None:
        frame = train_rows(store, models)
        if frame.empty or set(frame["model"]) != set(models):
            return None
        history = {
            r["model"]: store.details("train", r["model"], r["config"], "history")
            for _, r in frame.iterrows()
        }
        return frame, [*RUN, *TRAINED], say_epochs(frame, history)

    return answer


def pooling(store: Store) -> Answer | None:
    """7.5.3: the pool's cost (counted against the formula) and its two ways timed."""
    cost, timed = block_rows(store, ("7.5.3",)), block_rows(store, ("7.5.3",), timed=True)
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
        f"({ratio_text(times['avg_pool2d'], times['conv2d'])}): with equal FLOPs the gap is the "
        "kernels', a property of the library on this device, not of pooling."
    )
    if (timed["device"] == "cpu").all() and times["conv2d"] < times["avg_pool2d"]:
        text += (
            " On a CPU the conv goes to oneDNN's vectorized depthwise kernel, while "
            "avg_pool2d on an NCHW tensor runs PyTorch's generic pooling loop."
        )
    return (
        timed.assign(source=f"{timed['source'].iloc[0]}; {row['source']}"),
        [("method", "method", fmt_text), *TIMES],
        text,
    )


def say_ridge(store: Store, frame: pd.DataFrame) -> str:
    roof = fp32_roof(store)
    text = "At 224 pixels, forward FLOPs per byte moved at batch 128 (batch 1): " + "; ".join(
        f"{m}: {frame.loc[m, 'fwd_flops_per_byte']:.1f} "
        f"({frame.loc[m, 'flops_per_byte_batch1']:.1f})"
        for m in frame.index
    )
    if roof:
        ridge = roof["peak_flops_per_s"] / roof["bandwidth_bytes_per_s"]
        text += (
            f". This machine's fp32 ridge point (peak over measured bandwidth) is "
            f"{ridge:.1f} FLOPs/byte: a network below it is limited by memory bandwidth, "
            "above it by arithmetic"
        )
    return text + "."


def intensity(store: Store) -> Answer | None:
    """AlexNet and GoogLeNet at one input, 224 pixels: arithmetic intensity at batch 128, as
    counted, and at batch 1, where the weights are read for one image alone (each op reads its
    weights once per batch, its activations once per image)."""
    frame = profile_rows(store, ["alexnet", "googlenet"], side=224)
    if frame.empty:
        return None
    per_image = (frame["fwd_bytes_moved"] - frame["weight_bytes"]) / frame["batch_size"]
    frame["flops_per_byte_batch1"] = frame["fwd_flops_per_image"] / (
        frame["weight_bytes"] + per_image
    )
    columns = [
        MODEL,
        INPUT,
        PARAMS,
        MACS,
        INTENSITY,
        ("flops_per_byte_batch1", "fwd FLOPs / byte at batch 1 (estimated)", fmt_ratio),
    ]
    return frame, columns, say_ridge(store, frame.set_index("model"))


def min_size(store: Store) -> Answer | None:
    frame = profile_rows(store, ["googlenet"])
    if frame.empty:
        return None
    side = int(frame["min_image_size"].iloc[0])
    return (
        frame,
        [MODEL, ("min_image_size", "smallest input side (found by building)", fmt_int)],
        (
            f"GoogLeNet accepts inputs down to {side}x{side}: every conv and pool pads, so no "
            "layer's output becomes empty; below 32 pixels the 7x7/2 stem and four stride-2 "
            "stages leave 1x1 maps, so it runs, but on almost no spatial information."
        ),
    )


def per_stage(models: list[str]) -> Callable[[Store], Answer | None]:
    def answer(store: Store) -> Answer | None:
        frame = profile_rows(store, models)
        if frame.empty:
            return None
        rows = []
        for row in frame.to_dict("records"):
            layers = pd.DataFrame(store.details("profile", row["model"], row["config"], "layers"))
            stage = layers["layer"].astype(str).str.split(".").str[0]
            for name, params in layers.groupby(stage, sort=False)["params"].sum().items():
                rows.append(
                    {
                        "model": row["model"],
                        "stage": name,
                        "params": params,
                        "source": row["source"],
                    }
                )
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


def stems(store: Store) -> Answer | None:
    """GoogLeNet at 96 pixels against the 28-pixel variant: what each costs, and why the
    smaller input costs more: how far each stem shrinks the maps before the first Inception
    block (read from the per-layer table)."""
    frame = profile_rows(store, ["googlenet", "googlenet_28"])
    if frame.empty:
        return None
    first = {}
    for row in frame.to_dict("records"):
        layers = store.details("profile", row["model"], row["config"], "layers")
        block = next(layer for layer in layers if layer["type"] == "Inception")
        first[row["model"]] = int(block["output_shape"].split("x")[-1])
    cost = frame.set_index("model")
    book, small = cost.loc["googlenet"], cost.loc["googlenet_28"]
    shrink = {m: cost.loc[m, "image_size"] / side for m, side in first.items()}
    text = (
        f"googlenet_28 at {small['image_size']} px counts "
        f"{ratio_text(small['fwd_macs_per_image'], book['fwd_macs_per_image'])} the MACs per "
        f"image of googlenet at {book['image_size']} px, on "
        f"{(small['image_size'] / book['image_size']) ** 2:.1%} of its pixels: MACs grow with "
        "the input's area for one architecture, and the two differ in their stem, the layers "
        f"before the first Inception block. The book's stem shrinks {book['image_size']} "
        f"pixels {shrink['googlenet']:.0f}-fold, to {first['googlenet']}x{first['googlenet']} "
        f"maps; the variant's shrinks {small['image_size']} pixels "
        f"{shrink['googlenet_28']:.0f}-fold, to {first['googlenet_28']}x"
        f"{first['googlenet_28']}, so each of its Inception blocks works on larger maps."
    )
    return frame, [MODEL, INPUT, PARAMS, MACS], text
