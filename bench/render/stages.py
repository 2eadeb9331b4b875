"""The pages of the measuring stages profile, speed, onnx and pipeline, rendered from the
results store only: nothing here measures (training's page is in training.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.provenance import cpu_of
from bench.render.format import (
    CONVENTIONS,
    Column,
    atomic_write,
    book_rank,
    fmt_int,
    fmt_mega,
    fmt_mib,
    fmt_ms,
    fmt_percent,
    fmt_ratio,
    fmt_text,
    markdown,
)
from bench.render.setups import POINT, speed_setup
from bench.schema import Status
from bench.store import Store


def _fewest(frame: pd.DataFrame) -> str:
    """The fewest steps any measured point of ``frame`` timed ("-" where none was)."""
    fewest = frame["n"].min() if "n" in frame else None
    return "-" if fewest is None or pd.isna(fewest) else f"{int(fewest)}"


SUMMARY_COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("input", "input (C x H x W)", fmt_text),
    ("batch_size", "batch", fmt_int),
    ("params", "params", fmt_int),
    ("params_conv", "conv params", fmt_int),
    ("params_linear", "linear params", fmt_int),
    ("fwd_macs_per_image", "fwd MACs / image (M, counted)", fmt_mega),
    ("fwd_conv_macs_per_image", "of which conv (M)", fmt_mega),
    ("fwd_linear_macs_per_image", "of which linear (M)", fmt_mega),
    ("bwd_macs_per_image", "bwd MACs / image (M, counted)", fmt_mega),
    ("agreement", "fvcore and FlopCounterMode agree", fmt_text),
    ("fwd_flops_per_byte", "fwd FLOPs / byte (estimated)", fmt_ratio),
    ("saved_activation_bytes", "saved for backward at batch (MiB, counted)", fmt_mib),
    (
        "infer_peak_bytes",
        "activation peak of inference at batch, weights excluded (MiB, counted)",
        fmt_mib,
    ),
    (
        "infer_bytes_est",
        "inference at batch: weights + input + activation peak (MiB, estimated)",
        fmt_mib,
    ),
    ("train_bytes_est_sgd", "training step, SGD: its fullest moment (MiB, estimated)", fmt_mib),
    ("train_bytes_est_adam", "training, Adam: SGD's + 2 moments (MiB, estimated)", fmt_mib),
    ("min_image_size", "smallest input", fmt_int),
    ("uncounted_ops", "ops not counted", fmt_text),
]
LAYER_COLUMNS: list[Column] = [
    ("layer", "layer", fmt_text),
    ("type", "type", fmt_text),
    ("output_shape", "output (C x H x W)", fmt_text),
    ("params", "params", fmt_int),
    ("fwd_macs", "fwd MACs (M)", fmt_mega),
    ("bwd_macs", "bwd MACs (M)", fmt_mega),
    ("fwd_bytes_moved", "fwd bytes moved (MiB, estimated)", fmt_mib),
    ("fwd_flops_per_byte", "fwd FLOPs / byte", fmt_ratio),
]
OP_COLUMNS: list[Column] = [
    ("op", "op", fmt_text),
    ("phase", "phase", fmt_text),
    ("category", "category", fmt_text),
    ("calls", "calls", fmt_int),
    ("macs", "MACs (M)", fmt_mega),
    ("flops", "FLOPs (M)", fmt_mega),
]


def profile_name(row: dict[str, Any]) -> str:
    """File stem for one profiled (model, config), portable: a ``tv:``/``timm:`` name's colon,
    which some file systems refuse, becomes a dash."""
    size, channels, batch = (row["config"][k] for k in ("image_size", "in_channels", "batch_size"))
    return f"{row['model'].replace(':', '-')}_{size}px_c{channels}_b{batch}"


def agreement(row: dict[str, Any]) -> str:
    """Whether the independent counters agreed with ours, where they ran."""
    if row["counters_agree"] is None:
        return "not checked (`--check` runs them)"
    said = "yes" if row["counters_agree"] else "NO"
    if row["fvcore_fwd_macs_per_image"] is None:
        said += " (FlopCounterMode only: fvcore not installed)"
    return said


def write_profile(store: Store, out_dir: Path) -> list[Path]:
    """Summary and per-model tables (CSV and Markdown) of every profile in the store."""
    rows = sorted(
        (r for r in store.rows("profile") if r["status"] == Status.OK),
        key=lambda r: (book_rank(r["model"]), sorted(r["config"].items())),
    )
    if not rows:
        return []
    summary = pd.DataFrame(rows)
    summary["input"] = [f"{r['in_channels']} x {r['image_size']} x {r['image_size']}" for r in rows]
    summary["agreement"] = [agreement(r) for r in rows]
    checked = sorted(
        {cpu_of(r["provenance"]) for r in rows if r["fvcore_fwd_macs_per_image"] is not None}
    )
    dates = sorted(r["provenance"]["date"] for r in rows)
    fvcore = f"fvcore's cross-check ran one forward pass on: {', '.join(checked)}. "
    header = (
        "# Cost of each network (`python -m bench profile`)\n\n"
        f"{CONVENTIONS} Per-image figures are the batch's divided by its size. Training memory "
        "(estimated) = weights, input and labels, and the fullest moment of the step from the "
        "activations saved for backward and the gradients made (memory.md says how, and sets "
        "it beside the CPU allocator's peak) + optimizer state; activation peak of inference = "
        "tensors alive at once in one forward pass (input and weights excluded). "
        f"{fvcore if checked else ''}Counted {dates[0]} to {dates[-1]}.\n\n"
    )
    written = [out_dir / "summary.md", out_dir / "summary.csv"]
    atomic_write(written[0], header + markdown(summary, SUMMARY_COLUMNS) + "\n")
    csv = summary.drop(columns=["config", "provenance", "input", "status", "agreement"])
    atomic_write(written[1], csv.to_csv(index=False))
    for row in rows:
        config = row["config"]
        layers = pd.DataFrame(store.details("profile", row["model"], config, "layers"))
        ops = pd.DataFrame(store.details("profile", row["model"], config, "ops"))
        by_op = ops.groupby(["op", "phase", "category"], as_index=False)[
            ["calls", "macs", "flops"]
        ].sum()
        stem = out_dir / profile_name(row)
        text = (
            f"# {row['model']}: cost per layer and per op\n\n"
            f"Input {config['in_channels']} x {config['image_size']} x {config['image_size']}, "
            f"batch {config['batch_size']}: every figure is for the whole batch. {CONVENTIONS} "
            "A layer is the innermost module that ran the op (a block that adds or concatenates "
            "its branches owns that addition). Bytes moved: each op reads its tensor arguments "
            "and writes its outputs once.\n\n## Per layer\n\n"
            + markdown(layers, LAYER_COLUMNS)
            + "\n\n## Per op\n\n"
            + markdown(by_op, OP_COLUMNS)
            + f"\n\nOps not counted: {row['uncounted_ops'] or 'none'}.\n"
        )
        files = {
            stem.with_suffix(".md"): text,
            stem.with_name(stem.name + "_layers.csv"): layers.to_csv(index=False),
            stem.with_name(stem.name + "_ops.csv"): ops.to_csv(index=False),
        }
        for path, content in files.items():
            atomic_write(path, content)
        written += files
    return written


SPEED_COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("mode", "mode", fmt_text),
    ("batch_size", "batch", fmt_int),
    ("status", "status", fmt_text),
    ("images_per_s", "images/s (median)", fmt_ratio),
    ("median_ms", "ms/step median", fmt_ms),
    ("p90_ms", "p90", fmt_ms),
    ("p99_ms", "p99", fmt_ms),
    ("n", "n", fmt_int),
    ("cv", "CV", fmt_percent),
    ("peak_bytes", "peak memory (MiB, measured)", fmt_mib),
    ("mfu", "MFU", fmt_percent),
    ("max_step_s", "step limit (s)", fmt_ratio),
    ("note", "note", fmt_text),
]


def _without_measured_skips(group: pd.DataFrame) -> pd.DataFrame:
    """``group`` less each skipped batch size that another row of it measured (a later run
    with a higher step limit)."""
    points = pd.MultiIndex.from_frame(group[list(POINT)])
    measured = points[(group["status"] == Status.OK).to_numpy()]
    return group[~((group["status"] == Status.SKIPPED).to_numpy() & points.isin(measured))]


def _peak(source: str, values: pd.Series) -> str:
    """A peak's source with its value, or the range of its values over the runs that read it
    (a CPU's measured matmul differs from run to run)."""
    low, high = values.min() / 1e9, values.max() / 1e9
    if low != low:  # no figure known: the source says so
        return source
    value = f"{low:,.0f}" if round(low) == round(high) else f"{low:,.0f} to {high:,.0f}"
    return f"{source}: {value} GFLOP/s"


def write_speed(store: Store, out_dir: Path) -> list[Path]:
    """One table per (device, precision, settings) of the stored speed rows, CSV and Markdown."""
    rows = store.rows("speed")
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    frame["mode"] = [r["config"]["mode"] for r in rows]  # a failure's row has none of its own
    if "device_name" not in frame:  # failures alone
        frame["device_name"] = None
    frame["order"] = frame["model"].map(book_rank)
    frame = frame.sort_values(["order", "model", "mode", "batch_size"])
    sections = []
    settings = ["device_name", "precision", "channels_last", "compiled", "time_cap_s"]
    roofs = {(r["model"], r["config"]["precision"]): r for r in store.rows("machine")}
    measured = frame.dropna(subset=["device_name"])
    for key, group in measured.groupby(settings, sort=False) if len(measured) else ():
        device, precision, _, _, cap = key
        kinds = sorted(set(group["memory_kind"].dropna()))
        peaks = [
            _peak(source, values)
            for source, values in group.groupby("peak_source")["peak_flops_per_s"]
        ]
        roof = roofs.get((device, precision), {})
        achievable = (
            f" A {roof['achievable_source'].removeprefix('measured: ')} achieves "
            f"{roof['achievable_flops_per_s'] / 1e9:,.0f} GFLOP/s (measured), "
            f"{roof['achievable_flops_per_s'] / roof['peak_flops_per_s']:.0%} of "
            "the peak."
            if "achievable_flops_per_s" in roof
            else ""
        )
        sections.append(
            f"## {device}, {speed_setup(group.iloc[0])}"
            + f"\n\nProtocol: untimed warm-up steps, then single steps timed until {cap:g} s "
            f"are spent and at least a minimum were timed (n: how many; the fewest here: "
            f"{_fewest(group)}); throughput is "
            "the batch over the median step. A training step is forward, cross-entropy, "
            "backward and an SGD step. A batch size whose step would exceed the run's step "
            "limit, extrapolated from the previous size, is skipped "
            "(a skip that a run with a higher limit measured is not listed; a point that two "
            "runs measured is listed for each, their difference being run-to-run noise, and the "
            "other pages read the one with more timed steps). Peak memory: "
            f"{'; '.join(kinds)}, the highest during the timed steps over what was in use "
            "before the step's input batch was made (the weights): the input batch, "
            "activations, gradients and workspaces, not what only the warm-up held (cuDNN's "
            "algorithm search) nor the runtime's one-time allocations (thread pools, library "
            "handles), which a step before each process's first point makes. MFU: achieved "
            "FLOP/s (FLOPs per step counted as in bench profile) over the peak of the run "
            "that timed the row "
            f"({'; '.join(peaks)}).{achievable}\n\n"
            + markdown(_without_measured_skips(group), SPEED_COLUMNS)
        )
    failed = frame[frame["device_name"].isna()]
    if len(failed):
        sections.append(
            "## Runs without a result\n\n"
            + markdown(
                failed,
                [
                    ("model", "model", fmt_text),
                    ("config", "settings", fmt_text),
                    ("status", "status", fmt_text),
                    ("note", "note", fmt_text),
                ],
            )
        )
    dates = sorted(r["provenance"]["date"] for r in rows)
    text = (
        "# Throughput, latency and memory (`python -m bench speed`)\n\n"
        f"Measured {dates[0]} to {dates[-1]}; one child process per (model, mode).\n\n"
        + "\n\n".join(sections)
        + "\n"
    )
    written = [out_dir / "speed.md", out_dir / "speed.csv"]
    atomic_write(written[0], text)
    atomic_write(written[1], frame.drop(columns=["order", "provenance"]).to_csv(index=False))
    return written


ONNX_COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("batch_size", "batch", fmt_int),
    ("status", "status", fmt_text),
    ("provider", "provider that ran", fmt_text),
    ("parity", "max abs diff (parity)", fmt_text),
    ("images_per_s", "onnxruntime images/s (median)", fmt_ratio),
    ("median_ms", "ms median", fmt_ms),
    ("p90_ms", "p90", fmt_ms),
    ("p99_ms", "p99", fmt_ms),
    ("n", "n", fmt_int),
    ("cv", "CV", fmt_percent),
    ("torch_images_per_s", "PyTorch images/s (median)", fmt_ratio),
    ("torch_cv", "PyTorch CV", fmt_percent),
    ("ort_over_torch", "onnxruntime / PyTorch", lambda v: "-" if pd.isna(v) else f"{v:.2f}x"),
    ("note", "note", fmt_text),
]


def write_onnx(store: Store, out_dir: Path) -> list[Path]:
    """The stored ONNX exports and onnxruntime timings, CSV and Markdown."""
    rows = store.rows("onnx")
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    frame["order"] = frame["model"].map(book_rank)
    frame = frame.sort_values(["order", "model", "batch_size"])
    nothing = pd.Series(index=frame.index, dtype=object)  # failures alone carry no parity
    frame["parity"] = [
        "-" if pd.isna(d) else f"{d:.1e} ({'ok' if ok else 'over 1e-4'})"
        for d, ok in zip(
            frame.get("max_abs_diff", nothing), frame.get("parity_ok", nothing), strict=True
        )
    ]
    devices = sorted(set(frame.get("device_name", pd.Series(dtype=str)).dropna()))
    dates = sorted(r["provenance"]["date"] for r in rows)
    versions = sorted(
        {
            f"onnxruntime {r.get('onnxruntime') or '(not recorded)'} beside torch "
            f"{r['provenance']['torch']}"
            for r in rows
            if "provider" in r
        }
    )
    text = (
        "# ONNX export and onnxruntime (`python -m bench onnx`)\n\n"
        "Exported with torch.onnx (dynamo exporter, dynamic batch axis), checked with "
        "onnx.checker; parity is the largest absolute difference of fp32 logits between "
        "PyTorch and onnxruntime in eval mode on a batch of 2, TF32 off on both sides "
        "(tolerance 1e-4). Both runtimes "
        "are timed in the same child process with the protocol of `bench speed` (warm-up, then "
        "single steps until the time cap is spent and at least a minimum were timed; the "
        f"fewest here: {_fewest(frame)}), "
        "with as many threads each. Device: "
        f"{', '.join(devices) or '-'}; {'; '.join(versions) or '-'}; measured {dates[0]} to "
        f"{dates[-1]}.\n\n" + markdown(frame, ONNX_COLUMNS) + "\n"
    )
    written = [out_dir / "onnx.md", out_dir / "onnx.csv"]
    atomic_write(written[0], text)
    atomic_write(written[1], frame.drop(columns=["order", "provenance"]).to_csv(index=False))
    return written


def write_pipeline(store: Store, out_dir: Path) -> list[Path]:
    """Training images/s of the three feeds per network, and the two ratios."""
    rows = store.rows("pipeline")
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    frame["input"] = [f"{r['resize'] or 28} px" for r in rows]
    frame["seconds"] = [r["config"]["seconds"] for r in rows]

    def by_feed(values: str) -> pd.DataFrame:
        return frame.pivot_table(
            index=["model", "input", "seconds"], columns="feed", values=values, sort=False
        )

    table = by_feed("images_per_s")
    spread = by_feed("cv")
    table["spread"] = [
        " / ".join(fmt_percent(v) for v in feeds)
        for feeds in spread[["ours", "torchvision", "compute_only"]].to_numpy()
    ]
    table["compute_ms"] = by_feed("median_ms")["compute_only"]
    table["batch_ms"] = by_feed("batch_ms")["ours"]
    table = table.reset_index()
    table["ours_over_book"] = table["ours"] / table["torchvision"]
    table["ours_over_compute"] = table["ours"] / table["compute_only"]
    columns: list[Column] = [
        ("model", "model", fmt_text),
        ("input", "input", fmt_text),
        ("seconds", "timed (s)", fmt_text),
        ("ours", "ours: device batches (images/s)", fmt_ratio),
        ("torchvision", "book: torchvision + DataLoader (images/s)", fmt_ratio),
        ("compute_only", "compute only (images/s)", fmt_ratio),
        ("spread", "CV of the steps: ours / book / compute only", fmt_text),
        ("ours_over_book", "ours / book", lambda v: "-" if pd.isna(v) else f"{v:.2f}x"),
        ("ours_over_compute", "ours / compute only", fmt_percent),
        ("batch_ms", "making one of our batches (ms)", fmt_ms),
        ("compute_ms", "one training step (ms, compute only)", fmt_ms),
    ]
    devices = sorted({r["config"]["device"] for r in rows})
    text = (
        "# Input pipelines (`python -m bench pipeline`)\n\n"
        "Training images/s at batch 128: each step (fetching its batch, the SGD update "
        "included) is timed after 3 warm-up steps; the three pipelines take turns in three "
        "rounds that together last the time in the table; throughput is the batch over the "
        f"median step. On {', '.join(devices)}. "
        "*Ours*: the dataset held on the device as uint8, batches sliced from a permutation, "
        "scaled and resized on the device. *Book*: torchvision Resize and ToTensor per image "
        "in DataLoader workers, the loss read on the host every step. *Compute only*: one random "
        "batch already on the device. The goal is ours within 5% of compute only. The last "
        "two columns time, separately, what our pipeline adds to a step and the step itself: "
        "their ratio is our pipeline's cost without the machine's noise between rounds.\n\n"
        + markdown(table, columns)
        + "\n"
    )
    written = [out_dir / "pipeline.md", out_dir / "pipeline.csv"]
    atomic_write(written[0], text)
    atomic_write(written[1], table.to_csv(index=False))
    return written
