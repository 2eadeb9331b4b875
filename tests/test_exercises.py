"""Exercise answers follow from their tables: change the numbers and the sentence changes."""

import statistics

import pandas as pd
import pytest

from bench.recipes import PRESETS, Run, config, describe
from bench.render.exercises import sentences as ex
from bench.render.exercises.catalogue import EXERCISES, NIN
from bench.render.exercises.left import left_to_train
from bench.store import Store

MIB = 2**20


def _runs(**accuracies: float) -> pd.DataFrame:
    """Two or more trained rows on the same work, differing in accuracy and cost."""
    return pd.DataFrame(
        [
            {
                "model": model,
                "side": 32,
                "test_acc": acc,
                "fwd_macs_per_image": 1e6 * (i + 1),
                "images_per_s": 100.0 / (i + 1),
                "budget": "2 epochs over 6,000 images",
                "techniques": "adam",
                "lr": 0.001,
                "config": {"test_per_class": 200},
            }
            for i, (model, acc) in enumerate(accuracies.items())
        ]
    )


def test_the_comparison_ranks_by_the_tables_accuracies():
    text = ex.say_compare(_runs(resnet18=0.80, resnet18_preact=0.70))
    assert text.startswith("Test accuracy: resnet18 at 32 px 80.0%, resnet18_preact at 32 px")
    assert "10.0 points above resnet18_preact at 32 px for 0.50x its MACs" in text
    assert "All on the same work (2 epochs over 6,000 images, techniques adam" in text
    swapped = ex.say_compare(_runs(resnet18=0.70, resnet18_preact=0.80))
    assert swapped.startswith("Test accuracy: resnet18_preact at 32 px 80.0%")
    assert "for 2.00x its MACs per image" in swapped


def test_the_gap_printed_is_the_difference_of_the_accuracies_printed():
    import re

    text = ex.say_compare(_runs(resnet18=0.88049, resnet18_preact=0.72751))  # 15.298 points
    best, worst = (float(v) for v in re.findall(r"px (\d+\.\d)%", text))
    (gap,) = re.findall(r"is (\d+\.\d) points above", text)
    assert (best, worst) == (88.0, 72.8) and float(gap) == round(best - worst, 1) == 15.2


def test_a_gap_within_the_test_sets_noise_is_said():
    # 2,000 test images at 80% and 79%: 2 x sqrt(.8 x .2 / 2000 + .79 x .21 / 2000) = 2.55 points
    close = ex.say_compare(_runs(bn_lenet=0.80, bn_lenet_nobias=0.79))
    assert "the gap is within the test sets' noise (two standard errors: 2.6 points)" in close
    assert "noise" not in ex.say_compare(_runs(bn_lenet=0.80, bn_lenet_nobias=0.75))


def test_a_second_seed_of_each_gives_their_spread_beside_the_gap():
    frame = _runs(bn_lenet=0.880, bn_lenet_nobias=0.878)
    frame["seeds"] = [{0: 0.880, 1: 0.875}, {0: 0.878, 1: 0.886}]
    text = ex.say_compare(frame)
    each = "bn_lenet 88.0%, 87.5% (mean 87.8%); bn_lenet_nobias 87.8%, 88.6% (mean 88.2%)"
    assert f"Over seeds 0, 1: {each}" in text
    # the seeds move bn_lenet_nobias 0.8 points; the means printed differ by 0.4
    assert "the seeds move a network by up to 0.8 points, the means differ by 0.4." in text
    frame["seeds"] = [{0: 0.880, 1: 0.875}, {0: 0.878}]  # one seed of the other: no spread
    assert "Over seeds" not in ex.say_compare(frame)


def test_unequal_work_is_said():
    frame = _runs(googlenet=0.6, resnet18=0.8)
    frame.loc[0, "budget"] = "4 epochs over 6,000 images"
    assert "Not on equal work: googlenet at 32 px: 4 epochs" in ex.say_compare(frame)


def _grid(lenet: list[float], bn_lenet: list[float]) -> pd.DataFrame:
    lrs = [0.03, 0.1, 0.3, 1.0]
    rows = [
        {
            "model": m,
            "lr": lr,
            "test_acc": a,
            "status": "ok",
            "budget": "10 epochs",
            "techniques": "-",
        }
        for m, accs in (("lenet", lenet), ("bn_lenet", bn_lenet))
        for lr, a in zip(lrs, accs, strict=True)
    ]
    return pd.DataFrame(rows)


def test_the_lr_grid_names_where_each_network_fails():
    text = ex.say_lr_grid(_grid([0.6, 0.7, 0.1, 0.1], [0.8, 0.8, 0.8, 0.7]))
    assert "lenet reaches 50% at lr 0.03, 0.1, and fails from lr 0.3" in text
    assert "bn_lenet reaches 50% at lr 0.03, 0.1, 0.3, 1, the largest tried included" in text
    assert "bn_lenet trains at 4 of the 4 learning rates tried" in text
    assert text.endswith("Work: 10 epochs, the book's loop.")
    # a rate too small for the work fails too (plain SGD on sigmoid LeNet)
    text = ex.say_lr_grid(_grid([0.1, 0.7, 0.8, 0.2], [0.8, 0.8, 0.8, 0.8]))
    assert "lenet reaches 50% at lr 0.1, 0.3, not at the smaller 0.03, and fails from lr 1" in text
    text = ex.say_lr_grid(_grid([0.6, 0.7, 0.6, 0.6], [0.1, 0.1, 0.1, 0.1]))
    assert "bn_lenet reaches 50% at no learning rate tried" in text
    assert "lenet trains at 4 of the 4" in text


@pytest.mark.parametrize(("params", "winner"), [(50_000_000, "gradients"), (1_000, "activations")])
def test_training_memory_names_what_dominates(params, winner):
    speed = pd.DataFrame(
        [
            {"batch_size": 1, "mode": m, "peak_bytes": b}
            for m, b in (("train", 300 * MIB), ("infer", 40 * MIB))
        ]
    )
    cost = pd.Series({"params": params, "saved_activation_bytes": 128 * 4 * MIB, "batch_size": 128})
    text = ex.say_memory_modes(speed, cost)
    assert text.startswith("At batch 1, training peaks at 300 MiB against 40 MiB")
    assert f"{winner} dominate" in text
    assert "one mode only" not in text
    inference_alone = pd.DataFrame([{"batch_size": 16, "mode": "infer", "peak_bytes": MIB}])
    text = ex.say_memory_modes(pd.concat([speed, inference_alone]), cost)
    assert "at batch 16" not in text and text.endswith(
        "was not timed in the other (the speed page's note says why)."
    )


def _costs(**networks: tuple[float, float, float]) -> pd.DataFrame:
    """Profile rows: (parameters in millions, training MiB, saved-for-backward MiB) each, MACs
    100 times the parameters, inference a quarter of training."""
    return pd.DataFrame(
        [
            {
                "model": m,
                "image_size": 224,
                "params": p * 1e6,
                "fwd_macs_per_image": p * 1e8,
                "train_bytes_est_sgd": t * MIB,
                "infer_bytes_est": t / 4 * MIB,
                "saved_activation_bytes": s * MIB,
            }
            for m, (p, t, s) in networks.items()
        ]
    ).set_index("model")


def test_the_memory_answer_says_what_a_training_step_holds():
    text = ex.say_memory_totals(
        _costs(densenet=(7.0, 1500.0, 1470.0), resnet=(23.5, 1000.0, 950.0))
    )
    assert "needs (estimated; in brackets: how many times inference's memory, and the share" in text
    assert "densenet 1,500 MiB (4.0x, 98.0%), resnet 1,000 MiB (4.0x, 95.0%)." in text
    # fewer parameters and MACs, more memory: the activations are why
    assert text.endswith(
        "densenet has 0.30x resnet's parameters and 0.30x its MACs, yet 1.50x "
        "its training memory: what backward keeps grows with the feature maps "
        "the layers write, not with the weights or the arithmetic."
    )
    bigger = ex.say_memory_totals(_costs(big=(20.0, 2000.0, 1000.0), small=(10.0, 1000.0, 900.0)))
    assert bigger.endswith(
        "big has 2.00x small's parameters and 2.00x its MACs, and 2.00x its training memory."
    )
    # training memory mostly weights and gradients: no word about activations
    weights = ex.say_memory_totals(_costs(a=(1.0, 3000.0, 900.0), b=(2.0, 1000.0, 900.0)))
    assert weights.endswith(
        "a has 0.50x b's parameters and 0.50x its MACs, yet 3.00x its training memory."
    )


def test_the_activations_answer_compares_them_with_the_cost():
    text = ex.say_activations(_costs(bottleneck=(23.5, 0.0, 2700.0), basic=(21.2, 0.0, 1000.0)))
    assert text.startswith("bottleneck: 23.5 M params, 2.35 G MACs per image; basic: 21.2 M")
    assert (
        "bottleneck has 1.11x basic's parameters and 1.11x its MACs, yet 2.70x its "
        "activations saved for backward: what backward keeps" in text
    )


def test_the_head_answer_reads_the_shares():
    frame = pd.DataFrame(
        {"params": [100, 40, 4], "params_linear": [90, 39, 1]}, index=["big", "narrow", "small"]
    )
    text = ex.say_head(frame)
    assert "big has 0.00 M parameters, 90.0% fully connected" in text
    assert "narrow: 0.00 M parameters (2.5x fewer than big), 97.5% of them" in text
    assert "small: 0.00 M parameters (25.0x fewer than big), 25.0% of them" in text


def test_nin_variants_answer_with_accuracy_once_they_are_trained(tmp_path, full_row):
    store = Store(tmp_path / "results.sqlite")
    for i, model in enumerate(NIN):
        store.put(
            "profile",
            model,
            {"image_size": 224},
            full_row(
                "profile",
                model=model,
                image_size=224,
                batch_size=128,
                params=1_000_000 + i,
                fwd_macs_per_image=700_000_000 + i,
            ),
        )
    exercise = next(e for e in EXERCISES if e.id == "8.3.5.1-3")
    answer = exercise.answer
    frame, _, reasoning = answer(store)
    assert "test_acc" not in frame and list(frame["infer_best"]) == ["-"] * len(NIN)
    section = left_to_train(store, exercise.experiments, exercise.models)
    assert "*Not trained yet under the book_cpu preset* (5 runs;" in section
    assert (
        "`python -m bench train --preset book_cpu --experiment book nin_variants --models "
        f"{','.join(sorted(NIN))}` trains them."
    ) in section
    # no NiN trained yet: no rate of its family to estimate from
    assert section.count("cost not estimated (no network of its family trained") == len(NIN)
    for i, model in enumerate(NIN):  # the book preset's runs, nin_fc the most accurate
        store.put(
            "train",
            model,
            config(Run(model), PRESETS["book"], "ours"),
            full_row(
                "train",
                model=model,
                lr=0.05,
                batch_size=128,
                resize=224,
                techniques="-",
                test_acc=0.80 + i / 100,
                images_per_s=100.0,
                fwd_macs_per_image=700_000_000 + i,
            )
            | describe(Run(model), PRESETS["book"], "ours"),
            details={"history": [{"images_per_s": v} for v in (90.0, 100.0 + i, 110.0)]},
        )
    frame, _, reasoning = answer(store)
    assert list(frame["model"]) == list(NIN)
    assert left_to_train(store, exercise.experiments, exercise.models) == ""
    epochs = [[90.0, 100.0 + i, 110.0] for i in range(len(NIN))]  # each run's spread over them
    cvs = [statistics.stdev(e) / statistics.mean(e) for e in epochs]
    assert list(frame["images_per_s_cv"]) == pytest.approx(cvs)
    assert reasoning.startswith("Test accuracy: nin_fc at 224 px 84.0%, nin_3x3 at 224 px 83.0%")


def _profiled(store, full_row, model, side=224, **values):
    """A profile row of ``model`` at ``side`` pixels, batch 128, with every cost the answers
    read (and ``values``)."""
    store.put(
        "profile",
        model,
        {"image_size": side},
        full_row(
            "profile",
            model=model,
            image_size=side,
            batch_size=128,
            params=10**7,
            fwd_macs_per_image=10**9,
            train_bytes_est_sgd=900 * MIB,
            infer_bytes_est=300 * MIB,
            saved_activation_bytes=800 * MIB,
            **values,
        ),
    )


def _timed(store, full_row, model, side, batch, mode, precision="fp32", **values):
    """A speed row of ``model``: ``mode`` at ``batch``, eager, in ``precision``."""
    store.put(
        "speed",
        model,
        {"batch_size": batch, "mode": mode, "precision": precision},
        full_row(
            "speed",
            model=model,
            image_size=side,
            batch_size=batch,
            mode=mode,
            precision=precision,
            channels_last=False,
            compiled=False,
            **values,
        ),
    )


def test_a_point_timed_by_two_runs_is_read_once_from_the_run_with_more_steps(tmp_path, full_row):
    """AlexNet's inference at batch 16, timed under a 1 s step limit (2 steps) and again under a
    30 s one (5 steps): 8.1.5.1.3 reads the point once, from the run with 5 steps."""
    store = Store(tmp_path / "results.sqlite")
    _profiled(store, full_row, "alexnet")
    for mode, limit, n, mib in (
        ("infer", 1.0, 2, 70),
        ("infer", 30.0, 5, 80),
        ("train", 30.0, 1, 300),
    ):
        store.put(
            "speed",
            "alexnet",
            {"batch_size": 16, "mode": mode, "max_step_s": limit},
            full_row(
                "speed",
                model="alexnet",
                image_size=224,
                batch_size=16,
                mode=mode,
                precision="fp32",
                channels_last=False,
                compiled=False,
                n=n,
                max_step_s=limit,
                images_per_s=1.0,
                peak_bytes=mib * MIB,
            ),
        )
    answer = next(e for e in EXERCISES if e.id == "8.1.5.1.3").answer
    frame, _, reasoning = answer(store)
    assert list(zip(frame["mode"], frame["n"], strict=True)) == [("infer", 5), ("train", 1)]
    assert reasoning.startswith(
        "At batch 16, training peaks at 300 MiB against 80 MiB for inference (measured)"
    )


def test_resnet_answer_reads_each_networks_fastest_fp32_inference(tmp_path, full_row):
    store = Store(tmp_path / "results.sqlite")
    for model in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        _profiled(store, full_row, model, 224)  # ResNet-18 too, beside Table 1's networks
    _profiled(store, full_row, "resnet18", 96)  # at the book's side: not read
    for model, side, batch, precision, speed, n in [
        ("resnet18", 224, 1, "fp32", 50.0, 9),
        ("resnet18", 224, 16, "fp32", 120.0, 5),
        ("resnet18", 224, 16, "bf16", 900.0, 9),  # not the book's setup: not read
        ("resnet50", 224, 1, "fp32", 20.0, 1),
        ("resnet50", 224, 16, "fp32", 10.0, 1),
    ]:
        _timed(
            store,
            full_row,
            model,
            side,
            batch,
            "infer",
            precision,
            images_per_s=speed,
            n=n,
            cv=0.04,
        )
    answer = next(e for e in EXERCISES if e.id == "8.6.7.2").answer
    frame, columns, reasoning = answer(store)
    assert list(frame["infer_best"]) == [
        "120 (batch 16, CV 4%)",
        "-",
        "20 (batch 1, 1 timed step)",
        "-",
        "-",
    ]
    assert columns[-1][0] == "infer_best"
    assert reasoning.endswith(
        "*Throughput not measured yet* for resnet34, resnet101, resnet152: "
        "`python -m bench speed --models resnet34,resnet101,resnet152` "
        "measures it."
    )
    assert frame["source"][0].startswith("profile, ") and "; speed, " in frame["source"][0]


def test_densenet_answer_reads_the_measured_training_memory_at_a_common_batch(tmp_path, full_row):
    store = Store(tmp_path / "results.sqlite")
    for model in ("densenet121", "resnet50"):
        _profiled(store, full_row, model)
    answer = next(e for e in EXERCISES if e.id == "8.7.7.3").answer

    def measured(model, batch, mib, precision="fp32"):
        _timed(
            store,
            full_row,
            model,
            224,
            batch,
            "train",
            precision,
            images_per_s=1.0,
            peak_bytes=mib * MIB,
            memory_kind="resident",
        )

    measured("densenet121", 16, 300)  # no batch timed for both yet
    frame, _, reasoning = answer(store)
    assert list(frame["train_peak"]) == ["-", "-"]
    assert reasoning.endswith(
        "`python -m bench speed --models densenet121,resnet50 --mode train` measures it."
    )
    measured("resnet50", 16, 200)
    measured("densenet121", 64, 900)  # not timed for resnet50: not compared
    measured("resnet50", 64, 500, "bf16")  # not the book's setup
    frame, _, reasoning = answer(store)
    assert list(frame["train_peak"]) == ["300.0 (batch 16)", "200.0 (batch 16)"]
    assert reasoning.endswith(
        "Measured at batch 16 (resident), densenet121's training step grew "
        "memory 1.50x as much as resnet50's."
    )
    # beside it, the same ratio counted: each step's tracked peak less its weights
    for model, weights, batch1, batch128 in (
        ("densenet121", 30, 130, 16_000),
        ("resnet50", 90, 240, 10_000),
    ):
        _profiled(
            store,
            full_row,
            model,
            weight_bytes=weights * MIB,
            train_bytes_tracked_sgd_batch1=batch1 * MIB,
            train_bytes_tracked_sgd=batch128 * MIB,
        )
    assert answer(store)[2].endswith(
        "memory 1.50x as much as resnet50's; counted (the tensors a "
        "step holds at its fullest, tracked on the meta device, less "
        "the weights), 0.67x at batch 1 and 1.61x at batch 128."
    )
    _profiled(
        store, full_row, "densenet121", weight_bytes=30 * MIB, train_bytes_tracked_sgd=16_000 * MIB
    )  # batch norm: no step on one example
    assert answer(store)[2].endswith("the weights), 1.61x at batch 128.")


def _groups(*median_ms: float) -> pd.DataFrame:
    """7.4.7's rows: 1, 4 and 32 groups, their MACs falling by the groups."""
    return pd.DataFrame({"groups": [1, 4, 32], "macs": [3200, 800, 100], "median_ms": median_ms})


def test_grouped_convs_say_whether_latency_fell_less_than_the_macs():
    slower = ex.say_groups(_groups(16.0, 5.0, 5.0))
    assert slower.startswith(
        "4 groups: 4x fewer MACs, 3.2x faster; 32 groups: 32x fewer MACs, 3.2x"
    )
    assert "Latency falls less than the MACs" in slower
    assert "Latency" not in ex.say_groups(_groups(32.0, 8.0, 1.0))  # 4x and 32x: as the MACs


def test_the_fastest_way_is_named_a_winner_only_beyond_the_timings_spread():
    def ways(iqr_ms: float) -> str:
        frame = pd.DataFrame(
            {"method": ["conv2d", "matmul"], "median_ms": [0.37, 0.33], "iqr_ms": [iqr_ms, 0.02]}
        )
        return ex.say_fastest("method")(frame)

    assert ways(0.01).endswith(
        "Fastest: matmul (0.330 ms), slowest: conv2d (0.370 ms), 1.1x apart."
    )
    assert ways(0.05).endswith(
        "1.1x apart: less than the spread of their timed calls (IQR), no clear winner."
    )


def test_the_googlenet_variant_costs_more_because_of_its_stem(tmp_path, full_row):
    store = Store(tmp_path / "results.sqlite")
    for model, side, macs, maps in (("googlenet", 96, 200e6, 12), ("googlenet_28", 28, 300e6, 14)):
        layers = [
            {"layer": "0.0", "type": "Conv2d", "output_shape": f"64x{side}x{side}"},
            {"layer": "2.0", "type": "Inception", "output_shape": f"256x{maps}x{maps}"},
        ]
        row = full_row(
            "profile",
            model=model,
            image_size=side,
            batch_size=128,
            params=10**6,
            fwd_macs_per_image=macs,
        )
        store.put("profile", model, {"image_size": side}, row, details={"layers": layers})
    answer = next(e for e in EXERCISES if e.id == "8.4.5.3").answer
    _, _, text = answer(store)
    assert "googlenet_28 at 28 px counts 1.5x the MACs per image of googlenet at 96 px" in text
    assert "shrinks 96 pixels 8-fold, to 12x12 maps" in text and "28 pixels 2-fold" in text


def test_the_batch_size_answer_is_alexnets_and_needs_two_batch_sizes(tmp_path, full_row):
    store = Store(tmp_path / "results.sqlite")
    answer = next(e for e in EXERCISES if e.id == "8.1.5.6").answer

    def trained(batch, accuracy, rate, mib):
        store.put(
            "train",
            "alexnet",
            {"batch_size": batch},
            full_row(
                "train",
                model="alexnet",
                lr=0.01,
                batch_size=batch,
                resize=224,
                techniques="-",
                test_acc=accuracy,
                images_per_s=rate,
                peak_bytes=mib * MIB,
                fwd_macs_per_image=700_000_000,
            )
            | describe(Run("alexnet", batch_size=batch), PRESETS["book"], "ours"),
            details={"history": [{"images_per_s": rate}]},
        )

    trained(128, 0.85, 200.0, 900)  # the preset's run alone: no sweep yet
    assert answer(store) is None
    trained(512, 0.80, 300.0, 3000)
    _, _, text = answer(store)
    assert text.startswith(
        "From batch 128 to 512, training throughput goes from 200 to 300 "
        "images/s (1.5x) and test accuracy from 85.0% to 80.0%"
    )


def test_accuracies_compare_at_equal_work_and_what_is_left_says_its_cost(tmp_path, full_row):
    """8.4.5.1 compares GoogLeNet with and without batch norm under one kind of work: the cpu
    preset's while only GoogLeNet has the book's recipe at CPU scale, then book_cpu's for both;
    until then the page names the missing run, its command and its training time, the images
    of 10 epochs at GoogLeNet's forward MACs per second scaled by the variant's MACs."""
    store = Store(tmp_path / "results.sqlite")
    exercise = next(e for e in EXERCISES if e.id == "8.4.5.1")

    def put(model, preset, macs, images_per_s):
        run = Run(model)
        row = full_row(
            "train",
            model=model,
            batch_size=128,
            resize=32,
            techniques="-",
            test_acc=0.8,
            images_per_s=images_per_s,
            fwd_macs_per_image=macs,
            lr=config(run, PRESETS[preset], "ours")["lr"],
        )
        store.put(
            "train",
            model,
            config(run, PRESETS[preset], "ours"),
            row | describe(run, PRESETS[preset], "ours"),
            details={"history": []},
        )

    put("googlenet", "cpu", 10**8, 500.0)
    put("googlenet_bn", "cpu", 2 * 10**8, 400.0)
    put("googlenet", "book_cpu", 10**8, 300.0)
    frame, _, _ = exercise.answer(store)
    assert list(frame["preset"]) == ["cpu", "cpu"]
    left = left_to_train(store, exercise.experiments, exercise.models)
    minutes = 10 * 60_000 * 2 * 10**8 / (10**8 * 300.0) / 60
    assert left.startswith("*Not trained yet under the book_cpu preset* (1 run;")
    assert f"googlenet_bn at 32 px: about {minutes:,.0f} min (from googlenet)" in left
    assert left.endswith(
        "`python -m bench train --preset book_cpu --experiment book variants --models "
        "googlenet_bn` trains it."
    )
    put("googlenet_bn", "book_cpu", 2 * 10**8, 150.0)
    frame, _, _ = exercise.answer(store)
    assert list(frame["preset"]) == ["book_cpu", "book_cpu"]
    assert left_to_train(store, exercise.experiments, exercise.models) == ""
