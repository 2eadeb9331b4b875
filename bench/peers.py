"""What other FLOP counters say of the same network: fvcore, torch's FlopCounterMode, thop,
ptflops and torchinfo, beside our count, at batch 1 in inference, each split by kind of op
where the counter reports one (``python -m bench peers``).

A peer that is not installed (they come with ``pip install cnnbench[peers]``) gets a row that
says so; one that fails on a network gets a row with its error.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import archs
from bench.flops.counting import OpCounter
from bench.flops.handlers import category
from bench.flops.profile import corrected_conv_backward
from bench.schema import OP_KINDS

# Words in an op or module name -> its kind, first match wins.
KIND_WORDS = (
    ("conv", "conv"),
    ("addmm", "linear"),
    ("linear", "linear"),
    ("matmul", "linear"),
    ("bmm", "linear"),
    ("mm", "linear"),
    ("batch_norm", "batch norm"),
    ("batchnorm", "batch norm"),
    ("relu", "activation"),
    ("sigmoid", "activation"),
    ("tanh", "activation"),
    ("threshold", "activation"),
    ("pool", "pooling"),
    ("mean", "pooling"),
    ("add", "addition"),
)


def kind_of(name: str) -> str:
    """The kind of an aten op ('aten.convolution') or a module class ('BatchNorm2d')."""
    name = name.lower().removeprefix("aten.")
    return next((kind for word, kind in KIND_WORDS if word in name), "other")


def _split(by_name: dict[str, float]) -> dict[str, float]:
    split: Counter[str] = Counter()
    for name, macs in by_name.items():
        split[kind_of(name)] += macs
    return {kind: split[kind] for kind in OP_KINDS}


def _ours(model: nn.Module, x: torch.Tensor) -> tuple[float, dict | None]:
    meta, batch = copy.deepcopy(model).to("meta").eval(), x.to("meta")
    with OpCounter(meta) as counter, torch.no_grad():
        meta(batch)
    by_op: Counter[str] = Counter()
    for (_, op, _), (_, flops, _) in counter.counts.items():
        by_op[str(op)] += flops / 2
    return sum(by_op.values()), _split(by_op)


def _fvcore(model: nn.Module, x: torch.Tensor) -> tuple[float, dict | None]:
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    analysis = FlopCountAnalysis(model, x)  # one fused multiply-add = one "flop": MACs
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    return sum(by_op.values()), _split(dict(by_op))


def _flop_counter_mode(model: nn.Module, x: torch.Tensor) -> tuple[float, dict | None]:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(x)
    by_op = {str(op): flops / 2 for op, flops in counter.get_flop_counts()["Global"].items()}
    return sum(by_op.values()), _split(by_op)


def _thop(model: nn.Module, x: torch.Tensor) -> tuple[float, dict | None]:
    import thop

    macs, _ = thop.profile(copy.deepcopy(model), inputs=(x,), verbose=False)
    return float(macs), None  # thop reports a total only


def _ptflops(model: nn.Module, x: torch.Tensor) -> tuple[float, dict | None]:
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(
        copy.deepcopy(model),
        tuple(x.shape[1:]),
        as_strings=False,
        print_per_layer_stat=False,
        verbose=False,
        backend="pytorch",
    )
    return float(macs), None  # ptflops reports a total only


def _torchinfo(model: nn.Module, x: torch.Tensor) -> tuple[float, dict | None]:
    import torchinfo

    summary = torchinfo.summary(model, input_data=x, verbose=0, device="cpu")
    by_class: Counter[str] = Counter()
    for layer in summary.summary_list:
        if layer.is_leaf_layer:
            by_class[layer.class_name] += layer.macs
    return float(summary.total_mult_adds), _split(by_class)


def torchinfo_memory(model: nn.Module, x: torch.Tensor) -> int | None:
    """torchinfo's "estimated total size": input, every layer's output (its forward/backward
    pass size) and the parameters, in bytes; None where torchinfo is not installed."""
    try:
        import torchinfo
    except ImportError:
        return None
    summary = torchinfo.summary(model, input_data=x, verbose=0, device="cpu")
    return int(summary.total_input + summary.total_output_bytes + summary.total_param_bytes)


def backward_macs(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Conv and matrix-product MACs of one backward pass at batch ``len(x)``: ours, and torch's
    FlopCounterMode with its own rule (which charges a grouped conv's weight gradient once per
    group) and with that rule corrected."""
    from torch.utils.flop_counter import FlopCounterMode

    meta, batch = copy.deepcopy(model).to("meta").train(), x.to("meta").expand(2, *x.shape[1:])
    macs = {}
    with OpCounter(meta) as counter:
        meta(batch).sum().backward()
    macs["cnnbench"] = (
        sum(
            flops
            for (_, op, phase), (_, flops, _) in counter.counts.items()
            if phase == "backward" and category(op) != "other"
        )
        / 2
        / 2
    )
    for label, mapping in (
        ("FlopCounterMode", {}),
        (
            "FlopCounterMode, corrected",
            {torch.ops.aten.convolution_backward: corrected_conv_backward},
        ),
    ):
        meta.zero_grad(set_to_none=True)
        out = meta(batch)
        with FlopCounterMode(display=False, custom_mapping=mapping) as flop_counter:
            out.sum().backward()
        macs[label] = flop_counter.get_total_flops() / 2 / 2  # FLOPs to MACs, per image
    return macs


COUNTERS: dict[str, Callable[[nn.Module, torch.Tensor], tuple[float, dict | None]]] = {
    "cnnbench": _ours,
    "fvcore": _fvcore,
    "FlopCounterMode": _flop_counter_mode,
    "thop": _thop,
    "ptflops": _ptflops,
    "torchinfo": _torchinfo,
}


def peer_row(
    name: str, image_size: int | None = None, in_channels: int | None = None
) -> dict[str, Any]:
    """Every counter's forward MACs of one registry network at batch 1 in eval mode, split by
    kind of op where the counter reports one."""
    torch.manual_seed(0)
    size = image_size or archs.spec(name).image_size
    in_channels = in_channels or archs.spec(name).in_channels
    model = archs.build(name, image_size=size, in_channels=in_channels).eval()
    x = torch.zeros(1, in_channels, size, size)
    counters = []
    for counter, count in COUNTERS.items():
        entry: dict[str, Any] = {"counter": counter, "macs": None, "by_kind": None, "note": ""}
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                entry["macs"], entry["by_kind"] = count(model, x)
        except ImportError:
            entry["note"] = "not installed (pip install cnnbench[peers])"
        except Exception as error:  # a peer's failure on one network is its row, not ours
            entry["note"] = f"failed: {type(error).__name__}: {error}".splitlines()[0]
        counters.append(entry)
    params = sum(p.numel() for p in model.parameters())
    return {
        "model": name,
        "image_size": size,
        "params": params,
        "counters": counters,
        "backward_macs": backward_macs(model, x),
        "torchinfo_memory_bytes": torchinfo_memory(model, x),
        "torchvision": as_torchvision_publishes(name),
    }


def as_torchvision_publishes(name: str) -> dict[str, Any] | None:
    """For a network torchvision also builds (its spec's ``reference``): ours built as
    torchvision builds it (3 input channels, 1,000 classes, its weights' input side), its
    parameters and conv and linear forward MACs counted, beside the parameters and G MACs
    ("GFLOPS", to three decimals) torchvision publishes with its weights; None for any other."""
    reference = archs.spec(name).reference
    if reference is None:
        return None
    import torchvision

    published = torchvision.models.get_model_weights(reference).DEFAULT.meta
    side = archs.spec(f"tv:{reference}").image_size
    model = archs.build(name, in_channels=3, num_classes=1000, image_size=side, device="meta")
    _, by_kind = _ours(model, torch.empty(1, 3, side, side, device="meta"))
    return {
        "model": f"tv:{reference}",
        "image_size": side,
        "params": sum(p.numel() for p in model.parameters()),
        "macs": by_kind["conv"] + by_kind["linear"],
        "published_params": published["num_params"],
        "published_gmacs": published["_ops"],
    }
