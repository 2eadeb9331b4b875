"""The exercises as data: each one's id, question, answer (the rows it needs and the function
of them that says what they mean) and the command that measures those rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.render.exercises.answers import (
    epochs_answer,
    intensity,
    layer_bytes,
    min_size,
    per_stage,
    pooling,
    speed_answer,
    stems,
)
from bench.render.exercises.rows import (
    CONV_CASE,
    CONV_MACS,
    CONV_PARAMS,
    FC_MACS,
    FC_PARAMS,
    INFER_MEM,
    INPUT,
    MACS,
    PARAMS,
    SAVED,
    SHAPES,
    TRAIN_MEM,
    Answer,
    block_answer,
    costs,
    fuller,
    throughput,
    timed_answer,
    trained,
    training_peak,
    varies,
)
from bench.render.exercises.sentences import (
    say_activations,
    say_batch,
    say_bias,
    say_bn_layers,
    say_compare,
    say_conv_cost,
    say_corr2d,
    say_fastest,
    say_grid,
    say_groups,
    say_head,
    say_lr_grid,
    say_macs_split,
    say_memory_totals,
    say_params,
    say_shape,
    say_totals,
)
from bench.render.format import fmt_int, fmt_text
from bench.store import Store


@dataclass(frozen=True)
class Exercise:
    id: str
    question: str
    answer: Callable[[Store], Answer | None]  # None: the rows are not in the store
    command: str  # what measures the rows
    # where the question is accuracy: the experiments and networks whose runs answer it
    experiments: tuple[str, ...] = ()
    models: tuple[str, ...] = ()


def accuracy(
    id: str,
    question: str,
    models: tuple[str, ...],
    experiments: tuple[str, ...],
    say: Callable[[pd.DataFrame], str] | None = None,
    answer: Callable[[Store], Answer | None] | None = None,
    **options: Any,
) -> Exercise:
    """An exercise whose question is accuracy, answered by the runs of ``experiments`` for
    ``models``: ``answer``, else their training rows read by ``say`` (``options``: which rows,
    as ``trained`` takes them)."""
    command = f"{TRAIN} {' '.join(experiments)} --models {','.join(models)}"
    answer = answer or trained(models, say, **options)
    return Exercise(id, question, answer, command, experiments, models)


C7 = "python -m bench layers"


PROFILE = "python -m bench profile"


# the networks the book measures at 96 pixels, counted at 224 beside Table 1's networks
PROFILE_224 = f"{PROFILE} --models resnet18,googlenet --image-size 224"


TRAIN = "python -m bench train --experiment"


NIN = ("nin", "nin_one_1x1", "nin_three_1x1", "nin_3x3", "nin_fc")


GOOGLENETS = ("googlenet", "googlenet_28")


EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "7.3.1",
        "Output shape of a conv with kernel (3, 5), padding (0, 1), stride (3, 4) "
        "on 8x8: formula against the built layer.",
        block_answer(("7.3.1",), SHAPES, say_shape),
        C7,
    ),
    Exercise(
        "7.4.2",
        "Cost of one conv layer: forward MACs, memory, backward memory and MACs: "
        "formula, counted and measured (a stride and a kernel size beside the base layer "
        "of 7.4.3).",
        block_answer(("7.4.2",), CONV_CASE, say_conv_cost),
        C7,
    ),
    Exercise(
        "7.4.3",
        "Doubling the input and output channels, and doubling the padding: how the MACs change.",
        block_answer(("7.4.3",), CONV_CASE, say_grid),
        C7,
    ),
    Exercise(
        "7.4.5",
        "A 1x1 conv as conv2d and as one matrix product (64 -> 64 channels, "
        "56x56): equal outputs, time of each.",
        timed_answer("7.4.5", ("method", "method", fmt_text), say_fastest("method")),
        C7,
    ),
    Exercise(
        "7.4.7",
        "Block-diagonal weights (g groups): MACs fall by g; how far does the "
        "measured latency fall?",
        timed_answer("7.4.7", ("groups", "groups", fmt_int), say_groups),
        C7,
    ),
    Exercise(
        "7.5.3",
        "Average pooling as a convolution: equal outputs, the time of each; the "
        "cost of a pooling layer.",
        pooling,
        C7,
    ),
    Exercise(
        "7.2.x",
        "Cross-correlation as a Python loop, as unfold + matmul and as conv2d, at growing sizes.",
        timed_answer("7.2.x", ("case", "case", fmt_text), say_corr2d),
        C7,
    ),
    Exercise(
        "8.1.5.1.1",
        "AlexNet: memory of conv layers against fully connected layers "
        "(parameters, and activations for one image).",
        lambda s: layer_bytes(s, "alexnet"),
        PROFILE,
    ),
    Exercise(
        "8.1.5.1.2",
        "AlexNet: compute of conv layers against fully connected layers.",
        costs(["alexnet"], [MACS, CONV_MACS, FC_MACS], say_macs_split),
        PROFILE,
    ),
    Exercise(
        "8.1.5.1.3",
        "AlexNet: memory in training against inference, measured at growing batch sizes.",
        speed_answer("alexnet"),
        "python -m bench speed --models alexnet",
    ),
    accuracy(
        "8.1.5.4",
        "AlexNet against LeNet: what more epochs buy each.",
        ("lenet", "alexnet"),
        ("book",),
        answer=epochs_answer(("lenet", "alexnet")),
    ),
    accuracy(
        "8.1.5.5.1",
        "A simpler AlexNet-style network that trains faster (a VGG for 28x28 "
        "inputs): cost and accuracy beside AlexNet.",
        ("alexnet", "vgg_28"),
        ("book", "networks_28"),
        say_compare,
    ),
    accuracy(
        "8.1.5.5.2",
        "Networks that work on 28x28 images directly: cost and accuracy.",
        ("lenet", "lenet_28", "vgg_28", "resnet9_28"),
        ("book", "networks_28"),
        say_compare,
    ),
    accuracy(
        "8.1.5.6",
        "AlexNet's batch size against throughput, accuracy and peak memory.",
        ("alexnet",),
        ("batch_sweep",),
        say_batch,
        keep=lambda r: varies(r, "batch_size"),
        at_least=2,
    ),
    accuracy(
        "8.1.5.7",
        "LeNet-5 with ReLU, and with ReLU and dropout, against the original.",
        ("lenet", "lenet_modern", "lenet_dropout"),
        ("book", "lenet_variants"),
        say_compare,
    ),
    Exercise(
        "8.2.5.1.1",
        "Parameters of AlexNet against VGG-11, VGG-16 and VGG-19.",
        costs(["alexnet", "vgg11", "vgg16", "vgg19"], [PARAMS, CONV_PARAMS, FC_PARAMS], say_params),
        PROFILE,
    ),
    Exercise(
        "8.2.5.1.2",
        "MACs in conv against fully connected layers, AlexNet against VGG-11.",
        costs(["alexnet", "vgg11"], [MACS, CONV_MACS, FC_MACS], say_macs_split),
        PROFILE,
    ),
    Exercise(
        "8.2.5.1.3",
        "Reducing the fully connected cost: VGG-11, the book's quarter-width "
        "VGG-11, a 28x28 VGG with a 256-wide head.",
        costs(["vgg11", "vgg11_small", "vgg_28"], [PARAMS, FC_PARAMS, MACS, FC_MACS], say_head),
        PROFILE,
    ),
    Exercise(
        "8.2.5.3",
        "VGG-16 and VGG-19 from the paper's Table 1: parameters and MACs.",
        costs(["vgg16", "vgg19"], [PARAMS, MACS], say_totals),
        PROFILE,
    ),
    accuracy(
        "8.2.5.4",
        "The small VGG-11 at smaller inputs than 224: cost and accuracy.",
        ("vgg11_small",),
        ("book", "vgg_sizes"),
        say_compare,
        keep=lambda r: varies(r, "resize"),
    ),
    accuracy(
        "8.3.5.1-3",
        "NiN with one or three 1x1 convs, 3x3 convs, a fully connected head: "
        "parameters, MACs, training speed and accuracy.",
        NIN,
        ("book", "nin_variants"),
        answer=fuller(
            trained(NIN, say_compare), costs(NIN, [PARAMS, MACS], say_totals, throughput)
        ),
    ),
    Exercise(
        "8.3.5.4",
        "NiN's resources: parameters, computation, memory for training and for prediction.",
        costs(["nin"], [PARAMS, MACS, TRAIN_MEM, INFER_MEM, SAVED], say_memory_totals),
        PROFILE,
    ),
    accuracy(
        "8.4.5.1",
        "GoogLeNet with batch norm against without: cost and accuracy.",
        ("googlenet", "googlenet_bn"),
        ("book", "variants"),
        say_compare,
    ),
    Exercise(
        "8.4.5.2", "The smallest image GoogLeNet accepts (found by building).", min_size, PROFILE
    ),
    accuracy(
        "8.4.5.3",
        "A GoogLeNet variant that keeps 28x28 resolution: cost and accuracy "
        "beside the book's at 96 pixels.",
        GOOGLENETS,
        ("book", "networks_28"),
        answer=fuller(trained(GOOGLENETS, say_compare), stems),
    ),
    Exercise(
        "8.4.5.4",
        "Parameters of AlexNet, VGG-11, NiN and GoogLeNet: where the savings come from.",
        costs(
            ["alexnet", "vgg11", "nin", "googlenet"], [PARAMS, CONV_PARAMS, FC_PARAMS], say_params
        ),
        PROFILE,
    ),
    Exercise(
        "8.4.5.5",
        "GoogLeNet against AlexNet at 224 pixels: computation and arithmetic intensity.",
        intensity,
        PROFILE_224,
    ),
    accuracy(
        "8.5.7.1",
        "Bias before batch norm: parameters saved, accuracy.",
        ("bn_lenet", "bn_lenet_nobias"),
        ("book", "lenet_variants", "seeds"),
        say_bias,
    ),
    accuracy(
        "8.5.7.2",
        "LeNet with and without batch norm over learning rates: where training fails.",
        ("lenet", "bn_lenet"),
        ("lr_grid",),
        say_lr_grid,
        keep=lambda r: varies(r, "lr"),
    ),
    accuracy(
        "8.5.7.3",
        "Batch norm after every layer, after the convs only, and nowhere "
        "(the book's LeNet: sigmoid, average pooling).",
        ("lenet", "bn_lenet", "bn_lenet_convs"),
        ("book", "lenet_variants"),
        say_bn_layers,
    ),
    accuracy(
        "8.6.7.1",
        "An Inception network against a residual network: cost and accuracy.",
        ("googlenet", "resnet18"),
        ("book",),
        say_compare,
    ),
    Exercise(
        "8.6.7.2",
        "ResNet-18/34/50/101/152 at 224 pixels: parameters, MACs, memory, throughput.",
        costs(
            ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
            [INPUT, PARAMS, MACS, TRAIN_MEM, INFER_MEM, SAVED],
            say_memory_totals,
            throughput,
            side=224,
        ),
        PROFILE_224,
    ),
    Exercise(
        "8.6.7.3",
        "Bottleneck against basic blocks at equal depth (ResNet-50 against "
        "ResNet-34, both 3-4-6-3 blocks).",
        costs(["resnet50", "resnet34"], [PARAMS, MACS, SAVED], say_activations),
        PROFILE,
    ),
    accuracy(
        "8.6.7.4",
        "Pre-activation against post-activation ResNet-18: cost and accuracy.",
        ("resnet18", "resnet18_preact"),
        ("book", "variants"),
        say_compare,
    ),
    Exercise(
        "8.7.7.2",
        "Why DenseNet has fewer parameters than ResNet: per-stage parameters.",
        per_stage(["densenet", "resnet18"]),
        PROFILE,
    ),
    Exercise(
        "8.7.7.3",
        "DenseNet's memory against ResNet's at 224x224.",
        costs(
            ["densenet121", "resnet50"],
            [PARAMS, MACS, TRAIN_MEM, INFER_MEM, SAVED],
            say_memory_totals,
            training_peak,
        ),
        PROFILE,
    ),
    Exercise(
        "8.7.7.4",
        "DenseNet-121/169/201 from the paper's Table 1: parameters, MACs.",
        costs(["densenet121", "densenet169", "densenet201"], [PARAMS, MACS], say_totals),
        PROFILE,
    ),
    accuracy(
        "8.8.6.1",
        "A four-stage AnyNet against the book's two-stage RegNetX: cost and accuracy.",
        ("regnetx32", "anynet"),
        ("book", "variants"),
        say_compare,
    ),
    accuracy(
        "8.8.6.2",
        "ResNeXt blocks against ResNet blocks in the same layout: cost and accuracy.",
        ("resnet18", "resnext18"),
        ("book", "variants"),
        say_compare,
    ),
)
