"""Any timm model, counted by name (``timm:<name>``).

The references are independent of our handler table: the parameters of the model timm builds,
and torch's FlopCounterMode, which counts the conv and matmul part of the same pass. By default
one model of each kind that needs care is counted; ``--all-timm`` counts a model of each family
listed.
"""

import pytest

timm = pytest.importorskip("timm")

from bench.flops import profile  # noqa: E402

# One of each kind: a CNN, a transformer with one input size, shifted windows with index
# buffers, an all-MLP network.
KINDS = ("resnet18", "vit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "mixer_s16_224")
FAMILIES = (
    *KINDS,
    "efficientnet_b0",
    "mobilenetv3_small_100",
    "convnext_atto",
    "regnetx_002",
    "densenet121",
    "deit_tiny_patch16_224",
    "levit_128s",
    "ghostnet_100",
    "inception_v3",
    "cspresnet50",
    "rexnet_100",
)


def pytest_generate_tests(metafunc):
    if "timm_name" in metafunc.fixturenames:
        every = metafunc.config.getoption("--all-timm")
        metafunc.parametrize("timm_name", FAMILIES if every else KINDS)


def test_a_timm_model_is_counted_as_timm_builds_it(timm_name):
    built = timm.create_model(timm_name, pretrained=False)
    s = profile(f"timm:{timm_name}", batch_size=2, checks=["flop_counter"]).summary.iloc[0]

    assert s.params == sum(p.numel() for p in built.parameters())
    assert s.image_size == built.default_cfg["input_size"][-1]
    conv_and_matmul = s.fwd_conv_macs_per_image + s.fwd_linear_macs_per_image
    assert 2 * s.batch_size * conv_and_matmul == s.flopcounter_fwd_flops
    assert s.counters_agree  # and backward too
    assert 1 <= s.min_image_size <= s.image_size
