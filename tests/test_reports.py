"""Chapter 7's block measurements against their formulas; ``bench compare``; a run killed mid-stage
resumes without measuring again; the exercise page's numbers are the store's."""

import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from functools import partial

import pandas as pd
import pytest
import torch
import torchvision

import archs
from bench.cli import main
from bench.compare import compare
from bench.device import backend_for
from bench.layers import (
    cases,
    conv1x1_ways,
    conv_row,
    corr2d_ways,
    grouped_row,
    pool_row,
    pool_ways,
    shape_row,
    timed_row,
)
from bench.schema import ALLOCATED, RESIDENT
from bench.store import Store


@pytest.mark.parametrize(
    ("c_i", "c_o", "k", "side", "padding", "stride"),
    [(3, 8, 3, 12, 1, 1), (4, 6, 5, 11, 0, 2), (2, 4, 1, 9, 2, 3)],
)
def test_conv_costs_counted_equal_the_formulas(c_i, c_o, k, side, padding, stride):
    row = conv_row(c_i, c_o, k, side, padding, stride, seconds=0.01)
    out = torch.nn.Conv2d(c_i, c_o, k, stride, padding)(torch.zeros(1, c_i, side, side)).shape[-1]
    macs = c_i * c_o * k * k * out * out
    assert row["out_side"] == out
    assert row["fwd_macs_counted"] == row["fwd_macs_formula"] == macs
    assert row["bwd_macs_counted"] == 2 * macs  # input gradient + weight gradient
    assert row["saved_bytes_counted"] == 4 * c_i * side * side  # the input, in fp32
    assert row["weight_bytes_counted"] == 4 * c_o * c_i * k * k
    assert row["fwd_ms"] > 0 and row["fwd_bwd_ms"] > 0
    assert row["fwd_iqr_ms"] >= 0 and row["fwd_bwd_iqr_ms"] >= 0  # each time with its spread


def test_timed_cases_run_on_the_device_their_key_names():
    cpu = torch.device("cpu")
    row = conv_row(2, 4, 3, 8, 1, 1, seconds=0.01, device=cpu)
    assert (row["device"], row["device_name"]) == ("cpu", backend_for(cpu).name)
    keys = {config["case"]: config for _, config, _ in cases(0.01, cpu)}
    assert keys["stride 2"]["device"] == backend_for(cpu).name
    assert "device" not in keys["kernel (3, 5), padding (0, 1), stride (3, 4), 8x8"]  # untimed


def test_shape_and_pool_rows():
    assert shape_row() == {"formula_h": 2, "formula_w": 2, "built_h": 2, "built_w": 2}
    pool = pool_row(channels=3, side=8, k=2)
    assert pool["fwd_flops_formula"] == 3 * 4 * 4 * 4 and pool["fwd_flops_counted"] > 0


def test_each_way_of_a_primitive_is_checked_against_the_first_before_it_is_timed():
    def ways(device, side):
        x = torch.ones(side, device=device)
        return {"first": lambda: 2 * x, "same": lambda: x + x, "other": lambda: 3 * x}

    row = timed_row(ways, "same", seconds=0.01, side=4)
    assert (row["method"], row["side"], row["device"]) == ("same", 4, "cpu")
    assert row["n"] >= 1 and row["median_ms"] > 0 and row["iqr_ms"] >= 0
    with pytest.raises(AssertionError):
        timed_row(ways, "other", seconds=0.01, side=4)


def test_chapter_7_primitives_agree_and_grouped_macs_fall_by_the_groups():
    cpu = torch.device("cpu")
    for ways in (partial(corr2d_ways, side=9), conv1x1_ways, pool_ways):
        (_, first), *others = ways(cpu).items()
        for _, way in others:
            torch.testing.assert_close(way(), first(), rtol=1e-4, atol=1e-4)
    # batch x c_o x (c_i / g) x k x k x output pixels, for 128 -> 128 channels, 3x3, 28x28
    assert [grouped_row(g, seconds=0.01)["macs"] for g in (1, 4)] == [
        8 * 128 * (128 // g) * 3 * 3 * 28 * 28 for g in (1, 4)
    ]
    exercises = {exercise for exercise, config, _ in cases(0.01, cpu) if "device" in config}
    assert exercises == {"7.4.2", "7.4.3", "7.2.x", "7.4.5", "7.4.7", "7.5.3"}


def _speed_row(full_row, images_per_s: float, cv: float, model: str = "lenet") -> dict:
    return full_row(
        "speed", model=model, images_per_s=images_per_s, median_ms=1000 / images_per_s, cv=cv
    )


def _flagged(table: str) -> set[tuple[str, str, str]]:
    """(stage, metric, B) of the flagged rows of a compare table."""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return {(c[0], c[3], c[5]) for c in cells if c[-1] == "CHANGED"}


def test_compare_flags_only_changes_beyond_the_noise(tmp_path, full_row):
    a, b = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    for store, steady, moved, params in (
        (a, 100.0, 100.0, 46_764_746),
        (b, 104.0, 160.0, 46_764_747),
    ):
        store.put("speed", "lenet", {"batch_size": 1}, _speed_row(full_row, steady, 0.05))
        store.put("speed", "lenet", {"batch_size": 8}, _speed_row(full_row, moved, 0.05))
        store.put("profile", "lenet", {"image_size": 28}, full_row("profile", params=params))
    only_b = _speed_row(full_row, 1.0, 0.05, "alexnet")
    b.put("speed", "alexnet", {"batch_size": 1}, only_b)  # only in B: not compared
    table, flagged = compare(a, b)
    # 60% is beyond 3 x the 5% step spread; 4% is not; a counted figure changes by any amount,
    # and shows in full
    assert _flagged(table) == {
        ("speed", "images_per_s", "160"),
        ("speed", "median_ms", "6.25"),
        ("profile", "params", "46,764,747"),
    }
    assert flagged == 3 and "+4.0%" in table and "alexnet" not in table
    changed, count = compare(a, b, changed=True)  # the flagged rows alone
    assert (
        count == 3 and len(changed.splitlines()) == 2 + 3 and _flagged(changed) == _flagged(table)
    )
    assert compare(a, b, stage="profile")[1] == 1
    assert compare(a, b, threshold=20)[1] == 1  # 60% is within 20 x 5%


def test_compare_weighs_a_cuda_peak_exactly_and_never_flags_a_resident_one(tmp_path, full_row):
    a, b = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    for store, allocated, resident in ((a, 100, 100), (b, 101, 200)):  # MiB
        for batch, kind, mib in ((1, ALLOCATED, allocated), (8, RESIDENT, resident)):
            store.put(
                "speed",
                "lenet",
                {"batch_size": batch},
                full_row(
                    "speed",
                    images_per_s=10.0,
                    median_ms=100.0,
                    cv=0.05,
                    peak_bytes=mib * 2**20,
                    memory_kind=kind,
                ),
            )
    table, flagged = compare(a, b)
    # 1% more from the allocator is a change; twice the resident peak has no noise to judge by
    assert _flagged(table) == {("speed", "peak_bytes", "105,906,176")} and flagged == 1
    assert "+100.0%" in table and "unknown" in table


def test_compare_weighs_a_timed_primitive_by_its_spread_and_a_counted_layer_exactly(tmp_path):
    a, b = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    for store, loop_ms, macs in ((a, 45.0, 86_704_128.0), (b, 50.0, 86_704_129.0)):
        store.put(
            "layers",
            "7.2.x",
            {"case": "loop, 64x64"},
            {"method": "loop", "side": 64, "median_ms": loop_ms, "iqr_ms": 2.5, "n": 7},
        )
        store.put("layers", "7.4.3", {"case": "base"}, {"fwd_macs_counted": macs})
    # 50 against 45 ms is 11%, within 3 x the larger IQR / median (2.5 / 45: 5.6%), beyond 1.5 x
    assert _flagged(compare(a, b)[0]) == {("layers", "fwd_macs_counted", "86,704,129")}
    assert ("layers", "median_ms", "50") in _flagged(compare(a, b, threshold=1.5)[0])


@pytest.mark.parametrize(("after", "flagged"), [(0.81, 0), (0.83, 1)])
def test_compare_accuracy_against_the_binomial_error(tmp_path, capsys, full_row, after, flagged):
    a, b = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    a.put("train", "lenet", {"test_per_class": None}, full_row("train", test_acc=0.80))
    b.put("train", "lenet", {"test_per_class": None}, full_row("train", test_acc=after))
    # on 10,000 images the standard error of 80% is 0.4 points: 3 x 0.5% relative
    argv = ["compare", str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")]
    assert main(argv) == 0
    assert f"train: 1 metric compared, {flagged} beyond the noise" in capsys.readouterr().out
    assert main([*argv, "--table"]) == 0
    assert capsys.readouterr().out.count("CHANGED") == flagged
    assert main([*argv, "--table", "--changed"]) == 0
    assert capsys.readouterr().out.count("| train |") == flagged  # no unchanged metric


def test_compare_summarises_per_stage_and_names_the_largest_changes(tmp_path, full_row):
    from bench.compare import differences, summary

    a, b = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    for store, rates in ((a, (100.0, 100.0, 100.0)), (b, (130.0, 250.0, 101.0))):
        for batch, rate in zip((1, 8, 32), rates, strict=True):
            store.put("speed", "lenet", {"batch_size": batch}, _speed_row(full_row, rate, 0.01))
    lines = summary(differences(a, b), largest=1).splitlines()
    # images/s and median ms of each point: 6 metrics, those of batch 1 and 8 beyond 3 x 1 %
    assert lines[0] == "speed: 6 metrics compared, 4 beyond the noise"
    assert lines[2] == "  speed lenet (batch 8) images_per_s: 100 -> 250 (x2.50, noise 1.0%)"
    assert len(lines) == 3


# three runs of lenet_variants: one stored before the kill, at least one left to resume
VARIANTS = ("lenet_modern", "lenet_dropout", "bn_lenet_nobias")


def test_a_run_killed_mid_stage_resumes_without_measuring_again(tmp_path, capsys):
    store_path = tmp_path / "results.sqlite"
    argv = [
        "train",
        "--preset",
        "smoke",
        "--models",
        ",".join(VARIANTS),
        "--experiment",
        "lenet_variants",
        "--store",
        str(store_path),
        "--out",
        str(tmp_path),
    ]
    child = subprocess.Popen(
        [sys.executable, "-m", "bench", *argv],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (store_path.exists() and Store(store_path).rows("train")):
        assert time.monotonic() < deadline and child.poll() is None, "no row before the kill"
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)  # the run and its training child, mid-stage
    child.wait()
    first = Store(store_path).rows("train")
    assert 1 <= len(first) < len(VARIANTS)
    assert main(argv) == 0  # the lock died with the killed run
    printed = capsys.readouterr().out
    rows = Store(store_path).rows("train")
    assert sorted(r["model"] for r in rows) == sorted(VARIANTS)  # each run once
    again = {r["model"]: r["provenance"]["date"] for r in rows}
    assert all(again[r["model"]] == r["provenance"]["date"] for r in first)  # not re-measured
    trained = re.findall(r"test accuracy \d\.\d{3}", printed)  # a line per run as it ends
    assert len(trained) == len(VARIANTS) - len(first)
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize(
    ("memory_kind", "goal", "clock"),
    [
        (
            RESIDENT,
            "goal: 94% within 300 s",
            "wall clock (s, measured: training and evaluation; log)",
        ),
        (ALLOCATED, "goal: 94% within 5 s", "training time (s, measured: without evaluation"),
    ],
)
def test_the_fast_recipes_goal_is_read_on_its_devices_clock(
    tmp_path, full_row, memory_kind, goal, clock
):
    from bench.render.curves import fast_recipe

    store = Store(tmp_path / "r.sqlite")
    row = full_row(
        "train",
        model="resnet9_28",
        epochs=2,
        fast_recipe=True,
        techniques="augment",
        seed=0,
        lr=0.4,
        batch_size=500,
        preset="book",
        memory_kind=memory_kind,
        device_name="a device",
    )
    history = [{"train_s": 2.0 * e, "wall_s": 3.0 * e, "test_acc": 0.9 + 0.02 * e} for e in (1, 2)]
    store.put("train", "resnet9_28", {"epochs": 2}, row, details={"history": history})
    svg = fast_recipe(store, tmp_path)[1].read_text()
    assert goal in svg and clock in svg


def test_a_table_column_that_is_no_stored_field_raises():
    from bench.render.format import fmt_text, markdown

    frame = pd.DataFrame([{"model": "lenet"}])
    # a stored field that no row of this table has: dashes (a failure's note, here)
    table = markdown(frame, [("model", "model", fmt_text), ("note", "note", fmt_text)])
    assert table.splitlines()[-1] == "| lenet | - |"
    with pytest.raises(KeyError, match="no column tricks in the table or in any stored row"):
        markdown(frame, [("tricks", "techniques", fmt_text)])


def test_a_run_with_a_network_from_timm_renders_without_timm(tmp_path, full_row):
    """The index reads an external network's input side from its rows: no lookup in a package
    the rendering machine may lack."""
    from bench.render.headline import headline

    store = Store(tmp_path / "r.sqlite")
    store.put(
        "profile",
        "timm:tiny",
        {"batch_size": 128},
        full_row(
            "profile",
            model="timm:tiny",
            image_size=160,
            batch_size=128,
            params=5,
            fwd_macs_per_image=7.0,
            train_bytes_est_sgd=2**20,
        ),
    )
    (row,) = headline(store).to_dict("records")
    assert (row["model"], row["input"], row["family"], row["params"]) == (
        "timm:tiny",
        "160 px",
        "timm",
        5,
    )


def test_each_fast_recipe_gets_its_own_median_and_curves(tmp_path, full_row):
    from bench.render.curves import fast_recipe, fast_recipe_figure
    from bench.render.headline import headline

    store = Store(tmp_path / "r.sqlite")
    runs = [(7, 0.2, True, "augment", s, a) for s, a in ((0, 0.931), (1, 0.936), (2, 0.934))]
    runs += [(5, 0.1, True, "augment+bf16", s, a) for s, a in ((0, 0.94), (1, 0.938))]
    runs += [(4, 0.1, True, "augment+early_sides", 0, 0.915)]  # a recipe of one seed
    runs += [(5, 0.1, False, "-", 0, 0.80)]  # the book's loop on the same schedule
    for epochs, lr, fast, techniques, seed, accuracy in runs:
        row = full_row(
            "train",
            model="resnet9_28",
            epochs=epochs,
            lr=lr,
            batch_size=128,
            fast_recipe=fast,
            techniques=techniques,
            seed=seed,
            test_acc=accuracy,
            preset="book",
            work=f"{epochs} epochs over all 60,000 images",
            test_set="all 10,000",
            device_name="cpu",
            images_per_s=900.0,
            autocast="off",
        )
        history = [
            {"wall_s": 60.0 * e, "test_acc": accuracy - 0.01 * (epochs - e), "images_per_s": 900.0}
            for e in range(1, epochs + 1)
        ]
        store.put(
            "train",
            "resnet9_28",
            {"epochs": epochs, "seed": seed, "fast": fast, "test_per_class": None, "resize": None},
            row,
            details={"history": history},
        )
    table = headline(store)
    fast_rows = table[table["kind"] == "fast"]
    # a recipe that asks for bf16 says whether autocast ran (off in these rows)
    (one_seed,) = fast_rows[fast_rows["model"].str.contains("4 epochs")]["accuracy"]
    assert one_seed.startswith("fast recipe: augment+early_sides, lr 0.1")
    (with_bf16,) = fast_rows[fast_rows["model"].str.contains("5 epochs")]["accuracy"]
    assert with_bf16.startswith("fast recipe: augment+bf16 (autocast off), lr 0.1")
    assert sorted(zip(fast_rows["model"], fast_rows["test_acc"], strict=True)) == [
        ("resnet9_28, fast recipe, 4 epochs of batch 128 at lr 0.1 (1 seed)", 0.915),
        ("resnet9_28, fast recipe, 5 epochs of batch 128 at lr 0.1 (2 seeds, median)", 0.938),
        ("resnet9_28, fast recipe, 7 epochs of batch 128 at lr 0.2 (3 seeds, median)", 0.934),
    ]
    written = fast_recipe(store, tmp_path / "plots")
    assert [p.name for p in written] == ["fast_recipe.png", "fast_recipe.svg"]
    svg = written[1].read_text()  # a legend entry per recipe, its seeds counted
    assert svg.count("resnet9_28, 5 epochs of batch 128 at lr 0.1 (2 seeds)") == 1
    assert svg.count("resnet9_28, the book's loop (1 seed)") == 1
    assert_legible(fast_recipe_figure(store))
    # the ablation compares the book's loop with the recipe of its schedule, batch and rate
    from bench.render.training import write_train

    write_train(store, tmp_path)
    table = (tmp_path / "train.md").read_text().split("What each technique")[1]
    assert (
        "| resnet9_28 (book preset, 5 epochs, batch 128, lr 0.1) | none (the book's loop) | 1 | 80.0% |"
        in table
    )


def test_the_speed_page_lists_a_batch_skipped_under_a_low_step_limit_only_until_measured(
    tmp_path, full_row
):
    """A later run with a higher step limit measures what the first skipped: the page shows
    the measurement, not both; the CSV keeps every stored row."""
    from bench.render.stages import write_speed

    store = Store(tmp_path / "r.sqlite")
    for limit, batch, status in (
        (1.0, 1, "ok"),
        (1.0, 16, "skipped"),
        (1.0, 128, "skipped"),
        (10.0, 16, "ok"),
    ):
        store.put(
            "speed",
            "lenet",
            {"mode": "train", "batch_size": batch, "max_step_s": limit},
            full_row(
                "speed",
                mode="train",
                batch_size=batch,
                image_size=28,
                device_name="CPU X",
                precision="fp32",
                channels_last=False,
                compiled=False,
                time_cap_s=0.5,
                max_step_s=limit,
                memory_kind=RESIDENT,
                peak_source="x",
                status=status,
            ),
            status=status,
        )
    write_speed(store, tmp_path)
    page = (tmp_path / "speed.md").read_text()
    lines = [line.split(" | ") for line in page.splitlines() if line.startswith("| lenet")]
    listed = [[cells[2], cells[3], cells[-2]] for cells in lines]  # batch, status, step limit
    assert listed == [["1", "ok", "1.0"], ["16", "ok", "10.0"], ["128", "skipped", "1.0"]]
    assert len(pd.read_csv(tmp_path / "speed.csv")) == 4


def test_a_percentage_that_rounds_to_zero_has_no_sign():
    from bench.render.format import fmt_percent

    assert [fmt_percent(v) for v in (-4e-4, -5e-4, 0.0, 0.123, None)] == [
        "0.0%",
        "-0.1%",
        "0.0%",
        "12.3%",
        "-",
    ]


def test_the_speed_page_gives_the_peak_each_run_divided_by(tmp_path, full_row):
    """A CPU's peak is its measured matmul where that beats the instruction-set figure, so two
    runs' rows in one table divide by different peaks: the protocol names each, with its value
    or its range over the runs."""
    from bench.render.stages import write_speed

    store = Store(tmp_path / "r.sqlite")
    for batch, peak, source in (
        (1, 157e9, "2 cores x 8 lanes"),
        (16, 178.4e9, "the matmul"),
        (128, 185.2e9, "the matmul"),
    ):
        store.put(
            "speed",
            "lenet",
            {"mode": "infer", "batch_size": batch},
            full_row(
                "speed",
                mode="infer",
                batch_size=batch,
                image_size=28,
                device_name="CPU X",
                precision="fp32",
                channels_last=False,
                compiled=False,
                time_cap_s=0.5,
                memory_kind=RESIDENT,
                peak_flops_per_s=peak,
                peak_source=source,
            ),
        )
    write_speed(store, tmp_path)
    assert (
        "over the peak of the run that timed the row (2 cores x 8 lanes: 157 GFLOP/s; "
        "the matmul: 178 to 185 GFLOP/s)"
    ) in (tmp_path / "speed.md").read_text()


def test_a_training_runs_own_throughput_carries_its_spread_over_epochs(tmp_path, full_row):
    """Where no speed sweep timed a run's point, the headline reads the run's images/s with
    the coefficient of variation of its epochs' images/s; the training page has it too."""
    from bench.render.headline import headline
    from bench.render.training import write_train

    epochs = [800.0, 1000.0, 1100.0]
    cv = statistics.stdev(epochs) / statistics.mean(epochs)
    store = Store(tmp_path / "r.sqlite")
    store.put(
        "train",
        "lenet",
        {"test_per_class": None, "resize": None},
        full_row(
            "train",
            preset="book",
            batch_size=128,
            resize=None,
            techniques="-",
            technique_settings={},
            device_name="CPU X",
            lr=0.1,
            images_per_s=950.0,
            test_acc=0.9,
            changes=[],
            fast_recipe=False,
            epochs=None,
            seed=0,
            work="3 epochs",
        ),
        details={
            "history": [
                {"images_per_s": v, "train_s": i + 1.0, "wall_s": i + 1.5, "test_acc": 0.9}
                for i, v in enumerate(epochs)
            ]
        },
    )
    table = headline(store).set_index("model")
    assert table.loc["lenet", "train_speed"] == f"950 (training run, CV {cv:.0%} over 3 epochs)"
    write_train(store, tmp_path)
    assert pd.read_csv(tmp_path / "train.csv")["images_per_s_cv"][0] == pytest.approx(cv)


def test_a_run_tested_at_its_end_alone_shows_its_times_to_accuracy_as_bounds(tmp_path, full_row):
    """A run evaluated after every epoch reached 80 % at the first evaluation that shows it; a
    run evaluated after its last epoch alone may have reached it anywhere before: its time is
    marked ≤ on the training page and in the headline, and the CSV keeps the number."""
    from bench.render.index import write_index
    from bench.render.training import write_train

    store = Store(tmp_path / "r.sqlite")
    for model, at_end, time_to_80 in (("lenet", False, 12.5), ("bn_lenet", True, 48.25)):
        row = full_row(
            "train",
            model=model,
            preset="book",
            batch_size=128,
            resize=None,
            lr=0.1,
            techniques="eval_at_end" if at_end else "-",
            test_acc=0.85,
            technique_settings={"eval_at_end": True} if at_end else None,
            changes=["eval_at_end"] if at_end else [],
            fast_recipe=at_end,
            epochs=4 if at_end else None,
            time_to_80_s=time_to_80,
            time_to_85_s=time_to_80,
            work="4 epochs",
            seed=0,
            images_per_s=900.0,
        )
        store.put(
            "train",
            model,
            {"test_per_class": None, "resize": None},
            row,
            details={
                "history": [
                    {
                        "images_per_s": 900.0,
                        "train_s": time_to_80,
                        "wall_s": time_to_80,
                        "test_acc": 0.85,
                    }
                ]
            },
        )
    write_train(store, tmp_path)
    write_index(store, tmp_path, "book")

    def cells(page: str, label: str) -> dict[str, str]:
        """The cells of ``label``'s row in the first of the page's tables of runs that has it."""
        lines = [*(tmp_path / page).read_text().splitlines(), ""]
        tables = [
            lines[start : lines.index("", start)]
            for start, line in enumerate(lines)
            if line.startswith(("| model |", "| run |"))
        ]
        header, row = next(
            (table[0], line)
            for table in tables
            for line in table
            if line.startswith(f"| {label} |")
        )
        return dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | "), strict=True))

    for model, label, shown in (
        ("lenet", "lenet", "12.5"),
        ("bn_lenet", "bn_lenet, fast recipe, 4 epochs of batch 128 at lr 0.1 (1 seed)", "≤ 48.2"),
    ):
        train = cells("train.md", model)
        assert [train[f"to {p}% (s)"] for p in (80, 85, 90)] == [shown, shown, "-"]
        assert cells("index.md", label)["to 80% (s)"] == shown
    assert pd.read_csv(tmp_path / "train.csv")["time_to_80_s"].tolist() == [12.5, 48.25]


def test_the_index_says_which_heap_policy_each_measured_row_ran_under(tmp_path):
    """Rows measured under the policy name it (their provenance); rows from before it was
    recorded ran under malloc's own thresholds, and the index counts each."""
    from bench.device import keep_freed_memory
    from bench.render.index import UNRECORDED_HEAP, write_index

    store = Store(tmp_path / "r.sqlite")
    for case in ("a", "b", "c"):
        store.put("layers", "7.4.5", {"case": case}, {"median_ms": 1.0, "iqr_ms": 0.1})
    with store._db:  # one row as an earlier version stored it: no heap in its provenance
        store._db.execute(
            "UPDATE results SET provenance = json_remove(provenance, '$.heap') WHERE config = ?",
            ('{"case": "a"}',),
        )
    write_index(store, tmp_path, None)
    assert (
        f"Heap of the timings and memory readings: {keep_freed_memory()}: 2 rows; "
        f"{UNRECORDED_HEAP}: 1 row."
    ) in (tmp_path / "index.md").read_text()


def test_the_memory_page_sets_the_allocator_beside_the_estimate_and_the_process(tmp_path):
    """The speed sweep's memory growth includes the input batch its step makes: for a network
    that is nearly all input (a pooling and a 3x10 linear layer over 512-pixel images), the
    allocator reads the 192 MiB input and the estimate within a percent of it, and the
    process's growth lies above the allocator's growth by a sliver of the input, not the input
    itself. The page names the op at the allocator's peak."""
    from bench.allocator import step_peak
    from bench.flops import profile
    from bench.render.memory import write_memory
    from bench.timing import speed

    model = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 10)
    )
    batch, shape = 64, {"image_size": 512, "in_channels": 3}
    store = Store(tmp_path / "r.sqlite")
    counted = profile(model, batch_size=batch, **shape).summary.iloc[0].to_dict()
    store.put("profile", "Sequential", {"batch_size": batch}, counted)
    (timed,) = speed(
        model,
        batch_sizes=(batch,),
        modes=("train",),
        device="cpu",
        time_cap_s=0,
        peak=(1.0, "none"),
        **shape,
    ).to_dict("records")
    store.put("speed", "Sequential", {"mode": "train", "batch_size": batch}, timed)
    x = torch.rand(batch, 3, 512, 512)
    train, infer = (step_peak(model, x, mode) for mode in (True, False))
    allocator = {
        "model": "Sequential",
        "image_size": 512,
        "in_channels": 3,
        "batch_size": batch,
        "status": "ok",
        "note": "",
        "device_name": "CPU X",
        **{
            f"{mode}_{field}": value
            for mode, peak in (("train", train), ("infer", infer))
            for field, value in (("bytes", peak.bytes), ("peak_op", peak.op))
        },
        "train_peak_op_bytes": train.op_bytes,
        "infer_peak_op_bytes": infer.op_bytes,
    }
    store.put("memory", "Sequential", {"batch_size": batch}, allocator)
    too_big = {**allocator, "batch_size": 4096, "status": "skipped", "note": "over half"}
    store.put("memory", "Sequential", {"batch_size": 4096}, too_big, status="skipped")
    write_memory(store, tmp_path)
    page = (tmp_path / "memory.md").read_text()
    (line,) = [
        cells.split(" | ")
        for cells in page.splitlines()
        if cells.startswith("| Sequential | 512 | 64 |")
    ]
    allocated, gap, overhead = line[4], line[5], line[10]
    assert float(allocated.replace(",", "")) >= 192  # the input, and the few small tensors
    assert abs(float(gap.rstrip("%"))) < 1
    assert abs(float(overhead.replace(",", ""))) < 192 / 10  # a process's noise, not the input
    assert line[11].startswith(f"{train.op} holding ")
    assert "(`python -m bench memory`, CPU X)" in page
    assert "Not read from the allocator:\n\n- Sequential at 512 px, batch 4096: over half\n" in page


def test_a_store_of_failures_alone_renders_every_page_and_lists_them(tmp_path):
    from bench import runs

    store = Store(tmp_path / "results.sqlite")
    failure = {"model": "lenet", "batch_size": 1, "note": "RuntimeError: no C++ compiler"}
    store.put("speed", "lenet", {"mode": "infer", "batch_size": 1}, failure, status="error")
    store.put("onnx", "lenet", {"batch_size": 1}, failure, status="timeout")
    runs.render(store, tmp_path)
    assert (
        "| lenet | " in (tmp_path / "speed" / "speed.md").read_text().split("without a result")[1]
    )
    assert "| lenet | 1 | timeout |" in (tmp_path / "onnx" / "onnx.md").read_text()
    assert (tmp_path / "index.md").exists()


def test_the_headlines_best_throughput_reads_each_point_once_and_gives_its_spread(
    tmp_path, full_row
):
    """A point timed again by a run with fewer steps keeps its better-sampled figure; the best
    point names its spread, or that one step was timed."""
    from bench.render.headline import headline

    store = Store(tmp_path / "r.sqlite")

    def timed(batch, limit, n, images_per_s, cv):
        store.put(
            "speed",
            "lenet",
            {"mode": "infer", "batch_size": batch, "max_step_s": limit},
            full_row(
                "speed",
                mode="infer",
                batch_size=batch,
                image_size=28,
                device_name="CPU X",
                precision="fp32",
                channels_last=False,
                compiled=False,
                n=n,
                images_per_s=images_per_s,
                cv=cv,
            ),
        )

    timed(128, 1.0, 20, 1_000.0, 0.05)
    timed(128, 30.0, 1, 1_200.0, float("nan"))  # one step, luckier
    assert headline(store).set_index("model").loc["lenet", "infer_best"] == (
        "1,000 (128, fp32, CV 5%)"
    )
    timed(256, 30.0, 1, 1_500.0, float("nan"))
    assert headline(store).set_index("model").loc["lenet", "infer_best"] == (
        "1,500 (256, fp32, 1 timed step)"
    )


def test_pages_keep_apart_the_setups_a_gpu_run_times(tmp_path, full_row):
    """A GPU run times each network eager in fp32 and in bf16, eager and compiled, and measures
    a roof per precision: every page says which setup a number comes from, and the pages that
    compare with the book read its own (eager fp32)."""
    from bench.render.figure import save
    from bench.render.headline import headline
    from bench.render.plots import _speed_frame, per_model_lines, roofline_figure, write_plots

    store = Store(tmp_path / "r.sqlite")
    setups = [
        ("fp32", False, False, 1_000.0),
        ("fp32", False, True, 2_000.0),
        ("bf16", True, True, 3_000.0),
    ]
    for precision, channels_last, compiled, speed in setups:
        for mode, factor in (("train", 1), ("infer", 5)):
            key = {"mode": mode, "precision": precision, "compile": compiled}
            store.put(
                "speed",
                "lenet",
                key,
                full_row(
                    "speed",
                    mode=mode,
                    batch_size=128,
                    image_size=28,
                    device_name="GPU X",
                    precision=precision,
                    channels_last=channels_last,
                    compiled=compiled,
                    images_per_s=factor * speed,
                    cv=0.05,
                    n=10,
                    peak_bytes=2**30,
                    achieved_flops_per_s=factor * speed * 1e6,
                    memory_kind=ALLOCATED,
                ),
            )
    for precision in ("fp32", "bf16"):  # bf16's roof stored last
        store.put(
            "machine",
            "GPU X",
            {"precision": precision},
            {
                "peak_flops_per_s": 1e14,
                "peak_source": f"datasheet: X {precision}",
                "achievable_flops_per_s": 5e13,
                "achievable_source": "measured",
                "bandwidth_bytes_per_s": 1e12,
                "bandwidth_source": "measured",
            },
        )
    store.put(
        "profile",
        "lenet",
        {"batch_size": 128},
        full_row(
            "profile",
            image_size=28,
            batch_size=128,
            params=5,
            fwd_macs_per_image=7.0,
            train_bytes_est_sgd=2**20,
            fwd_flops_per_byte=10.0,
        ),
    )
    for techniques, on, autocast in (
        ("-", {}, "off"),
        (
            "bf16+channels_last+compile",
            {"bf16": True, "channels_last": True, "compile": "reduce-overhead"},
            "bf16",
        ),
    ):
        store.put(
            "train",
            "lenet",
            {"techniques": techniques, "test_per_class": None},
            full_row(
                "train",
                preset="book",
                batch_size=128,
                resize=None,
                techniques=techniques,
                technique_settings=on,
                autocast=autocast,
                device_name="GPU X",
                lr=0.1,
                images_per_s=900.0,
                test_acc=0.9,
                changes=[] if on == {} else ["techniques"],
                fast_recipe=bool(on),
                epochs=10,
                seed=0,
                work="10 epochs",
            ),
            details={"history": [{"train_s": 9.0, "wall_s": 10.0, "test_acc": 0.9}]},
        )
    table = headline(store).set_index("model")
    assert table.loc["lenet", "infer_best"] == (
        "15,000 (128, bf16, channels_last, torch.compile, CV 5%)"
    )
    # the book's loop runs eager fp32: the sweep's eager fp32 point, not the compiled one
    assert table.loc["lenet", "train_speed"] == "1,000 (speed sweep, fp32, CV 5%)"
    (fast,) = table[table["kind"] == "fast"]["train_speed"]
    # compiled in a mode of its own: its own figure, from one evaluation point
    assert fast == "900 (training run, timed as a whole)"
    roof = roofline_figure(store)
    assert_legible(roof)
    svg = save(roof, tmp_path, "roofline")[1].read_text()
    assert "datasheet: X fp32" in svg and "X bf16" not in svg
    assert svg.count("lenet (28 px)") == 1  # the eager fp32 point alone
    write_plots(store, tmp_path, "book")
    assert_legible(per_model_lines(_speed_frame(store), "batch_size", "images_per_s", "", "", ""))
    svg = (tmp_path / "throughput_vs_batch.svg").read_text()
    for setup in ("fp32", "fp32, torch.compile", "bf16, channels_last, torch.compile"):
        assert f"inference, GPU X, {setup}" in svg and f"training, GPU X, {setup}" in svg


def test_book_recipes_at_chance_get_their_probes_and_smallest_lr_fix(tmp_path, full_row):
    """A book_cpu run whose training loss sits near ln 10 for two epochs or more is
    listed on the training page with the probes of its network. One that never left chance
    keeps its headline row, and the headline and the findings add, labelled, the book_cpu run
    that changes the learning rate alone and learns, the one closest to the book's rate; one
    that learned late gets no such row, and a run that learned early no section. A probe with He
    initialization at the book's rate is listed with the rate probes and said apart from them.
    The findings read book-recipe runs alone, never a toy preset's."""
    from bench.render.findings import write_findings
    from bench.render.headline import headline
    from bench.render.training import write_train

    store = Store(tmp_path / "r.sqlite")
    book_lr = archs.spec("vgg11_small").recipe.lr
    chance, learning = math.log(10), 1.0
    runs = [  # preset, lr factor, training loss at each epoch, test accuracy
        ("book_cpu", 1, [chance - 0.001] * 4, 0.21),
        ("probe", 1, [chance - 0.002] * 2, 0.10),
        ("probe", 3, [chance, 0.9], 0.66),
        ("probe", 10, [0.8, 0.5], 0.81),
        ("book_cpu", 10, [0.6, 0.4, 0.3, 0.2], 0.90),
        ("book_cpu", 3, [chance, 0.6, 0.4, 0.3], 0.88),
    ]

    def put(model, preset, lr, changes, losses, accuracy, resize, he=False):
        row = full_row(
            "train",
            model=model,
            preset=preset,
            lr=lr,
            batch_size=128,
            resize=resize,
            train_loss=losses[-1],
            test_acc=accuracy,
            changes=changes,
            fast_recipe=False,
            seed=0,
            techniques="he_init" if he else "-",
            technique_settings={"he_init": True} if he else {},
            images_per_s=500.0,
            work=f"{len(losses)} epochs",
        )
        key = {"name": preset, "lr": lr, "resize": resize, "test_per_class": None, "he": he}
        history = [{"train_loss": loss, "images_per_s": 500.0} for loss in losses]
        store.put("train", model, key, row, details={"history": history})

    for preset, factor, losses, accuracy in runs:
        changes = [] if factor == 1 else ["lr"]
        put("vgg11_small", preset, book_lr * factor, changes, losses, accuracy, 32)
    put("googlenet", "book_cpu", 0.01, [], [chance, chance, learning, 0.7], 0.76, 32)
    put("googlenet", "probe", 0.01, ["techniques"], [learning, 0.8], 0.71, 32, he=True)
    put("googlenet", "probe", 0.03, ["lr"], [chance, chance], 0.27, 32)
    put("lenet", "book_cpu", 0.1, [], [chance, learning, 0.5, 0.4], 0.8, None)
    write_train(store, tmp_path)
    page = (tmp_path / "train.md").read_text()
    section = page.split("## Book recipes slow to leave chance")[1]
    assert [line for line in section.splitlines() if line.startswith("### ")] == [
        "### vgg11_small under book_cpu",  # in the book's order
        "### googlenet under book_cpu",
    ]
    vgg, googlenet = section.split("### googlenet")
    assert "sat at chance for 2 of 4 epochs" in googlenet
    assert "It learned late: its loss left chance in epoch 3, and no run stored" in googlenet
    assert (
        "With He initialization in place of the book's Xavier, at the same rate, its loss left "
        "chance in epoch 1 (71.0% after 2 epochs, the probe preset)."
    ) in googlenet
    assert "those with He initialization whether" in googlenet
    assert "He initialization" not in vgg
    inits = [line.split(" | ")[3] for line in googlenet.splitlines() if line.startswith("| goo")]
    assert inits == ["Xavier (book)", "He", "Xavier (book)"]  # probes first, the rates, then He
    rows = [line for line in vgg.splitlines() if line.startswith("| vgg11_small |")]
    assert len(rows) == len(runs)  # the stuck run, its three probes and both fixes
    assert [row.split(" | ")[4:6] for row in rows] == [
        ["1", "2 of 2"],
        ["3", "1 of 2"],
        ["10", "0 of 2"],
        ["1", "4 of 4"],
        ["3", "1 of 4"],
        ["10", "0 of 4"],
    ]
    assert f"lr {book_lr * 3:g} (3 times the book's), 88.0% under book_cpu" in vgg
    table = headline(store).set_index("model")
    assert table.loc["vgg11_small", "test_acc"] == 0.21
    label = f"vgg11_small, lr {book_lr * 3:g} (the book's lr stays at chance at 32 px)"
    assert table.loc[label, "test_acc"] == 0.88
    assert not any(name.startswith(("lenet,", "googlenet,")) for name in table.index)
    put("alexnet", "cpu", 0.001, [], [1.0, 0.8], 0.6, 65)  # toy work: not what it buys
    write_findings(store, tmp_path)
    page = (tmp_path / "findings.md").read_text().splitlines()
    bought = next(line for line in page if "buy on Fashion-MNIST" in line)
    assert "book_cpu preset: lenet 80.0% (28 px); bn_lenet not trained yet;" in bought
    assert "alexnet not trained yet" in bought
    fix = f"vgg11_small 21.0% (32 px), at chance; at lr {book_lr * 3:g} instead of {book_lr:g}"
    assert f"{fix}: 88.0%;" in bought
    assert "googlenet 76.0% (32 px);" in bought  # it learned, late: no fix


def test_findings_set_the_books_claims_beside_the_counts_and_open_the_index(tmp_path):
    """AlexNet's two hidden layers (6400x4096 and 4096x4096 weights with their biases) and
    VGG-11's first fully connected layer (25088x4096), by formula, in MiB of fp32; the claims
    whose networks are not profiled yet are counted, and the index links the page first."""
    from bench.flops.profile import profile_job
    from bench.render.findings import write_findings
    from bench.render.index import write_index

    store = Store(tmp_path / "r.sqlite")
    for name in ("alexnet", "vgg11"):
        config = {"image_size": 224, "batch_size": 128, "in_channels": 1}
        summary, layers, ops = profile_job(name, config)
        store.put("profile", name, config, summary, details={"layers": layers, "ops": ops})
    write_findings(store, tmp_path)
    page = (tmp_path / "findings.md").read_text()
    alexnet = 6400 * 4096 + 4096 + 4096 * 4096 + 4096
    assert f"{alexnet / 1e6:,.1f} M parameters: {4 * alexnet / 2**20:,.1f} MiB" in page
    assert f"= {2 * (6400 + 4096) * 4096 / 1e6:,.1f} MFLOPs per image" in page
    vgg = 512 * 7 * 7 * 4096 + 4096
    assert (
        f"{vgg / 1e6:,.1f} M parameters: {4 * vgg / 2**20:,.1f} MiB ({4 * vgg / 1e6:,.1f} MB)"
        in page
    )
    assert "3 more claims wait for `python -m bench profile`" in page
    write_index(store, tmp_path, None)
    links = [
        line for line in (tmp_path / "index.md").read_text().splitlines() if line.startswith("- [")
    ]
    assert links[0].startswith("- [findings.md](findings.md)")


def test_findings_say_whether_our_counts_are_torchvisions(tmp_path):
    """The first finding: the networks torchvision also builds, counted as it builds them,
    equal to what it publishes or named where they differ; peers.md tables them."""
    from bench.peers import as_torchvision_publishes
    from bench.render.findings import write_findings
    from bench.render.peers import write_peers
    from bench.schema import OP_KINDS

    store = Store(tmp_path / "r.sqlite")
    ours = {"counter": "cnnbench", "macs": 1.0, "by_kind": dict.fromkeys(OP_KINDS, 0.0)}
    for name, extra in (("vgg11", 0), ("regnetx_400mf", 1)):
        reference = as_torchvision_publishes(name)
        reference["params"] += extra  # one that differs by a parameter
        backward = dict.fromkeys(("cnnbench", "FlopCounterMode", "FlopCounterMode, corrected"), 0)
        row = {"model": name, "image_size": 224, "params": 0, "backward_macs": backward}
        row |= {"counters": [ours | {"note": ""}], "torchinfo_memory_bytes": None}
        store.put("peers", name, {"image_size": 224}, row | {"torchvision": reference})
    write_findings(store, tmp_path)
    line = next(
        line
        for line in (tmp_path / "findings.md").read_text().splitlines()
        if "torchvision" in line
    )
    published = torchvision.models.VGG11_Weights.DEFAULT.meta
    assert "1 of 2 equal to torchvision's published parameters and forward MACs" in line
    assert "regnetx_400mf differ" in line
    assert (
        f"vgg11: {published['num_params']:,} parameters and {published['_ops']:.3f} G MACs" in line
    )
    write_peers(store, tmp_path)
    size = f"{published['num_params']:,}"
    assert (
        f"| vgg11 | tv:vgg11 | {size} | {size} | {published['_ops']:.3f} |"
        in (tmp_path / "peers.md").read_text()
    )


def test_findings_set_the_init_probes_beside_the_book_recipe(tmp_path, full_row):
    """The runs with He initialization at the book recipe's rate and side stand beside the
    book's run, one phrase a network; one at another rate is not read as that comparison."""
    from bench.render.findings import render

    store = Store(tmp_path / "r.sqlite")

    def put(preset, acc, lr=0.05, he=False, epochs=10):
        row = full_row(
            "train",
            model="nin",
            preset=preset,
            lr=lr,
            resize=67,
            test_acc=acc,
            changes=["techniques"] if he else [],
            technique_settings={"he_init": True} if he else {},
            work=f"{epochs} epochs over all 60,000 images",
        )
        store.put("train", "nin", {"name": preset, "lr": lr, "he": he}, row)

    put("book_cpu", 0.695)
    put("probe", 0.27, lr=0.15, epochs=2)
    assert "He initialization" not in render(store)
    assert "1 more claim waits for `python -m bench train --experiment init_probes" in render(store)
    put("probe", 0.718, he=True, epochs=2)
    put("probe", 0.5, lr=0.15, he=True, epochs=2)
    put("book_cpu", 0.885, he=True)
    (line,) = [line for line in render(store).splitlines() if "He initialization" in line]
    assert (
        "nin 71.8% after 2 epochs over all 60,000 images (probe preset), 88.5% after 10 epochs "
        "over all 60,000 images (book_cpu preset); with Xavier, 69.5% after 10 epochs over all "
        "60,000 images |" in line
    )
    assert "50.0%" not in line


def test_a_network_without_accuracy_says_why():
    """The command that trains it under the folder's book preset, from the first experiment
    with its book recipe; or, for a network no experiment trains, that it is counted only."""
    from bench.recipes import EXPERIMENTS, Run
    from bench.render.exercises.left import untrained

    assert Run("nin") in EXPERIMENTS["book"] and Run("googlenet_bn") in EXPERIMENTS["variants"]
    assert untrained("nin", "book_cpu") == (
        "not trained yet: `python -m bench train --preset book_cpu --experiment book --models nin`"
    )
    assert "--experiment variants --models googlenet_bn" in untrained("googlenet_bn", "book")
    assert not any(r.model == "vgg16" for runs in EXPERIMENTS.values() for r in runs)
    assert untrained("vgg16", "book") == "counted only: no experiment trains it"


def test_the_index_tables_hold_one_number_a_cell_under_short_headers(tmp_path, full_row):
    """What each network costs and what it buys: headers of at most six words, every numeric
    cell one number (a bound marked ≤), and every empty cell a footnote mark whose note the
    page gives."""
    from bench.flops.profile import profile_job
    from bench.render.index import write_index

    store = Store(tmp_path / "r.sqlite")
    config = {"image_size": 28, "batch_size": 128, "in_channels": 1}
    summary, layers, ops = profile_job("lenet", config)
    store.put("profile", "lenet", config, summary, details={"layers": layers, "ops": ops})
    row = full_row(
        "train",
        preset="book",
        lr=0.1,
        batch_size=128,
        resize=None,
        test_acc=0.72,
        techniques="-",
        changes=[],
        fast_recipe=False,
        work="10 epochs over all 60,000 images",
        images_per_s=9000.0,
        train_loss=0.7,
        fwd_macs_per_image=summary["fwd_macs_per_image"],
    )
    key = {"name": "book", "epochs": 10, "train_per_class": None, "test_per_class": None}
    history = [{"train_loss": loss, "images_per_s": 9000.0 + loss} for loss in (0.9, 0.7)]
    store.put("train", "lenet", key, row, details={"history": history})
    write_index(store, tmp_path, None)
    page = (tmp_path / "index.md").read_text()
    lines = page.splitlines()
    tables = [i for i, line in enumerate(lines) if line.startswith(("| network |", "| run |"))]
    assert len(tables) == 2  # what it costs, what the book's recipe bought
    number = re.compile(r"(≤ )?-?[\d,]+(\.\d+)?%?")
    marks = set()
    for start in tables:
        header, align, body = lines[start], lines[start + 1], lines[start + 2]
        headers = header.strip("| ").split(" | ")
        assert max(len(h.split()) for h in headers) <= 6, headers
        numeric = [a.strip() == "---:" for a in align.strip("|").split("|")]
        for cell, is_number in zip(body.strip("| ").split(" | "), numeric, strict=True):
            if is_number and not number.fullmatch(cell):
                assert cell in "¹²³⁴", cell  # an empty cell: its footnote's mark
                marks.add(cell)
    assert marks == {"²", "⁴"}  # never timed at its input; never reached 80 %
    assert all(f"\n{mark} " in page for mark in marks)


def test_the_accuracy_figures_label_every_point_legibly(tmp_path, full_row):
    """Ten runs of nearly one cost and accuracy: each point gets its name beside it, inside
    the axes, no two names overlapping, and a legend of at most eight entries (the kinds of
    run and the reference lines), in both accuracy figures; parameters are the trained
    build's."""
    from bench.render.headline import headline
    from bench.render.plots import ACCURACY_FIGURES, accuracy_figure

    store = Store(tmp_path / "r.sqlite")
    names = ["lenet", "lenet_modern", "lenet_dropout", "lenet_28", "bn_lenet"]
    names += ["bn_lenet_nobias", "bn_lenet_convs", "vgg_28", "resnet9_28", "densenet"]
    for i, name in enumerate(names):
        row = full_row(
            "train",
            model=name,
            preset="book",
            lr=0.1,
            batch_size=128,
            resize=None,
            test_acc=0.85 + i / 1000,
            techniques="-",
            changes=[],
            fast_recipe=False,
            work="10 epochs over all 60,000 images",
            images_per_s=1000.0,
            train_loss=0.5,
            fwd_macs_per_image=4e5 * (1 + i / 100),
            params=60_000 + 100 * i,
        )
        key = {"name": "book", "test_per_class": None}
        store.put("train", name, key, row, details={"history": []})
    table = headline(store)
    for cost, label, what, _ in ACCURACY_FIGURES:
        figure = accuracy_figure(table, cost, label, what)
        axes = figure.axes[0]
        assert sorted(t.get_text() for t in axes.texts) == sorted(names)
        xs = sorted(t.xy[0] for t in axes.texts)
        assert xs[-1] == (60_000 + 900 if cost == "trained_params" else 4e5 * 1.09)
        assert_legible(figure)


def assert_legible(figure) -> None:
    """In every panel, each text drawn on the axes lies inside them and overlaps no other; each
    legend, the panels' or the figure's, has at most eight entries."""
    from itertools import combinations

    from bench.render.figure import text_box

    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = [*figure.legends, *(a.get_legend() for a in figure.axes if a.get_legend())]
    assert all(len(legend.get_texts()) <= 8 for legend in legends)
    for axes in [a for a in figure.axes if a.get_visible()]:
        boxes = [text_box(t, renderer) for t in axes.texts]
        inside = axes.get_window_extent(renderer)
        assert all(inside.x0 <= b.x0 and b.x1 <= inside.x1 for b in boxes)
        assert all(inside.y0 <= b.y0 and b.y1 <= inside.y1 for b in boxes)
        assert not [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]


def test_the_training_curves_name_each_book_network_on_its_line(tmp_path, full_row):
    """One line per network of the book's nine, named at its end, the preset said where it is
    a budget's fixed work; networks outside the nine stay on the training page."""
    from bench.render.curves import curves_figure

    store = Store(tmp_path / "r.sqlite")
    for name, preset in (("lenet", "book"), ("bn_lenet", "book"), ("alexnet", "cpu")):
        for model in (name, f"{name}_28" if name == "lenet" else name):
            row = full_row(
                "train",
                model=model,
                preset=preset,
                lr=0.1,
                batch_size=128,
                resize=None,
                test_acc=0.8,
                techniques="-",
                changes=[],
                fast_recipe=False,
                seed=0,
                work="3 epochs",
            )
            history = [{"train_s": 10.0 * e, "test_acc": 0.6 + e / 10} for e in (1, 2, 3)]
            key = {"name": preset, "test_per_class": None}
            store.put("train", model, key, row, details={"history": history})
    figure = curves_figure(store)
    assert sorted(t.get_text() for t in figure.axes[0].texts if "%" not in t.get_text()) == [
        "alexnet (cpu preset)",
        "bn_lenet",
        "chance",
        "lenet",
    ]
    assert "book, cpu presets" in figure.axes[0].get_title()
    assert_legible(figure)


def test_the_conv_and_fc_figure_draws_the_books_nine_in_one_unit_a_panel(tmp_path):
    """A bar per network of the book's nine at its book input; a network outside them stays in
    the profile's tables; totals in millions, never a mix of units."""
    from bench.flops.profile import profile_job
    from bench.render.plots import conv_vs_fc

    store = Store(tmp_path / "r.sqlite")
    for name, side in (("lenet", 28), ("lenet_modern", 28)):
        config = {"image_size": side, "batch_size": 128, "in_channels": 1}
        summary, layers, ops = profile_job(name, config)
        store.put("profile", name, config, summary, details={"layers": layers, "ops": ops})
    svg = conv_vs_fc(store, tmp_path)[1].read_text()
    assert "lenet (28 px)" in svg and "lenet_modern" not in svg
    params = 6 * 25 + 6 + 16 * 6 * 25 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    assert f"{params / 1e6:,.2f} M" in svg and " G<" not in svg


def test_the_search_table_says_what_each_step_bought_against_the_step_it_changes(
    tmp_path, full_row
):
    """Each step's line: the median over its seeds, and the differences of medians from the
    step it names; a run of no step stays out."""
    import statistics

    from bench.recipes import FAST_SEARCH, Run
    from bench.render.search import search_table

    (first, (_, base)), (second, (after, changed)) = list(FAST_SEARCH.items())[:2]
    assert after == first
    store = Store(tmp_path / "r.sqlite")
    results = {first: [(0.91, 60.0), (0.915, 66.0), (0.905, 70.0)], second: [(0.92, 40.0)] * 2}
    results[second].append((0.93, 45.0))
    for step, run in ((first, base), (second, changed)):
        for seed, (accuracy, wall) in enumerate(results[step]):
            settings = Run(**{**run.__dict__, "seed": seed}).settings()
            row = full_row("train", **settings, test_acc=accuracy, wall_s=wall, preset="book")
            store.put("train", run.model, {"step": step, "seed": seed}, row)
    other = full_row("train", **Run("lenet").settings(), test_acc=0.8, wall_s=9.0, preset="book")
    store.put("train", "lenet", {"other": 1}, other)
    table = search_table(store.rows("train")).set_index("step")
    assert list(table.index) == [first, second]
    assert list(table["seeds"]) == [3, 3]
    accuracy = {s: statistics.median(a for a, _ in results[s]) for s in results}
    wall = {s: statistics.median(w for _, w in results[s]) for s in results}
    assert table.loc[second, "acc_delta"] == pytest.approx(accuracy[second] - accuracy[first])
    assert table.loc[second, "wall_delta"] == pytest.approx(wall[second] - wall[first])
    assert table.loc[first, "acc_range"] == "90.50% - 91.50%"
    assert pd.isna(table.loc[first, "acc_delta"])


def test_the_fast_recipes_median_counts_its_finished_seeds_under_presets_that_keep_it(full_row):
    import dataclasses

    from bench.recipes import FAST_RUN, FOUR_EPOCH_RUN
    from bench.render.search import recipe_median

    def row(run, seed, accuracy, wall, preset="book", status="ok"):
        settings = dataclasses.replace(run, seed=seed).settings()
        values = dict(test_acc=accuracy, wall_s=wall, preset=preset, status=status)
        return full_row("train", **settings, **values)

    rows = [row(FAST_RUN, 0, 0.941, 200.0), row(FAST_RUN, 1, 0.945, 190.0)]
    assert recipe_median(rows, FAST_RUN) == "94.3% in 195 s (2 seeds, median)"
    rows += [
        row(FAST_RUN, 2, 0.10, 9.0, preset="smoke"),
        row(FAST_RUN, 2, 0.1, 1.0, status="error"),
    ]
    rows += [row(FOUR_EPOCH_RUN, 0, 0.91, 60.0)]
    assert recipe_median(rows, FAST_RUN) == "94.3% in 195 s (2 seeds, median)"
    assert recipe_median(rows[2:], FAST_RUN) == "-"
