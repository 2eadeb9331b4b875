"""Training on the smoke preset: it learns, it resumes exactly, it stops when it diverges."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archs
from bench import data as D
from bench.recipes import (
    EXPERIMENTS,
    FAST,
    FAST_3_MIN,
    FAST_10_MIN,
    FAST_GPU_RUN,
    FAST_RUN,
    FAST_SEARCH,
    FOUR_EPOCH_RUN,
    PLAIN,
    PRESETS,
    Preset,
    Run,
    Techniques,
    config,
    describe,
)
from bench.training.loop import Batches, _warm_up, evaluate, train
from bench.training.techniques import augment, transform

CPU = torch.device("cpu")
SMOKE = PRESETS["smoke"]


@pytest.fixture(scope="module")
def fashion():
    return D.load()


@pytest.fixture(scope="module")
def uninterrupted(fashion):
    return train(Run("lenet_modern"), SMOKE, fashion, CPU)


def test_smoke_training_beats_chance_clearly(uninterrupted):
    summary, history = uninterrupted
    assert summary["status"] == "ok" and len(history) == SMOKE.epochs
    assert summary["test_acc"] > 0.35  # chance is 0.10
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert [h["epoch"] for h in history] == [1.0, 2.0, 3.0, 4.0]


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_metrics(fashion, uninterrupted, tmp_path):
    checkpoint = tmp_path / "run.pt"

    def stop_in_the_third_epoch(step):
        if step == 40:  # 16 steps an epoch: the checkpoint of epoch 2 is on disk
            raise Interrupt

    with pytest.raises(Interrupt):
        train(Run("lenet_modern"), SMOKE, fashion, CPU, checkpoint, on_step=stop_in_the_third_epoch)
    assert checkpoint.exists()
    _, history = train(Run("lenet_modern"), SMOKE, fashion, CPU, checkpoint)
    expected = uninterrupted[1]
    for key in ("step", "train_loss", "train_acc", "test_loss", "test_acc"):
        assert [h[key] for h in history] == [h[key] for h in expected], key
    assert not checkpoint.exists()  # finished runs leave no checkpoint behind


def test_a_nan_loss_stops_the_run_as_diverged(fashion):
    summary, history = train(Run("lenet_modern", lr=1e6), SMOKE, fashion, CPU)
    assert summary["status"] == "diverged"
    assert len(history) < SMOKE.epochs


def test_the_cpu_preset_adapts_a_recipe_to_fixed_work():
    cpu = PRESETS["cpu"]
    run, work = cpu.adapt(Run("alexnet"))  # 224 px in the book; accepts 65 px and up
    side = archs.spec("alexnet").min_image_size
    assert side > cpu.max_side and run.resize == side
    assert (run.lr, run.techniques, work.epochs) == (cpu.lr, cpu.techniques, cpu.epochs)
    run, _ = cpu.adapt(Run("resnet18"))  # 96 px in the book, accepts anything
    assert run.resize == cpu.max_side
    run, work = cpu.adapt(Run("lenet", lr_factor=3))  # 28 px stays; the LeNets train longer
    assert run.resize is None and run.settings()["lr"] == 3 * cpu.lr
    assert work.epochs == cpu.epochs_by_family["lenet"] != cpu.epochs
    fast, work = cpu.adapt(FAST_RUN)  # a run with its own schedule keeps it
    assert fast == FAST_RUN and work.epochs == FAST_RUN.epochs and work.train_per_class is None
    assert not cpu.trains("nin_fc") and cpu.trains("resnet18") and PRESETS["book"].trains("nin")
    # the key names what the run trained on, so that a page can say it
    key = config(Run("alexnet"), cpu, "ours")
    assert (key["resize"], key["epochs"], key["train_per_class"], key["techniques"]) == (
        side,
        cpu.epochs,
        cpu.train_per_class,
        "adam",
    )


def test_time_to_accuracy_is_the_first_point_reaching_it():
    from bench.device import backend_for
    from bench.training.loop import _summary

    points = [(1.0, 0.70), (2.0, 0.86), (3.0, 0.84), (4.0, 0.91), (5.0, 0.9401)]  # (s, accuracy)
    history = [
        {"train_s": s, "test_acc": a, "train_loss": 0.5, "wall_s": s + 1, "step": 10 * i}
        for i, (s, a) in enumerate(points, 1)
    ]
    summary = _summary({"batch_size": 8}, history, "ok", 0, backend_for(CPU))
    assert [summary[f"time_to_{t}_s"] for t in (80, 85, 90, 92, 94)] == [2.0, 2.0, 4.0, 5.0, 5.0]
    shorter = _summary({"batch_size": 8}, history[:4], "ok", 0, backend_for(CPU))
    assert shorter["time_to_92_s"] is None and shorter["time_to_94_s"] is None  # not reached


def test_the_book_pipeline_trains_too(fashion):
    summary, _ = train(Run("lenet"), PRESETS["smoke"], fashion, CPU, pipeline="torchvision")
    assert summary["status"] == "ok" and summary["evaluations"] == SMOKE.epochs


def test_device_batches_cover_the_split_once_per_epoch_and_repeat_by_seed(fashion):
    split = D.subset(fashion.test, 30)
    batches = D.DeviceBatches(split, 64, CPU, resize=32, seed=3)
    first = list(batches.epoch(0))
    labels = torch.cat([y for _, y in first])
    assert sorted(labels.tolist()) == sorted(split.labels.tolist())
    assert first[0][0].shape == (64, 1, 32, 32) and first[0][0].dtype == torch.float32
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, batches.epoch(0), strict=True))
    assert not torch.equal(first[0][1], next(batches.epoch(1))[1])
    assert torch.equal(next(batches.epoch(0, start=2))[1], first[2][1])


@pytest.mark.parametrize("size", [56, 96, 224])
def test_resize_matches_torchvision_within_one_grey_level(fashion, size):
    from PIL import Image
    from torchvision import transforms

    images = fashion.test.images[:32]
    book = transforms.Compose([transforms.Resize(size), transforms.ToTensor()])
    expected = torch.stack([book(Image.fromarray(image.numpy(), mode="L")) for image in images])
    # PIL rounds the resized image to whole grey levels; ours stays in floating point
    assert (D.prepare(images, size) - expected).abs().max() <= 1 / 255 + 1e-6


def test_experiments_and_configs_are_data():
    assert {r.model for r in EXPERIMENTS["book"]} >= {"lenet", "alexnet", "resnet18", "regnetx32"}
    # the book's learning-rate grid for 8.5.7.2: 0.03 to 100 around LeNet's 0.1
    lrs = [r.settings()["lr"] for r in EXPERIMENTS["lr_grid"] if r.model == "lenet"]
    assert lrs == pytest.approx([0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0])
    assert all(r.epochs for n in ("fast", "fast_ablation") for r in EXPERIMENTS[n])
    # the ablation switches off one technique at a time, then all of them, for every seed
    lines = [r for r in EXPERIMENTS["fast_ablation"] if r.seed == 0]
    assert EXPERIMENTS["fast_ablation"] == tuple(
        dataclasses.replace(r, seed=s) for s in (0, 1, 2) for r in lines
    )
    ablated, recipe = [r.techniques for r in lines], FAST_RUN.techniques
    assert all(dataclasses.replace(r, techniques=recipe) == FAST_RUN for r in lines)
    fields = dataclasses.fields(Techniques)
    switched_on = [f for f in fields if getattr(recipe, f.name) != f.default]
    assert len(ablated) == len(switched_on) + 1 and ablated[-1] == PLAIN
    assert all(
        sum(getattr(t, f.name) != getattr(recipe, f.name) for f in fields) == 1
        for t in ablated[:-1]
    )
    # the search: each step changes the run of the step it names, and the recipe is its last
    steps = list(FAST_SEARCH.items())
    assert steps[0][1] == (None, FOUR_EPOCH_RUN) and steps[-1][1][1] == FAST_RUN
    for _, (after, run) in steps[1:]:
        before = FAST_SEARCH[after][1]
        changed = [k for k, v in run.settings().items() if v != before.settings()[k]]
        assert changed and set(changed) <= {
            "model",
            "lr",
            "batch_size",
            "epochs",
            "techniques",
            "technique_settings",
        }
    assert EXPERIMENTS["fast"] == tuple(dataclasses.replace(FAST_RUN, seed=s) for s in (0, 1, 2))
    # the weight average off on the other fast recipes, everything else as they are
    without = [r for r in EXPERIMENTS["fast_without_ema"] if r.seed == 0]
    assert all(r.techniques.ema == PLAIN.ema for r in without)
    assert [
        dataclasses.replace(r, techniques=dataclasses.replace(r.techniques, ema=FAST.ema))
        for r in without
    ] == [FAST_3_MIN, FAST_10_MIN, FAST_GPU_RUN]
    settings = Run("alexnet").settings()
    assert (settings["lr"], settings["batch_size"], settings["resize"]) == (0.01, 128, 224)
    key = config(Run("alexnet"), PRESETS["book"], "ours")
    assert (key["epochs"], key["pipeline"], key["model"], key["resize"]) == (
        10,
        "ours",
        "alexnet",
        224,
    )


def test_the_fast_recipe_runs_end_to_end_on_the_smoke_profile(fashion):
    summary, history = train(FAST_RUN, SMOKE, fashion, CPU)
    assert summary["status"] == "ok" and len(history) == SMOKE.scheduled.epochs
    assert summary["techniques"] == FAST_RUN.techniques.names()
    assert summary["epochs"] == FAST_RUN.epochs
    assert summary["autocast"] == (
        "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "off"
    )
    # the accuracy of the last evaluation, over the whole test set: a count of right answers
    tested = 10 * SMOKE.scheduled.test_per_class
    assert summary["test_acc"] == history[-1]["test_acc"]
    assert summary["test_acc"] * tested == pytest.approx(round(summary["test_acc"] * tested))
    assert summary["wall_s"] >= summary["train_s"]
    # the cpu preset keeps a scheduled run's epochs; the smoke preset shortens it
    assert config(FAST_RUN, PRESETS["cpu"], "ours")["epochs"] == FAST_RUN.epochs


def test_an_interrupted_fast_run_resumes_to_the_same_metrics(fashion, tmp_path):
    run = dataclasses.replace(FAST_RUN, epochs=2)
    budget = Preset(
        "test",
        epochs=1,
        train_per_class=100,
        test_per_class=20,
        scheduled=Preset("test", epochs=2, train_per_class=100, test_per_class=20),
    )
    _, expected = train(run, budget, fashion, CPU)

    def stop(step):
        if step == 6:  # 4 steps an epoch: epoch 1's checkpoint (schedule, average) is on disk
            raise Interrupt

    with pytest.raises(Interrupt):
        train(run, budget, fashion, CPU, tmp_path / "run.pt", on_step=stop)
    _, history = train(run, budget, fashion, CPU, tmp_path / "run.pt")
    for key in ("train_loss", "test_loss", "test_acc"):
        assert [h[key] for h in history] == [h[key] for h in expected], key


def test_augment_crops_a_padded_copy_and_flips_it_and_repeats_by_seed(fashion):
    x = D.prepare(fashion.test.images[:16], None)
    out = augment(x, seed=7)
    assert out.shape == x.shape and torch.equal(out, augment(x, seed=7))
    assert not torch.equal(out, augment(x, seed=8))
    padded = F.pad(x, (2, 2, 2, 2))
    for image, original in zip(out, padded, strict=True):
        views = [
            v
            for dy in range(5)
            for dx in range(5)
            for v in (
                original[:, dy : dy + 28, dx : dx + 28],
                original[:, dy : dy + 28, dx : dx + 28].flip(2),
            )
        ]
        assert any(torch.equal(image, v) for v in views)
    flipped = sum(
        not any(
            torch.equal(i, p[:, dy : dy + 28, dx : dx + 28]) for dy in range(5) for dx in range(5)
        )
        for i, p in zip(out, padded, strict=True)
    )
    assert 0 < flipped < len(x)  # some images are mirrored, some not


def _one_step(techniques: Techniques, fashion, steps: int):
    """The model, optimizer, schedule and average after ``steps`` steps on the first images."""
    from bench.training.loop import train_step
    from bench.training.techniques import average_for, layout, optimizer_for, schedule_for

    torch.manual_seed(0)
    model = archs.build("resnet9_28")
    if techniques.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = optimizer_for(model, 0.1, techniques)
    schedule = schedule_for(optimizer, techniques, Preset("t", epochs=1), 10)
    average = average_for(model, techniques)
    x, y = D.prepare(fashion.test.images[:32], None), fashion.test.labels[:32]
    for _ in range(steps):
        loss, _ = train_step(model, optimizer, layout(x, techniques), y, techniques)
        if schedule:
            schedule.step()
        if average:
            average.update_parameters(model)
    return model, optimizer, schedule, average, loss


def test_each_switch_changes_what_it_says(fashion):
    from bench.training.techniques import autocast

    model, optimizer, _, average, _ = _one_step(FAST, fashion, steps=3)
    group = optimizer.param_groups[0]
    assert group["momentum"] == 0.9 and group["nesterov"] and group["weight_decay"] == 5e-4
    assert model[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    # one-cycle: warm-up from lr/10 to lr over 20% of the steps, then down towards 0
    from bench.training.techniques import schedule_for

    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    cycle = schedule_for(sgd, FAST, Preset("t", epochs=1), 10)
    lrs = [cycle.get_last_lr()[0]]
    for _ in range(9):
        sgd.step()
        cycle.step()
        lrs.append(cycle.get_last_lr()[0])
    assert lrs[0] == pytest.approx(0.01) and max(lrs) == pytest.approx(0.1)
    assert lrs.index(max(lrs)) <= 2 and lrs[-1] < 0.02
    assert schedule_for(sgd, PLAIN, Preset("t", epochs=1), 10) is None
    # the average lags the model: its weights lie between the first and the current
    assert not torch.equal(average.module[0][0].weight, model[0][0].weight)
    with autocast(FAST, CPU):
        dtype = model(torch.rand(2, 1, 28, 28)).dtype
    assert dtype == (
        torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32
    )
    with autocast(PLAIN, CPU):
        assert model(torch.rand(2, 1, 28, 28)).dtype == torch.float32
    # a training step with label smoothing charges a confident, correct prediction more
    from bench.training.loop import train_step

    confident = nn.Linear(1, 2)
    with torch.no_grad():
        confident.weight.copy_(torch.tensor([[10.0], [0.0]]))
        confident.bias.zero_()
    frozen = torch.optim.SGD(confident.parameters(), lr=0.0)
    x, y = torch.ones(1, 1), torch.tensor([0])
    smoothed, _ = train_step(confident, frozen, x, y, Techniques(label_smoothing=0.1))
    plain, _ = train_step(confident, frozen, x, y, PLAIN)
    # with smoothing e the target is (1 - e/2, e/2) over two classes: loss = -sum(target * log p)
    log_p = torch.log_softmax(torch.tensor([10.0, 0.0]), 0)
    assert plain.item() == pytest.approx(-log_p[0].item())
    assert smoothed.item() == pytest.approx(-(0.95 * log_p[0] + 0.05 * log_p[1]).item())


def test_the_weight_average_is_torchs_averaged_model_with_the_ramped_decay():
    from torch.optim.swa_utils import AveragedModel

    from bench.training.techniques import Average

    def ramped(average, current, n):  # the reference: one tensor at a time, n on the host
        decay = min(0.99, (1 + int(n)) / (10 + int(n)))
        return average * decay + current * (1 - decay)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    model(torch.rand(2, 1, 6, 6))
    ours, reference = Average(model, 0.99), AveragedModel(model, avg_fn=ramped, use_buffers=True)
    for _ in range(30):
        model(torch.rand(8, 1, 6, 6))  # batch norm's running statistics move
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ours.update_parameters(model)
        reference.update_parameters(model)
    expected = reference.module.state_dict()
    for name, value in ours.module.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, expected[name], rtol=1e-6, atol=1e-6)
    assert ours.module[1].num_batches_tracked == model[1].num_batches_tracked  # copied


def test_a_checkpoint_keeps_each_gpus_random_state_where_cuda_is_in_use(monkeypatch):
    from bench.training import loop

    gpus, restored = [torch.tensor([1, 2], dtype=torch.uint8)], []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    saved = loop._rng_state()
    torch.rand(3)  # the generators move on
    loop._restore_rng(saved)
    assert restored == [gpus] and torch.equal(torch.get_rng_state(), saved["rng"])
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert "cuda_rng" not in loop._rng_state()


@pytest.mark.parametrize(("device", "chooses"), [("cuda", True), ("cpu", False)])
def test_a_gpu_run_lets_cudnn_pick_its_fastest_convolutions(monkeypatch, device, chooses):
    from bench.training import loop

    seen = []

    def training(run, preset, fashion, device, *args, **kwargs):  # records the switch as set
        seen.append(torch.backends.cudnn.benchmark)
        return {"status": "ok"}, []

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", not chooses)  # put back afterwards
    monkeypatch.setattr(loop, "load", lambda data_dir: None)
    monkeypatch.setattr(loop, "train", training)
    (result,) = loop.train_rows(Run("lenet"), SMOKE, None, device, None, "ours")
    assert seen == [chooses] and result == {"summary": {"status": "ok"}, "history": []}


def test_flip_tta_averages_the_mirror(fashion):
    split = D.subset(fashion.test, 5)
    batches = D.DeviceBatches(split, 50, CPU, shuffle=False)
    torch.manual_seed(0)
    model = archs.build("lenet_28")
    plain, tta = evaluate(model, batches), evaluate(model, batches, Techniques(flip_tta=True))
    x = D.prepare(split.images, None)
    with torch.no_grad():
        model.eval()  # evaluate leaves the model in training mode
        logits = (model(x) + model(x.flip(3))) / 2
    assert tta[0] == pytest.approx(F.cross_entropy(logits, split.labels).item(), rel=1e-5)
    assert tta[0] != plain[0]


def test_shift_tta_averages_in_the_image_moved_one_pixel_each_way(fashion):
    split = D.subset(fashion.test, 5)
    batches = D.DeviceBatches(split, 50, CPU, shuffle=False)
    torch.manual_seed(0)
    model = archs.build("lenet_28")
    loss, _ = evaluate(model, batches, Techniques(flip_tta=True, shift_tta=True))
    x = D.prepare(split.images, None)

    def moved(d: int) -> torch.Tensor:  # d pixels down and right (up and left for -1), zeros in
        out = torch.roll(x, (d, d), (2, 3))
        edge = 0 if d > 0 else -1
        out[:, :, edge, :], out[:, :, :, edge] = 0, 0
        return out

    with torch.no_grad():
        model.eval()

        def mirrored(v: torch.Tensor) -> torch.Tensor:
            return (model(v) + model(v.flip(3))) / 2

        logits = mirrored(x) / 2 + (mirrored(moved(-1)) + mirrored(moved(1))) / 4
    assert loss == pytest.approx(F.cross_entropy(logits, split.labels).item(), rel=1e-5)


def test_eval_at_end_trains_the_same_and_evaluates_the_last_epoch_only(fashion):
    budget = Preset("test", epochs=2, train_per_class=40, test_per_class=10)
    sgd = Techniques(momentum=0.9)
    run = Run("resnet9_28", lr=0.05, batch_size=256, techniques=sgd)
    summary, at_end = train(
        dataclasses.replace(run, techniques=dataclasses.replace(sgd, eval_at_end=True)),
        budget,
        fashion,
        CPU,
    )
    _, every = train(run, budget, fashion, CPU)
    assert len(every) == 2 and len(at_end) == 1 and summary["evaluations"] == 1
    (last,) = at_end
    assert (last["epoch"], last["step"]) == (2.0, every[-1]["step"])
    assert last["test_acc"] == every[-1]["test_acc"]  # the same weights at the end
    # its training loss and images/s are over both epochs
    assert last["train_loss"] == pytest.approx(
        (every[0]["train_loss"] + every[1]["train_loss"]) / 2
    )
    assert last["images_per_s"] == pytest.approx(800 / last["train_s"])


def test_early_sides_downscale_the_first_epochs_only(fashion):
    from torchvision.transforms.functional import resize

    x = D.prepare(fashion.test.images[:8], None)
    growing = Techniques(early_sides=(14, 20))
    for epoch, side in enumerate((14, 20)):
        small = transform(x, growing, seed=0, epoch=epoch, step=0)
        assert small.shape == (8, 1, side, side)
        assert torch.allclose(small, resize(x, [side, side], antialias=True), atol=1e-6)
    assert torch.equal(transform(x, growing, seed=0, epoch=2, step=0), x)


def test_compiling_warms_up_on_every_shape_the_run_trains_on_then_restores_the_state(fashion):
    class Recorder(nn.Module):  # stands in for the compiled module: records its inputs
        def __init__(self, model: nn.Module):
            super().__init__()
            self.model, self.shapes = model, []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.shapes.append(tuple(x.shape))
            return self.model(x)

    torch.manual_seed(0)
    model = nn.Sequential(archs.build("resnet9_28"), nn.Dropout(0.5))  # batch norm, random draws
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    split = D.subset(fashion.train, 3)  # 30 images: batches of 16 and 14
    batches = Batches("ours", split, {"batch_size": 16, "resize": None, "seed": 0}, CPU)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    recorder = Recorder(model)
    seconds = _warm_up(
        recorder,
        model,
        optimizer,
        batches,
        Techniques(augment=True, early_sides=(14, 14)),
        epochs=3,
    )
    assert sorted(set(recorder.shapes)) == [
        (14, 1, 14, 14),
        (14, 1, 28, 28),
        (16, 1, 14, 14),
        (16, 1, 28, 28),
    ]
    assert len(recorder.shapes) == 3 * 4 and seconds > 0
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert optimizer.state_dict()["state"] == {}  # no momentum from the warm-up steps
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_compiled_run_trains_as_the_eager_one_with_its_compile_time_apart(fashion, monkeypatch):
    compiled = torch.compile
    modes = []

    def through_aot_autograd(model, mode):  # inductor's code generation takes a minute here
        modes.append(mode)
        return compiled(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", through_aot_autograd)
    budget = Preset("test", epochs=2, train_per_class=10, test_per_class=5)
    sgd = Techniques(momentum=0.9)
    run = Run("bn_lenet", lr=0.1, batch_size=32, techniques=sgd)
    eager, eager_history = train(run, budget, fashion, CPU)
    summary, history = train(
        dataclasses.replace(run, techniques=dataclasses.replace(sgd, compile="reduce-overhead")),
        budget,
        fashion,
        CPU,
    )
    assert modes == ["reduce-overhead"]
    assert eager["compile_s"] is None and summary["compile_s"] > 0
    assert summary["technique_settings"]["compile"] == "reduce-overhead"
    for key in ("train_loss", "test_loss"):
        assert [h[key] for h in history] == pytest.approx(
            [h[key] for h in eager_history], rel=1e-5
        ), key


def test_each_run_stores_how_the_pages_describe_it():
    cpu = PRESETS["cpu"]
    preset_run = describe(Run("lenet"), cpu, "ours")
    assert preset_run["changes"] == [] and preset_run["preset"] == "cpu"
    # 10 epochs (the LeNets' under cpu) over 600 images of each of the 10 classes
    assert preset_run["work"] == f"{cpu.epochs_by_family['lenet']} epochs over 6,000 images"
    assert preset_run["test_set"] == "2,000 (first 200 a class)" and not preset_run["fast_recipe"]
    assert describe(Run("lenet", lr_factor=3), cpu, "ours")["changes"] == ["lr"]
    assert describe(Run("lenet", batch_size=512), cpu, "ours")["changes"] == ["batch_size"]
    assert describe(Run("vgg11_small", resize=56), cpu, "ours")["changes"] == ["resize"]
    fast = describe(FAST_RUN, PRESETS["book"], "ours")
    assert (
        fast["fast_recipe"] and fast["work"] == f"{FAST_RUN.epochs} epochs over all 60,000 images"
    )
    assert fast["test_set"] == "all 10,000"


def test_adam_replaces_sgd_with_the_rate_and_decay_asked_for():
    from bench.training.techniques import optimizer_for

    model = nn.Linear(2, 2)
    adam = optimizer_for(model, 1e-3, Techniques(adam=True, weight_decay=1e-4))
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["lr"] == 1e-3 and adam.param_groups[0]["weight_decay"] == 1e-4
    sgd = optimizer_for(model, 0.1, PLAIN)
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["momentum"] == 0
    assert not sgd.param_groups[0]["nesterov"]


def test_he_init_redraws_conv_and_linear_weights_at_the_std_he_et_al_derive():
    """He et al. (2015): a ReLU layer keeps its input's variance when its weights have variance
    2 / fan_in; Xavier-uniform's is 2 / (fan_in + fan_out). Biases stay as built."""
    from bench.training.techniques import initialize

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(64, 32, 3), nn.ReLU(), nn.Linear(2000, 1000))
    for layer in (model[0], model[2]):
        nn.init.xavier_uniform_(layer.weight)
    built = {name: p.clone() for name, p in model.named_parameters()}
    initialize(model, PLAIN)
    assert all(torch.equal(p, built[name]) for name, p in model.named_parameters())
    initialize(model, Techniques(he_init=True))
    for layer, fan_in in ((model[0], 64 * 9), (model[2], 2000)):
        assert layer.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.03)
        assert layer.weight.mean().abs().item() < 0.1 * (2 / fan_in) ** 0.5
    assert torch.equal(model[0].bias, built["0.bias"]) and torch.equal(
        model[2].bias, built["2.bias"]
    )
    he_run = EXPERIMENTS["init_probes"][0]
    assert he_run.settings()["techniques"] == "he_init" and he_run.lr is None  # the book's rate


def test_runs_that_differ_by_seed_print_their_median_and_range():
    from bench.stages.train import seed_medians

    accuracy = {0: 0.931, 1: 0.94, 2: 0.936}

    class Stored:  # the three seeds' rows, as the store gives them
        def get(self, stage, model, key):
            return {
                "status": "ok",
                "test_acc": accuracy[key["seed"]],
                "wall_s": 250.0 + key["seed"],
            }

    runs = [dataclasses.replace(FAST_RUN, seed=s) for s in accuracy]
    (line,) = seed_medians(Stored(), runs, PRESETS["book"], "ours", "cpu")
    assert "median of 3 seeds: test accuracy 93.60% (range 93.10% to 94.00%)" in line
    assert "wall clock 251 (range 250 to 252) s" in line


def test_the_book_cpu_preset_is_the_books_recipe_at_the_smallest_side_from_32():
    book_cpu, book = PRESETS["book_cpu"], PRESETS["book"]
    for name in archs.BOOK_MODELS:
        spec = archs.spec(name)
        run, work = book_cpu.adapt(Run(name))
        book_side = spec.recipe.resize or 28
        side = book_side if book_side <= 32 else max(32, spec.min_image_size)
        assert (run.resize or 28) == side  # AlexNet 65 and NiN 67; chapter 8's others 32
        assert run.settings()["lr"] == spec.recipe.lr and run.techniques == Run(name).techniques
        assert run.settings()["batch_size"] == 128 == spec.recipe.batch_size
        assert (work.epochs, work.train_per_class, work.test_per_class) == (10, None, None)
        assert book.adapt(Run(name))[1].epochs == work.epochs
        probed, probe_work = PRESETS["probe"].adapt(Run(name))  # its first epochs alone
        assert probed == run and probe_work.epochs < work.epochs
    key = config(Run("alexnet"), book_cpu, "ours")
    assert (key["resize"], key["techniques"], key["name"]) == (65, "-", "book_cpu")
