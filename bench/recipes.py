"""Training recipes as data: the techniques on top of the book's loop, the presets (what
work a run trains on), runs (a network and its book recipe, or settings that replace it), the
named experiments, and each run's key in the results store.

The book's recipes (chapter 8): SGD, batch 128, 10 epochs, a learning rate and input side per
network. A preset adapts a recipe to a fixed amount of work; the fast recipe (the book's loop
plus switchable techniques, on a schedule of its own) keeps its settings.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import archs


@dataclass(frozen=True)
class Techniques:
    """Techniques on top of the book's loop (plain SGD, constant learning rate), each a switch."""

    augment: bool = False  # on the device: a random 28x28 crop of the image padded by 2, a flip
    adam: bool = False  # Adam in place of SGD (momentum is then Adam's own)
    momentum: float = 0.0  # Nesterov momentum (0: plain SGD)
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    one_cycle: bool = False  # lr: linear warm-up over the first 20% of steps, linear decay to 0
    channels_last: bool = False  # NHWC activations and weights
    bf16: bool = False  # bfloat16 autocast, where the device has bf16 arithmetic
    ema: float = 0.0  # decay per step of a weight average that is evaluated instead (0: none)
    flip_tta: bool = False  # evaluation averages the logits of each image and its mirror
    # evaluation also averages in the image shifted one pixel up-left and one down-right
    # (weights 1/2 for the image, 1/4 for each shift)
    shift_tta: bool = False
    # progressive resizing: the input side of each of the first epochs (images downscaled on
    # the device); later epochs, and evaluation, at 28 pixels
    early_sides: tuple[int, ...] = ()
    eval_at_end: bool = False  # the test set is evaluated after the last epoch only
    # torch.compile's mode for the training steps ("": eager; "default"; "reduce-overhead":
    # with CUDA graphs), compiled before the clock starts (the run records how long it took)
    compile: str = ""
    # He (Kaiming-normal, fan-in, for ReLU) conv and linear weights in place of the book's
    # Xavier-uniform: Xavier keeps a layer's output variance for a linear layer, so each ReLU
    # layer halves it and a deep stack without normalization starts with logits near zero
    he_init: bool = False

    def on(self) -> dict[str, Any]:
        """The techniques switched on, with their settings: what a run's key holds (a switch
        added later leaves the keys of runs stored before it as they were)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }

    def names(self) -> str:
        """The techniques switched on, joined by '+' ('-' for none)."""
        return "+".join(self.on()) or "-"


PLAIN = Techniques()  # the book's loop
EVAL_BATCH_SIZE = 512  # the test images are evaluated in batches of this size
ACCURACY_TARGETS = (0.80, 0.85, 0.90, 0.92, 0.94)  # a run's time to each is stored
FIRST_FAST = Techniques(
    augment=True,
    momentum=0.9,
    weight_decay=5e-4,
    label_smoothing=0.1,
    one_cycle=True,
    channels_last=True,
    bf16=True,
    ema=0.995,
    flip_tta=True,
)
FAST = dataclasses.replace(FIRST_FAST, early_sides=(14, 14, 20), eval_at_end=True)


@dataclass(frozen=True)
class Preset:
    """What a preset trains each run on: a fixed amount of work (epochs over a fixed set of
    images), never a time, so that an accuracy does not depend on how fast or busy the machine
    is; and how the preset adapts a book recipe to that work."""

    name: str
    epochs: int
    train_per_class: int | None = None  # training images per class (None: all 6,000)
    test_per_class: int | None = None  # test images per class (None: all 1,000)
    epochs_by_family: Mapping[str, int] = field(default_factory=dict)  # where a family differs
    # a recipe's input side above this is trained at this side, or at the smallest the network
    # accepts if that is larger (None: the recipe's side)
    max_side: int | None = None
    lr: float | None = None  # replaces the recipe's learning rate (None: the recipe's)
    techniques: Techniques | None = (
        None  # replaces the book's loop (None: the run's own techniques)
    )
    skip: tuple[str, ...] = ()  # networks (shell patterns) this preset does not train
    # what a run with its own schedule (``Run.epochs``) trains under; None: that many epochs
    # over all the training images, evaluated on the whole test set after each
    scheduled: Preset | None = None

    def adapt(self, run: Run) -> tuple[Run, Preset]:
        """The run as this preset trains it, and the work it trains on. A run with its own
        schedule (the fast recipe) keeps its settings; its work is ``scheduled``."""
        if run.epochs is not None:
            return run, self.scheduled or Preset(self.name, epochs=run.epochs)
        spec = archs.spec(run.model)
        recipe_side = spec.recipe.resize if spec.recipe else None
        if run.resize is None and self.max_side and (recipe_side or 28) > self.max_side:
            side = self.max_side if spec.accepts(self.max_side) else spec.min_image_size
            run = dataclasses.replace(run, resize=side)
        if run.lr is None and self.lr is not None:
            run = dataclasses.replace(run, lr=self.lr)
        if self.techniques is not None and run.techniques == PLAIN:
            run = dataclasses.replace(run, techniques=self.techniques)
        epochs = self.epochs_by_family.get(spec.family, self.epochs)
        return run, dataclasses.replace(self, epochs=epochs, epochs_by_family={})

    def trains(self, model: str) -> bool:
        """Whether this preset trains ``model``."""
        return not any(fnmatch.fnmatchcase(model, pattern) for pattern in self.skip)


PRESETS = {
    # the chapter's recipe, exactly: 10 epochs over all 60,000 images, the full test set
    "book": Preset("book", epochs=10),
    # the chapter's recipe on a CPU: the book's optimizer, learning rate, batch and 10 epochs
    # over all the data, tested on the full test set, in fp32, but at the smallest side of at
    # least 32 pixels each network accepts instead of the book's 224 or 96, the one change
    # that brings chapter 8's networks within hours of two cores
    "book_cpu": Preset("book_cpu", epochs=10, max_side=32),
    # book_cpu cut to its first 2 epochs: short probes of why a network does not learn under
    # it (a learning rate, a side), never read as what a network buys
    "probe": Preset("probe", epochs=2, max_side=32),
    # a CPU: every network it trains learns on a fixed amount of work: Adam at lr 1e-3 on 2
    # epochs over 600 images a class (10 for the LeNets, whose steps cost little; 4 for
    # GoogLeNet, slow to leave chance without batch norm); inputs larger than 32 pixels at 32,
    # or at the smallest side the network accepts; evaluated on 200 test images a class. NiN
    # and googlenet_28 are left to the book presets: NiN, without batch norm, learns on this
    # work at the mercy of its seed, so its accuracy would rank nothing, and its five runs
    # would double the preset's time; googlenet_28 keeps full resolution throughout, the
    # slowest training step of the registry on a CPU.
    "cpu": Preset(
        "cpu",
        epochs=2,
        train_per_class=600,
        test_per_class=200,
        epochs_by_family={"lenet": 10, "googlenet": 4},
        max_side=32,
        lr=1e-3,
        techniques=Techniques(adam=True),
        skip=("nin*", "googlenet_28"),
    ),
    # tests and CI: four epochs over 200 images per class (one for a scheduled run)
    "smoke": Preset(
        "smoke",
        epochs=4,
        train_per_class=200,
        test_per_class=50,
        scheduled=Preset("smoke", epochs=1, train_per_class=200, test_per_class=50),
    ),
}


@dataclass(frozen=True)
class Run:
    """One training run: a registry network and, unless overridden, its book recipe."""

    model: str
    lr: float | None = None
    batch_size: int | None = None
    resize: int | None = None
    seed: int = 0
    lr_factor: float = 1.0  # multiplies the learning rate (an exercise's grid around it)
    epochs: int | None = None  # a schedule of its own (the preset's work does not apply)
    techniques: Techniques = PLAIN

    def settings(self) -> dict[str, Any]:
        """The run with the book's recipe filled in: lr (times ``lr_factor``), batch size,
        resize (None: 28), and the techniques on top of it."""
        recipe = archs.spec(self.model).recipe
        if recipe is None and (self.lr is None or self.batch_size is None):
            raise ValueError(f"{self.model} has no book recipe: give lr and batch_size")
        return {
            "model": self.model,
            "lr": float(f"{(self.lr if self.lr is not None else recipe.lr) * self.lr_factor:.6g}"),
            "batch_size": self.batch_size or recipe.batch_size,
            "resize": self.resize
            if self.resize is not None
            else (recipe.resize if recipe else None),
            "seed": self.seed,
            "epochs": self.epochs,
            "techniques": self.techniques.names(),
            "technique_settings": self.techniques.on(),
        }


# Named experiments: the book's runs, and the exercises that need training.
EXPERIMENTS: dict[str, tuple[Run, ...]] = {
    "book": tuple(Run(m) for m in archs.BOOK_MODELS),
    # 8.5.7.2: LeNet with and without batch norm over learning rates, 0.3 to 1,000 times the
    # preset's (0.03 to 100 under the book's), far enough that training fails for each
    "lr_grid": tuple(
        Run(m, lr_factor=f)
        for m in ("lenet", "bn_lenet")
        for f in (0.3, 1, 3, 10, 30, 100, 300, 1000)
    ),
    # 8.1.5.6: AlexNet's batch size against throughput, accuracy and peak memory
    "batch_sweep": tuple(Run("alexnet", batch_size=b) for b in (32, 128, 512)),
    # 8.2.5.4: the book's small VGG-11 at 56 and 84 pixels instead of 224
    "vgg_sizes": tuple(Run("vgg11_small", resize=side) for side in (56, 84)),
    # 8.3.5.1-3: NiN with one or three 1x1 convs, 3x3 convs, a fully connected head
    "nin_variants": tuple(Run(m) for m in ("nin_one_1x1", "nin_three_1x1", "nin_3x3", "nin_fc")),
    # 8.1.5.7: LeNet-5 with ReLU and dropout; 8.5.7.1: a bias before batch norm, and none;
    # 8.5.7.3: batch norm after the convs only
    "lenet_variants": tuple(
        Run(m) for m in ("lenet_modern", "lenet_dropout", "bn_lenet_nobias", "bn_lenet_convs")
    ),
    # 8.1.5.5.2, 8.4.5.3: networks for 28x28 inputs
    "networks_28": tuple(Run(m) for m in ("lenet_28", "vgg_28", "googlenet_28", "resnet9_28")),
    # 8.4.5.1, 8.6.7.1, 8.6.7.4, 8.8.6.1-2: the variants whose accuracy an exercise asks for
    "variants": tuple(Run(m) for m in ("googlenet_bn", "resnet18_preact", "resnext18", "anynet")),
    # probes of the book networks that sit at chance or fall short under book_cpu: their
    # learning rates around the book's (train them under the probe preset; GoogLeNet's and
    # NiN's own book_cpu runs show the book's rate)
    "lr_probes": tuple(
        Run(m, lr_factor=f)
        for m, factors in (("vgg11_small", (1, 3, 10, 30)), ("googlenet", (3, 10)), ("nin", (3,)))
        for f in factors
    ),
    # the same networks at the book's rate with He initialization in place of Xavier: whether
    # the init, not the rate, holds them at chance (under the probe preset)
    "init_probes": tuple(
        Run(m, techniques=Techniques(he_init=True)) for m in ("nin", "vgg11_small", "googlenet")
    ),
    # the smallest learning rate of the probes that leaves chance, trained under book_cpu
    # (the training page shows the probes that chose it)
    "lr_fixes": (Run("vgg11_small", lr_factor=10),),
    # 8.5.7.1: a second seed of the two runs whose accuracies differ by less than two points
    "seeds": tuple(Run(m, seed=1) for m in ("bn_lenet", "bn_lenet_nobias")),
}
# The fast recipes: a small ResNet at 28x28 on a one-cycle schedule of its own, every technique
# on, each sized for a wall-clock budget on a 2-core CPU (what each reached, and in how long, is
# in the training pages of the published runs: `nox -s fast`):
# - the first: 7 epochs at 28 px, evaluated after each.
FIRST_FAST_RUN = Run("resnet9_28", lr=0.2, batch_size=256, epochs=7, techniques=FIRST_FAST)
# - the second, for 5 minutes on a CPU without bf16 arithmetic: 4 epochs, the first three at
#   14, 14 and 20 px (smaller images cost less a step early on, when the network learns coarse
#   features), evaluated at the end only (evaluation is not training).
FOUR_EPOCH_RUN = Run("resnet9_28", lr=0.1, batch_size=128, epochs=4, techniques=FAST)
# - the same for 3 minutes (2 epochs, the first at 14 px), and for 10 (7 epochs, the first
#   five at 14, 14, 20, 20 and 20 px, with shift test-time augmentation).
FAST_3_MIN = dataclasses.replace(
    FOUR_EPOCH_RUN, epochs=2, techniques=dataclasses.replace(FAST, early_sides=(14,))
)
FAST_10_MIN = dataclasses.replace(
    FOUR_EPOCH_RUN,
    epochs=7,
    techniques=dataclasses.replace(FAST, early_sides=(14, 14, 20, 20, 20), shift_tta=True),
)
# The search for a five-minute recipe on a CPU with bf16: from the 4-epoch recipe, one change
# at a time, each judged on three seeds against the step it changes (its training page shows
# what each bought, in accuracy and in seconds). A change that did not pay stays in the list,
# and the steps after it change the step before it.
FAST_SEARCH: dict[str, tuple[str | None, Run]] = {"the 4-epoch recipe": (None, FOUR_EPOCH_RUN)}


def _step(change: str, after: str, techniques: Mapping[str, Any] | None = None, **settings) -> None:
    """Add the search step ``change``: the step ``after`` with ``settings`` of its run and
    ``techniques`` of its techniques replaced."""
    run = FAST_SEARCH[after][1]
    changed = dataclasses.replace(run.techniques, **(techniques or {}))
    FAST_SEARCH[change] = (after, dataclasses.replace(run, techniques=changed, **settings))


# a larger batch keeps two cores busier; batch norm and ReLU on pooled pixels cost a quarter
_step("batch 256 at lr 0.2", "the 4-epoch recipe", batch_size=256, lr=0.2)
_step("max pool before batch norm", "batch 256 at lr 0.2", model="resnet9_28_pool_first")
# what the time saved buys: 14 epochs, half of them downscaled, as the 4-epoch recipe does
_step(
    "14 epochs, the first 3 at 14 px and 4 at 20",
    "max pool before batch norm",
    {"early_sides": (14, 14, 14, 20, 20, 20, 20)},
    epochs=14,
)
_step(
    "shift test-time augmentation",
    "14 epochs, the first 3 at 14 px and 4 at 20",
    {"shift_tta": True},
)
# - this one, for 5 minutes on a CPU with bf16 arithmetic: the search's last step.
FAST_RUN = FAST_SEARCH["shift test-time augmentation"][1]
# The fast recipe for a GPU, whose goal is 94 % within 5 s of training: the first recipe's
# techniques, compiled with CUDA graphs, bf16 autocast and channels_last running there, on a
# network twice resnet9_28's width, evaluated after every epoch so that its time to 94 % is read
# off its curve. Accuracy, not speed, bounds the small network: resnet9_28 stops short of 94 %
# even at 16 epochs, and the wide one is still rising after 8, hence 16 epochs (the CPU runs
# that chose them are in the published AVX2 and AVX-512 BF16 stores). Batch 250 divides the
# 60,000 training images: every step has the same shape, compiled and graphed once.
FAST_GPU_RUN = Run(
    "resnet9_28_wide",
    lr=0.2,
    batch_size=250,
    epochs=16,
    techniques=dataclasses.replace(FIRST_FAST, compile="reduce-overhead"),
)
FAST_RECIPES = (FAST_RUN, FOUR_EPOCH_RUN, FAST_3_MIN, FAST_10_MIN, FIRST_FAST_RUN, FAST_GPU_RUN)


def seeded(*runs: Run) -> tuple[Run, ...]:
    """Each run with seeds 0, 1 and 2: seed 0 of every run first."""
    return tuple(dataclasses.replace(run, seed=s) for s in (0, 1, 2) for run in runs)


def ablated(run: Run) -> tuple[Run, ...]:
    """What each technique of ``run`` buys: the run with one switched off at a time, then
    with none (the book's loop on the same schedule)."""
    on = run.techniques.on()
    return (
        *(
            dataclasses.replace(
                run, techniques=dataclasses.replace(run.techniques, **{n: getattr(PLAIN, n)})
            )
            for n in on
        ),
        dataclasses.replace(run, techniques=PLAIN),
    )


EXPERIMENTS["fast"] = seeded(FAST_RUN)
EXPERIMENTS["fast_search"] = seeded(*(run for _, run in FAST_SEARCH.values()))
EXPERIMENTS["fast_ablation"] = seeded(*ablated(FAST_RUN))
EXPERIMENTS["fast_4_epochs"] = seeded(FOUR_EPOCH_RUN)
EXPERIMENTS["fast_4_epoch_ablation"] = seeded(*ablated(FOUR_EPOCH_RUN))
EXPERIMENTS["fast_budgets"] = seeded(FAST_3_MIN, FAST_10_MIN)
EXPERIMENTS["fast_first"] = seeded(FIRST_FAST_RUN)
EXPERIMENTS["fast_gpu"] = seeded(FAST_GPU_RUN)
# The weight average on the other schedules of resnet9_28: the 4-epoch recipe's ablation
# judges it on that schedule; these are the 2- and 7-epoch budgets and the GPU's recipe
# without it, so that each schedule's pages show what it buys there.
EXPERIMENTS["fast_without_ema"] = seeded(
    *(
        dataclasses.replace(run, techniques=dataclasses.replace(run.techniques, ema=PLAIN.ema))
        for run in (FAST_3_MIN, FAST_10_MIN, FAST_GPU_RUN)
    )
)


def config(run: Run, preset: Preset, pipeline: str) -> dict[str, Any]:
    """Everything that determines a run's result: its key in the results store."""
    run, work = preset.adapt(run)
    return {
        **run.settings(),
        "name": work.name,
        "epochs": work.epochs,
        "train_per_class": work.train_per_class,
        "test_per_class": work.test_per_class,
        "pipeline": pipeline,
    }


def describe(run: Run, preset: Preset, pipeline: str) -> dict[str, Any]:
    """What the pages say of a run, stored with its row: its preset and pipeline, the work it
    trained on, the test set, the settings in which it differs from its network's preset run
    (None for a network without a book recipe) and whether it is the fast recipe."""
    key = config(run, preset, pipeline)
    per_class, tested = key["train_per_class"], key["test_per_class"]
    images = "all 60,000 images" if per_class is None else f"{10 * per_class:,} images"
    changes = None
    if archs.spec(run.model).recipe is not None:
        base = config(Run(run.model), preset, pipeline)
        changes = sorted(k for k in key if key[k] != base[k])
    return {
        "preset": preset.name,
        "pipeline": pipeline,
        "work": f"{key['epochs']} epochs over {images}",
        "test_set": "all 10,000" if tested is None else f"{10 * tested:,} (first {tested} a class)",
        "changes": changes,
        "fast_recipe": dataclasses.replace(run, seed=0) in FAST_RECIPES,
    }
