"""findings.md: one screen a teacher can put on a slide. Each line is a claim chapter 8 makes
about what its networks cost, the figure measured or counted here beside it, and the page it
comes from; every figure is read from the results store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import archs
from bench.render.format import MIB, atomic_write
from bench.render.stages import profile_name
from bench.schema import Status
from bench.store import Store

Finding = tuple[str, str, str]  # the book's claim, what was measured, where it comes from


def _profile(store: Store, model: str) -> dict[str, Any] | None:
    """The network's profile at its book input, batch 128 (None: not counted yet)."""
    side = archs.spec(model).image_size
    found = [
        r
        for r in store.rows("profile")
        if r["model"] == model
        and r["status"] == Status.OK
        and (r["image_size"], r["batch_size"]) == (side, 128)
    ]
    return found[0] if found else None


def _linear_layers(store: Store, row: dict[str, Any]) -> list[dict[str, Any]]:
    layers = store.details("profile", row["model"], row["config"], "layers")
    return [layer for layer in layers if layer["type"] == "Linear"]


def _link(row: dict[str, Any]) -> str:
    return f"[{row['model']}](profile/{profile_name(row)}.md)"


def _size(params: float) -> str:
    """fp32 bytes of ``params`` in MiB and MB (the book's "MB" are often MiB)."""
    return f"{4 * params / MIB:,.1f} MiB ({4 * params / 1e6:,.1f} MB)"


def alexnet_head(store: Store) -> Finding | None:
    row = _profile(store, "alexnet")
    if row is None:
        return None
    hidden = _linear_layers(store, row)[:2]  # the two hidden layers; the third is the output
    params = sum(layer["params"] for layer in hidden)
    macs = sum(layer["fwd_macs"] for layer in hidden) / row["batch_size"]
    return (
        "AlexNet's two hidden fully connected layers take 164 MB and 81 MFLOPs, over 40 M "
        "parameters (8.1)",
        f"{params / 1e6:,.1f} M parameters: {_size(params)} in fp32; {macs / 1e6:,.1f} M MACs "
        f"= {2 * macs / 1e6:,.1f} MFLOPs per image",
        _link(row),
    )


def vgg_matrix(store: Store) -> Finding | None:
    row = _profile(store, "vgg11")
    if row is None:
        return None
    largest = max(_linear_layers(store, row), key=lambda layer: layer["params"])
    share = largest["params"] / row["params"]
    return (
        "VGG-11's first fully connected matrix takes almost 400 MB in fp32 (8.2)",
        f"{largest['params'] / 1e6:,.1f} M parameters: {_size(largest['params'])}, "
        f"{share:.0%} of the network's",
        _link(row),
    )


def _share_linear(row: dict[str, Any]) -> str:
    return (
        f"{row['model']} {row['params'] / 1e6:,.1f} M ({row['params_linear'] / row['params']:.0%} "
        "in fully connected layers)"
    )


def nin_savings(store: Store) -> Finding | None:
    rows = [_profile(store, m) for m in ("nin", "alexnet", "vgg11")]
    if any(r is None for r in rows):
        return None
    return (
        "NiN has dramatically fewer parameters than AlexNet and VGG: it needs no giant fully "
        "connected layers (8.3)",
        "; ".join(_share_linear(r) for r in rows),
        ", ".join(_link(r) for r in rows),
    )


def googlenet_savings(store: Store) -> Finding | None:
    rows = [_profile(store, m) for m in ("googlenet", "alexnet")]
    if any(r is None for r in rows):
        return None
    googlenet, alexnet = rows
    return (
        "GoogLeNet's 1x1 reductions and global pooling keep its parameters low (8.4)",
        f"{_share_linear(googlenet)}, {alexnet['params'] / googlenet['params']:,.1f}x fewer "
        f"than {_share_linear(alexnet)}",
        ", ".join(_link(r) for r in rows),
    )


def densenet_memory(store: Store) -> Finding | None:
    rows = [_profile(store, m) for m in ("densenet121", "resnet50")]
    if any(r is None for r in rows):
        return None
    densenet, resnet = rows

    def training(row: dict[str, Any]) -> str:
        return (
            f"{row['model']} {row['train_bytes_est_sgd'] / MIB:,.0f} MiB "
            f"({row['saved_activation_bytes'] / MIB:,.0f} MiB saved for backward)"
        )

    ratio = densenet["train_bytes_est_sgd"] / resnet["train_bytes_est_sgd"]
    return (
        "DenseNet's concatenations make it memory-hungry (8.7)",
        f"a training step at 224 px, batch 128, SGD (estimated): {training(densenet)} against "
        f"{training(resnet)}: {ratio:,.2f}x, with "
        f"{resnet['params'] / densenet['params']:,.1f}x fewer parameters",
        ", ".join(_link(r) for r in rows) + ", [exercises](exercises.md#8773)",
    )


FINDINGS: tuple[Callable[[Store], Finding | None], ...] = (
    alexnet_head,
    vgg_matrix,
    nin_savings,
    googlenet_savings,
    densenet_memory,
)


def render(store: Store) -> str:
    """The Markdown page: a table of the book's claims beside what was measured."""
    found = [finding(store) for finding in FINDINGS]
    rows = [
        f"| {claim} | {measured} | {source} |" for claim, measured, source in filter(None, found)
    ]
    missing = sum(f is None for f in found)
    return (
        "# Findings: the book's claims beside what was counted here\n\n"
        "Parameters and MACs are counted exactly on the meta device, for the networks as the "
        "book builds them (one input channel, 10 classes, the book's input side); memory is "
        "estimated from counted parts. MACs = multiply-accumulates, FLOPs = 2 x MACs; MiB = "
        "2^20 bytes, MB = 10^6.\n\n"
        "| the book says | counted here | from |\n| :--- | :--- | :--- |\n"
        + "\n".join(rows)
        + (
            f"\n\n{missing} more {'claim waits' if missing == 1 else 'claims wait'} for "
            "`python -m bench profile` of the networks it names."
            if missing
            else ""
        )
        + "\n"
    )


def write_findings(store: Store, out_dir: Path) -> list[Path]:
    path = out_dir / "findings.md"
    atomic_write(path, render(store))
    return [path]
