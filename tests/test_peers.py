"""Other FLOP counters beside ours: every counter gets a row, and each difference a cause."""

import pytest
import torchvision

from bench import peers
from bench.flops import profile
from bench.render.peers import cause
from bench.schema import OP_KINDS

OURS = dict.fromkeys(OP_KINDS, 0.0) | {
    "conv": 100.0,
    "linear": 10.0,
    "batch norm": 4.0,
    "activation": 2.0,
}


def entry(macs, by_kind=None, note=""):
    return {"counter": "peer", "macs": macs, "by_kind": by_kind, "note": note}


@pytest.mark.parametrize(
    ("counted", "expected"),
    [
        (entry(116.0, dict(OURS)), "equal to ours, kind by kind"),
        (
            entry(110.0, OURS | {"batch norm": 0.0, "activation": 0.0}),
            "skips batch norm; skips activation",
        ),
        (entry(118.0, OURS | {"batch norm": 8.0}), "batch norm x2"),
        (entry(117.0, OURS | {"addition": 1.0}), "counts addition (0.00 M), free in ours"),
        (entry(110.0), "counts conv and linear only (a total only)"),
        (entry(116.0), "equal to ours (a total only)"),
        (entry(None, note="not installed"), "not installed"),
    ],
)
def test_each_difference_gets_its_cause(counted, expected):
    assert cause(OURS, counted) == expected


def test_a_total_only_counter_is_set_against_our_conv_and_linear():
    assert cause(OURS, entry(2_110_000.0)) == (
        "a total only: +2.11 M beyond our conv and linear, where ours count 6e-06 M for the other "
        "kinds"
    )


def test_peer_row_counts_lenet_like_the_profile_and_says_what_is_missing(monkeypatch):
    def missing(model, x):
        raise ImportError("no thop")

    monkeypatch.setitem(peers.COUNTERS, "thop", missing)
    row = peers.peer_row("lenet")
    by_counter = {c["counter"]: c for c in row["counters"]}
    assert list(by_counter) == list(peers.COUNTERS)
    assert by_counter["thop"]["macs"] is None and "not installed" in by_counter["thop"]["note"]
    ours = by_counter["cnnbench"]
    assert ours["macs"] == profile("lenet", batch_size=1).summary.iloc[0].fwd_macs_per_image
    # torch's counter sees the convolutions and matrix products only: ours for those kinds
    flop_counter = by_counter["FlopCounterMode"]["by_kind"]
    assert flop_counter["conv"] == ours["by_kind"]["conv"] and flop_counter["activation"] == 0
    assert row["backward_macs"]["FlopCounterMode"] == row["backward_macs"]["cnnbench"]


def test_a_network_torchvision_builds_is_counted_beside_what_torchvision_publishes():
    """ResNet-50 built as torchvision builds it: parameters and conv and linear MACs equal to
    the figures torchvision's weights publish; a network of the book alone has no reference."""
    published = torchvision.models.ResNet50_Weights.DEFAULT.meta
    reference = peers.as_torchvision_publishes("resnet50")
    assert reference["model"] == "tv:resnet50" and reference["image_size"] == 224
    assert reference["params"] == reference["published_params"] == published["num_params"]
    assert reference["published_gmacs"] == published["_ops"]
    assert round(reference["macs"] / 1e9, 3) == published["_ops"]
    assert peers.as_torchvision_publishes("alexnet") is None  # the book's AlexNet is its own
