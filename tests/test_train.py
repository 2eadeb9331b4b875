"""Training on the smoke profile: it learns, it resumes exactly, it stops when it diverges."""

import pytest
import torch

from bench import data as D
from bench.train import EXPERIMENTS, PROFILES, Budget, Run, config, train

CPU = torch.device("cpu")
SMOKE = PROFILES["smoke"]


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


def test_a_time_budget_evaluates_at_its_fractions(fashion):
    budget = Budget("test", seconds=1.0, eval_points=2, train_per_class=200, test_per_class=10)
    summary, history = train(Run("lenet"), budget, fashion, CPU)
    assert len(history) == 2
    assert 0.5 <= history[0]["train_s"] < history[1]["train_s"]
    assert history[1]["train_s"] >= 1.0
    assert summary["train_s"] == history[1]["train_s"]


def test_time_to_accuracy_is_the_first_point_reaching_it(fashion):
    budget = Budget("test", seconds=3.0, eval_points=3, test_per_class=50)
    summary, history = train(Run("lenet_modern"), budget, fashion, CPU)
    for target in (80, 85, 90, 92):
        reached = [h["train_s"] for h in history if h["test_acc"] >= target / 100]
        assert summary[f"time_to_{target}_s"] == (reached[0] if reached else None)


def test_the_book_pipeline_trains_too(fashion):
    summary, _ = train(Run("lenet"), PROFILES["smoke"], fashion, CPU, pipeline="torchvision")
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
    assert all(r.short for name, runs in EXPERIMENTS.items() if name != "book" for r in runs)
    settings = Run("alexnet").settings()
    assert (settings["lr"], settings["batch_size"], settings["resize"]) == (0.01, 128, 224)
    key = config(Run("alexnet"), PROFILES["cpu"], "ours")
    assert key["seconds"] == 30 and key["pipeline"] == "ours" and key["model"] == "alexnet"
