"""Registry-driven checks of every network: builds, runs, shapes from the book, parameter counts
of torchvision's reference models, batch-norm bias, the error messages, and ``python -m archs``."""

import dataclasses
import itertools
import math

import pytest
import torch
import torchvision
from torch import nn

import archs
from archs.__main__ import main as archs_main

ALL = archs.list_models()


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ALL)
def test_builds_and_runs_at_book_size(name):
    torch.manual_seed(0)
    model = archs.build(name)
    assert model.training
    assert not any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())
    size = archs.spec(name).image_size
    out = model(torch.randn(2, 1, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_min_image_size_is_the_boundary(name):
    smallest = archs.spec(name).min_image_size
    archs.build(name, image_size=smallest)
    if smallest > 1:
        with pytest.raises(
            ValueError, match=rf"{name} needs inputs of at least {smallest}x{smallest}"
        ):
            archs.build(name, image_size=smallest - 1)


@pytest.mark.parametrize("name", ["alexnet", "nin", "googlenet", "vgg11_small", "lenet"])
def test_accepts_agrees_with_the_smallest_side(name):
    smallest = archs.spec(name).min_image_size
    fresh = dataclasses.replace(archs.spec(name))  # nothing found yet: one try on the meta device
    assert "min_image_size" not in fresh.__dict__
    assert (fresh.accepts(smallest - 1), fresh.accepts(smallest)) == (False, True)


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def smallest_input(fits) -> int:
    return next(s for s in range(1, 1000) if fits(s))


def test_min_image_sizes_by_formula():
    # LeNet: 5x5 conv (padding 2), 2x2 pool, 5x5 conv, 2x2 pool; the last must keep a pixel.
    def lenet_fits(s):
        return conv_out(conv_out(conv_out(conv_out(s, 5, 1, 2), 2, 2), 5), 2, 2) >= 1

    # AlexNet: 11x11/4 (padding 1), 3x3/2 pool, 5x5 (padding 2), 3x3/2 pool, 3x3 convs, 3x3/2 pool.
    def alexnet_fits(s):
        return conv_out(conv_out(conv_out(conv_out(s, 11, 4, 1), 3, 2), 3, 2), 3, 2) >= 1

    assert archs.spec("lenet").min_image_size == smallest_input(lenet_fits) == 12
    assert archs.spec("alexnet").min_image_size == smallest_input(alexnet_fits) == 65
    assert archs.spec("vgg11").min_image_size == 2**5  # five 2x2 pools


def layer_summary(model: nn.Module, size: int) -> list[tuple[str, tuple[int, ...]]]:
    x = torch.randn(1, 1, size, size)
    shapes = []
    for layer in model:
        x = layer(x)
        shapes.append((type(layer).__name__, tuple(x.shape[1:])))
    return shapes


S, F_, L = "Sequential", "Flatten", "Linear"
# The layer summaries printed in the seeds (chapter 7 notebook for LeNet, chapter 8 for the rest).
BOOK_SUMMARIES = {
    ("lenet", 28): [
        ("Conv2d", (6, 28, 28)),
        ("Sigmoid", (6, 28, 28)),
        ("AvgPool2d", (6, 14, 14)),
        ("Conv2d", (16, 10, 10)),
        ("Sigmoid", (16, 10, 10)),
        ("AvgPool2d", (16, 5, 5)),
        (F_, (400,)),
        (L, (120,)),
        ("Sigmoid", (120,)),
        (L, (84,)),
        ("Sigmoid", (84,)),
        (L, (10,)),
    ],
    ("alexnet", 224): [
        ("Conv2d", (96, 54, 54)),
        ("ReLU", (96, 54, 54)),
        ("MaxPool2d", (96, 26, 26)),
        ("Conv2d", (256, 26, 26)),
        ("ReLU", (256, 26, 26)),
        ("MaxPool2d", (256, 12, 12)),
        ("Conv2d", (384, 12, 12)),
        ("ReLU", (384, 12, 12)),
        ("Conv2d", (384, 12, 12)),
        ("ReLU", (384, 12, 12)),
        ("Conv2d", (256, 12, 12)),
        ("ReLU", (256, 12, 12)),
        ("MaxPool2d", (256, 5, 5)),
        (F_, (6400,)),
        (L, (4096,)),
        ("ReLU", (4096,)),
        ("Dropout", (4096,)),
        (L, (4096,)),
        ("ReLU", (4096,)),
        ("Dropout", (4096,)),
        (L, (10,)),
    ],
    ("vgg11", 224): [
        (S, (64, 112, 112)),
        (S, (128, 56, 56)),
        (S, (256, 28, 28)),
        (S, (512, 14, 14)),
        (S, (512, 7, 7)),
        (F_, (25088,)),
        (L, (4096,)),
        ("ReLU", (4096,)),
        ("Dropout", (4096,)),
        (L, (4096,)),
        ("ReLU", (4096,)),
        ("Dropout", (4096,)),
        (L, (10,)),
    ],
    ("nin", 224): [
        (S, (96, 54, 54)),
        ("MaxPool2d", (96, 26, 26)),
        (S, (256, 26, 26)),
        ("MaxPool2d", (256, 12, 12)),
        (S, (384, 12, 12)),
        ("MaxPool2d", (384, 5, 5)),
        ("Dropout", (384, 5, 5)),
        (S, (10, 5, 5)),
        ("AdaptiveAvgPool2d", (10, 1, 1)),
        (F_, (10,)),
    ],
    ("googlenet", 96): [
        (S, (64, 24, 24)),
        (S, (192, 12, 12)),
        (S, (480, 6, 6)),
        (S, (832, 3, 3)),
        (S, (1024,)),
        (L, (10,)),
    ],
    ("resnet18", 96): [
        (S, (64, 24, 24)),
        (S, (64, 24, 24)),
        (S, (128, 12, 12)),
        (S, (256, 6, 6)),
        (S, (512, 3, 3)),
        (S, (10,)),
    ],
    ("regnetx32", 96): [(S, (32, 48, 48)), (S, (32, 24, 24)), (S, (80, 12, 12)), (S, (10,))],
}


@pytest.mark.parametrize(("name", "size"), list(BOOK_SUMMARIES))
def test_layer_summaries_match_the_book(name, size):
    with torch.no_grad():
        assert (
            layer_summary(archs.build(name, image_size=size).eval(), size)
            == BOOK_SUMMARIES[(name, size)]
        )


REFERENCED = [name for name in ALL if archs.spec(name).reference]


def test_the_paper_tables_are_all_referenced():
    expected = {
        "vgg11",
        "vgg13",
        "vgg16",
        "vgg19",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "resnext50_32x4d",
        "densenet121",
        "densenet169",
        "densenet201",
        "regnetx_400mf",
    }
    assert set(REFERENCED) == expected


@pytest.mark.parametrize("name", REFERENCED)
def test_parameter_count_equals_torchvision(name):
    # shapes are all a count needs: both built on the meta device, no weights allocated
    ours = archs.build(name, in_channels=3, num_classes=1000, image_size=224, device="meta")
    reference = archs.build(f"tv:{archs.spec(name).reference}", device="meta")
    assert n_params(ours) == n_params(reference)
    for kind in (nn.Conv2d, nn.Linear, nn.BatchNorm2d):
        assert sum(isinstance(m, kind) for m in ours.modules()) == sum(
            isinstance(m, kind) for m in reference.modules()
        ), kind.__name__


BATCH_NORM_FAMILIES = [
    "bn_lenet",
    "bn_lenet_scratch",
    "googlenet_bn",
    "resnet18",
    "resnext18",
    "densenet",
    "regnetx32",
    "resnet50",
    "vgg_28",
]


@pytest.mark.parametrize("name", BATCH_NORM_FAMILIES)
def test_conv_bias_override_removes_exactly_the_biases(name):
    with_bias = archs.build(name, conv_bias=True)
    hidden = list(with_bias.modules())
    # Every conv carries the bias; of the linear layers, those feeding a batch norm (LeNet's).
    layers = [m for m in hidden if isinstance(m, nn.Conv2d)]
    layers += [
        m
        for m, nxt in itertools.pairwise(hidden)
        if isinstance(m, nn.Linear) and "Norm" in type(nxt).__name__
    ]
    removed = sum(m.bias.numel() for m in layers)
    assert removed > 0
    assert n_params(archs.build(name, conv_bias=False)) == n_params(with_bias) - removed


def test_vgg11_with_batch_norm_and_conv_biases_is_torchvisions_vgg11_bn():
    ours = archs.build("vgg11", in_channels=3, num_classes=1000, norm=True, conv_bias=True)
    reference = torchvision.models.vgg11_bn()
    assert n_params(ours) == n_params(reference) == 132_868_840
    without = archs.build("vgg11", in_channels=3, num_classes=1000, norm=True)
    assert n_params(reference) - n_params(without) == sum(
        m.bias.numel() for m in reference.modules() if isinstance(m, nn.Conv2d)
    )


def test_book_resnet18_keeps_a_plain_1x1_shortcut():
    shortcut = archs.build("resnet18")[2][0].shortcut
    assert [type(m) for m in shortcut] == [nn.Conv2d] and shortcut[0].bias is not None


def test_pooling_before_batch_norm_changes_what_it_costs_not_what_it_computes():
    """Max pooling commutes with a per-channel map that never decreases, as batch norm with a
    positive scale followed by ReLU is: with the same weights, in evaluation mode, the network
    that pools first computes what resnet9_28 does, with its batch norms on a quarter of the
    pixels."""
    torch.manual_seed(0)
    plain, pooled = archs.build("resnet9_28"), archs.build("resnet9_28_pool_first")
    for norm in (m for m in plain.modules() if isinstance(m, nn.BatchNorm2d)):
        norm.weight.data.uniform_(0.5, 2.0)
        norm.bias.data.normal_()
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2.0)
    values = list(plain.state_dict().values())
    pooled.load_state_dict(dict(zip(pooled.state_dict(), values, strict=True)))
    plain.eval(), pooled.eval()
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(pooled(x), plain(x))
    seen = []  # the first stage takes 28x28 inputs; its batch norm sees 14x14
    pooled[1][2].register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    pooled(x)
    assert isinstance(pooled[1][2], nn.BatchNorm2d) and seen == [(4, 32, 14, 14)]


def test_xavier_uniform_init():
    torch.manual_seed(0)
    for module in archs.build("alexnet").modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(module.weight)
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert module.weight.abs().max() <= bound
            assert module.weight.abs().max() > 0.99 * bound
            assert abs(module.weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound


def test_seeded_builds_are_identical():
    def weights():
        torch.manual_seed(1)
        return [p.detach() for p in archs.build("resnet18").parameters()]

    assert all(torch.equal(a, b) for a, b in zip(weights(), weights(), strict=True))


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="resnet18"):
        archs.spec("resnet81")


def test_unknown_option_names_the_accepted_ones():
    with pytest.raises(TypeError, match=r"does not take width_mult.*conv_bias"):
        archs.build("densenet", width_mult=2)


def test_duplicate_names_are_rejected():
    with pytest.raises(ValueError, match="already registered"):
        archs.register(
            "lenet",
            archs.spec("lenet").builder,
            family="lenet",
            section="7.6",
            paper="",
            image_size=28,
        )


def test_list_models_filters_and_keeps_book_order():
    assert archs.list_models("densenet*") == [
        "densenet",
        "densenet121",
        "densenet169",
        "densenet201",
    ]
    assert (
        ALL.index("lenet") < ALL.index("alexnet") < ALL.index("resnet18") < ALL.index("regnetx32")
    )
    assert archs.list_models("nothing*") == []


def test_the_command_line_lists_the_networks_a_pattern_matches(capsys):
    assert archs_main(["densenet?*"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == ["densenet121", "densenet169", "densenet201"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["transformer*"], "no network matches 'transformer*'"),
        (["lenet", "vgg"], "unrecognized arguments: vgg"),
    ],
)
def test_the_command_line_rejects_bad_input_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        archs_main(argv)
    assert exit.value.code == 2
    assert capsys.readouterr().err == f"python -m archs: error: {message}\n"


def test_book_recipes():
    book = {name: archs.spec(name).recipe for name in ALL if archs.spec(name).recipe}
    assert all(
        r.batch_size == 128 and r.epochs == 10 and r.optimizer == "sgd" for r in book.values()
    )
    assert {book[n].resize for n in ("alexnet", "vgg11_small", "nin")} == {224}
    assert {book[n].resize for n in ("googlenet", "resnet18", "densenet", "regnetx32")} == {96}
    assert book["lenet"].resize is None and book["bn_lenet"].resize is None


def test_torchvision_networks_by_name_at_their_own_size_and_channels():
    spec = archs.spec("tv:resnet18")
    assert (spec.image_size, spec.in_channels, spec.num_classes) == (224, 3, 1000)
    assert archs.spec("tv:inception_v3").image_size == 299  # its weights' crop size
    assert n_params(archs.build("tv:resnet18")) == n_params(torchvision.models.resnet18())
    with pytest.raises(KeyError, match="did you mean tv:resnet18"):
        archs.spec("tv:resnet81")
