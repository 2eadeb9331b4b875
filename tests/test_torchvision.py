"""Any torchvision classification model, counted by name (``tv:<name>``).

The references are torchvision's own: the parameter count and GFLOPS its weights publish (for the
model those weights describe, random weights aside), and torch's FlopCounterMode, which counts
the conv and matmul part of the same pass independently of our handler table. By default one
model of each kind that needs care is counted; ``--all-torchvision`` counts the whole list.
"""

import pytest
import torchvision

from bench.flops import profile

# One of each kind a plain meta-device count trips on, and an ordinary one.
KINDS = (
    "googlenet",  # its class builds auxiliary classifiers its published model drops
    "inception_v3",  # training returns a named tuple (logits, auxiliary logits)
    "regnet_x_400mf",  # its constructor computes widths with tensors
    "swin_t",  # relative-position indices kept in integer buffers
    "vit_b_16",  # one input size, checked by an assertion
    "maxvit_t",  # one input size, fixed when built
    "mobilenet_v3_small",
    "swin_v2_t",  # its relative-position bias comes from a network run once a batch
)


def pytest_generate_tests(metafunc):
    if "torchvision_name" in metafunc.fixturenames:
        every = metafunc.config.getoption("--all-torchvision")
        names = torchvision.models.list_models(module=torchvision.models) if every else KINDS
        metafunc.parametrize("torchvision_name", names)


def test_a_torchvision_model_is_counted_as_torchvision_publishes_it(torchvision_name):
    published = torchvision.models.get_model_weights(torchvision_name).DEFAULT.meta
    name = f"tv:{torchvision_name}"
    try:  # at batch 1, as torchvision counts (Swin V2's position-bias network runs once a batch)
        s = profile(name, batch_size=1, checks=["flop_counter"]).summary.iloc[0]
    except ValueError:  # batch norm on a 1x1 map: training needs two images
        s = profile(name, batch_size=2, checks=["flop_counter"]).summary.iloc[0]
    batch = s.batch_size

    assert s.params == published["num_params"]
    conv_and_matmul = s.fwd_conv_macs_per_image + s.fwd_linear_macs_per_image
    assert 2 * batch * conv_and_matmul == s.flopcounter_fwd_flops
    assert s.counters_agree  # and backward too
    # torchvision's "GFLOPS" are G MACs of the inference forward, given to three decimals; a
    # training forward also runs the auxiliary classifiers (Inception v3's), so counts more
    gmacs = conv_and_matmul / 1e9
    if torchvision_name == "inception_v3":
        assert gmacs > published["_ops"]
    else:
        assert gmacs == pytest.approx(published["_ops"], abs=5e-4)
    assert 1 <= s.min_image_size <= s.image_size
