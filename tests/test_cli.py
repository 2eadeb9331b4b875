"""``python -m bench``: bad input is one line and exit code 2; profile fills the store once."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

import archs
from bench.cli import main
from bench.render.format import fmt_percent
from bench.stages.common import UsageError
from bench.stages.run_all import STAGES
from bench.store import Store


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile", "--models", "resnet81"], "did you mean resnet18"),
        (["profile", "--models", "transformer*"], "no model matches 'transformer*'"),
        (["profile", "--models", "lenet,"], "--models 'lenet,' holds an empty name"),
        (["profile", "--models", "tv:resnet81"], "did you mean tv:resnet18"),
        (["profile", "--models", "tvm:resnet18"], "a name with a colon starts with tv: or timm:"),
        (
            ["profile", "--models", "alexnet", "--image-size", "28"],
            "below the smallest input of alexnet (65)",
        ),
        (["profile", "--batch-size", "0"], "must be positive, got 0"),
        (["profile", "--batch-size", "two"], "'two' is not a whole number"),
        (["measure"], "invalid choice: 'measure'"),
        (["speed", "--batch-sizes", "0,8"], "batch sizes must be positive, got 0,8"),
        (["speed", "--batch-sizes", "a,b"], "'a,b' is not a list of whole numbers"),
        (["speed", "--precision", "fp8"], "invalid choice: 'fp8'"),
        (["speed", "--mode", "eval"], "modes are infer, train; got 'eval'"),
        (["speed", "--device", "cuda"], "--device cuda: no CUDA device is available"),
        (["onnx", "--device", "cuda"], "--device cuda: no CUDA device is available"),
        (["layers", "--device", "cuda"], "--device cuda: no CUDA device is available"),
        (["onnx", "--models", "vgg*", "--time-cap", "soon"], "'soon' is not a number of seconds"),
        (["speed", "--timeout", "-1"], "must be positive, got -1"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    store = ["--store", str(tmp_path / "r.sqlite")] if argv[0] != "measure" else []
    assert main([*argv, *store]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_file_where_a_run_folder_should_be_is_one_line(tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("")
    for where in (["--out", str(file)], ["--store", str(file / "r.sqlite")]):
        assert main(["profile", "--models", "lenet", *where]) == 2
        assert capsys.readouterr().err == (
            f"python -m bench: error: {file} is a file, not a folder for a run's store and pages\n"
        )
    assert main(["profile", "--models", "lenet", "--out", str(file / "a")]) == 2
    assert capsys.readouterr().err == f"python -m bench: error: {file / 'a'}: Not a directory\n"


def test_no_traceback_from_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "bench", "profile", "--models", "zzz"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert (
        done.stderr == "python -m bench: error: unknown model 'zzz'; python -m archs lists them\n"
    )


def test_profile_stores_rows_writes_tables_and_resumes(tmp_path, capsys):
    store_path, out = tmp_path / "results.sqlite", tmp_path / "reports"
    argv = [
        "profile",
        "--models",
        "*_lenet",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--check",
        "--store",
        str(store_path),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "1 network to measure, 0 already in" in first and "counters agree: yes" in first
    store = Store(store_path)
    rows = store.rows("profile")
    assert sorted(r["model"] for r in rows) == ["bn_lenet"]
    assert all(r["counters_agree"] and r["batch_size"] == 4 for r in rows)
    summary = (out / "profile" / "summary.md").read_text()
    assert "FLOPs = 2 x MACs" in summary and "| bn_lenet | 1 x 28 x 28 | 4 |" in summary
    assert (out / "profile" / "bn_lenet_28px_c1_b4_layers.csv").exists()
    assert "## Per layer" in (out / "profile" / "bn_lenet_28px_c1_b4.md").read_text()

    assert main(argv) == 0  # everything is in the store: nothing is measured again
    assert "0 networks to measure, 1 already in" in capsys.readouterr().out
    assert [r["provenance"]["date"] for r in Store(store_path).rows("profile")] == [
        r["provenance"]["date"] for r in rows
    ]


def test_a_profile_without_check_says_its_counters_were_not_checked(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["profile", "--models", "lenet", "--workers", "1", "--out", str(out)]) == 0
    assert "counters agree: not checked" in capsys.readouterr().out
    (row,) = Store(out / "results.sqlite").rows("profile")
    assert row["counters_agree"] is None and row["fvcore_fwd_macs_per_image"] is None
    summary = (out / "profile" / "summary.md").read_text()
    assert "not checked (`--check` runs them)" in summary
    assert "fvcore's cross-check ran" not in summary  # it did not run


def test_a_stage_notes_rows_from_a_cpu_of_the_same_name_with_other_instructions(tmp_path, capsys):
    """A run folder's rows from another virtual machine that reports this CPU's name, or from
    one that did not record its vector instructions: the stage says so before it measures (it
    will not measure what they stored again)."""
    from bench.provenance import cpu_of, environment

    here = environment()
    other = "SSE" if here["cpu_isa"] != "SSE" else "AVX2"
    store = Store(tmp_path / "results.sqlite")
    store.put(
        "layers", "not-an-exercise", {"case": "a"}, {"median_ms": 1.0}, origin={"cpu_isa": other}
    )
    store.put("layers", "not-an-exercise", {"case": "b"}, {"median_ms": 1.0})  # measured here
    store.put(
        "layers", "not-an-exercise", {"case": "c"}, {"median_ms": 1.0}, origin={"cpu_isa": None}
    )
    store.close()
    argv = [
        "profile",
        "--models",
        "bn_lenet",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    note = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    # a machine without x86 flags knows no vector instructions of its own: row c is like its own
    unknown = [f"{here['cpu']} (vector instructions not recorded)"] if here["cpu_isa"] else []
    assert note == [
        f"python -m bench: note: {tmp_path / 'results.sqlite'} holds rows measured on {cpu}; "
        f"this CPU is {cpu_of(here)}: what is stored is not measured again, and the pages name "
        "each row's CPU"
        for cpu in [f"{here['cpu']} ({other})", *unknown]
    ]


def test_speed_sweeps_in_children_stores_rows_and_resumes(tmp_path, capsys):
    argv = [
        "speed",
        "--models",
        "lenet",
        "--batch-sizes",
        "1,4",
        "--time-cap",
        "0.05",
        "--store",
        str(tmp_path / "r.sqlite"),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("images/s") >= 4  # each point as it ends: 2 modes x 2 batch sizes
    assert out.count("\n| lenet |") == 4  # and all of them in the table it ends with
    rows = Store(tmp_path / "r.sqlite").rows("speed")
    assert sorted((r["mode"], r["batch_size"], r["status"]) for r in rows) == [
        ("infer", 1, "ok"),
        ("infer", 4, "ok"),
        ("train", 1, "ok"),
        ("train", 4, "ok"),
    ]
    assert all(r["n"] >= 1 and r["median_ms"] > 0 and r["peak_flops_per_s"] > 0 for r in rows)
    table = (tmp_path / "speed" / "speed.md").read_text()
    assert "| lenet | train | 4 | ok |" in table and "peak RSS growth" in table
    assert main(argv) == 0  # all stored: no child is started, and the figures are shown again
    again = capsys.readouterr().out
    assert "[1/" not in again and again.count("\n| lenet |") == 4


def test_train_smoke_runs_in_a_child_stores_curves_and_resumes(tmp_path, capsys):
    argv = [
        "train",
        "--preset",
        "smoke",
        "--models",
        "bn_lenet",
        "--store",
        str(tmp_path / "r.sqlite"),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    line = "[1/1] bn_lenet, lr 0.1, batch 128, 28 px, 4 epochs over 2,000 images, techniques -"
    assert line + ", seed 0: ok" in capsys.readouterr().out
    (row,) = Store(tmp_path / "r.sqlite").rows("train")
    assert row["status"] == "ok" and row["preset"] == "smoke" and row["evaluations"] == 4
    history = Store(tmp_path / "r.sqlite").details("train", "bn_lenet", row["config"], "history")
    assert [round(h["epoch"]) for h in history] == [1, 2, 3, 4]
    assert (
        "smoke preset: 4 epochs over 2,000 images" in (tmp_path / "train" / "train.md").read_text()
    )
    assert (tmp_path / "train" / "curves.csv").read_text().count("\n") == 5
    assert not (tmp_path / "checkpoints").exists()  # each run's checkpoint went with its end
    assert main(argv) == 0  # stored: not trained again
    assert "[1/1]" not in capsys.readouterr().out


def test_missing_data_is_one_line(tmp_path, capsys):
    argv = [
        "train",
        "--preset",
        "smoke",
        "--data-dir",
        str(tmp_path / "nothing"),
        "--store",
        str(tmp_path / "r.sqlite"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install dataset-fashion-mnist" in err


def test_pipeline_compares_three_feeds(tmp_path, capsys):
    argv = [
        "pipeline",
        "--models",
        "lenet",
        "--seconds",
        "0.3",
        "--store",
        str(tmp_path / "r.sqlite"),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    rows = Store(tmp_path / "r.sqlite").rows("pipeline")
    assert sorted(r["feed"] for r in rows) == ["compute_only", "ours", "torchvision"]
    assert all(r["images_per_s"] > 0 and r["n"] >= 1 and r["median_ms"] > 0 for r in rows)
    page = (tmp_path / "pipeline" / "pipeline.md").read_text()
    assert "| lenet | 28 px |" in page
    cv = {r["feed"]: r["cv"] for r in rows}  # each feed's spread, in the page's order
    assert " / ".join(fmt_percent(cv[f]) for f in ("ours", "torchvision", "compute_only")) in page


def test_all_stages_on_the_smoke_profile_write_every_page(smoke_run, monkeypatch, capsys):
    out, checkout = smoke_run, smoke_run.parents[1]
    monkeypatch.chdir(checkout)
    pages = [
        "index.md",
        "index.html",
        "memory.md",
        "profile/summary.md",
        "speed/speed.md",
        "onnx/onnx.md",
        "pipeline/pipeline.md",
        "train/train.md",
        "train/curves.csv",
        "tradeoffs.md",
        "tradeoffs.csv",
        "exercises.md",
    ]
    plots = [
        "accuracy_vs_macs",
        "accuracy_vs_params",
        "throughput_vs_batch",
        "memory_vs_batch",
        "training_curves",
        "conv_vs_fc",
        "roofline",
    ]
    pages += [f"plots/{stem}.{kind}" for stem in plots for kind in ("png", "svg")]
    assert [page for page in pages if not (out / page).exists()] == []
    index = (out / "index.md").read_text()
    store = Store(out / "results.sqlite")
    lenet = next(r for r in store.rows("profile") if r["model"] == "lenet")
    assert f"| lenet | 28 | {lenet['params']:,} |" in index  # the numbers come from the store
    assert "plots/roofline.png" in index and "exercises.md" in index
    (roof,) = store.rows("machine")  # the yardsticks measured by the speed stage
    assert (
        f"achieved {roof['achievable_flops_per_s'] / 1e9:,.0f} GFLOP/s" in index
        and f"memory {roof['bandwidth_bytes_per_s'] / 1e9:,.1f} GB/s" in index
    )
    # the exercise answers print the store's numbers
    exercises = (out / "exercises.md").read_text()
    for row in store.rows("layers"):
        if "fwd_macs_counted" in row:
            assert (
                f"| {row['config']['case']} | {row['out_side']} | "
                f"{row['fwd_macs_formula'] / 1e6:,.2f} | {row['fwd_macs_counted'] / 1e6:,.2f} |"
            ) in exercises
    # chapter 7's primitives are timed by the layers stage: every chapter 7 exercise is answered
    timed = [r for r in store.rows("layers") if "median_ms" in r]
    assert {r["model"] for r in timed} == {"7.2.x", "7.4.5", "7.4.7", "7.5.3"}
    for row in timed:
        if row["model"] == "7.2.x":
            assert f"| {row['config']['case']} | {row['median_ms']:,.2f} |" in exercises
    chapter_7 = exercises.split("\n## 8.")[0]
    assert "## 7.2.x" in chapter_7 and "Not measured yet" not in chapter_7
    accuracy = {r["model"]: r["test_acc"] for r in store.rows("train")}
    tradeoffs = (out / "tradeoffs.md").read_text()
    assert all(f"| {m} | {a:.1%} |" in tradeoffs for m, a in accuracy.items())
    (run,) = store.rows("run")
    assert run["preset"] == "smoke" and set(run["stages"].values()) == {"ok"}
    # a smoke run touches nothing git tracks and adds nothing git sees
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""
    capsys.readouterr()
    assert main(["all", "--preset", "smoke"]) == 0  # a second run finds everything in the store
    assert len(Store(out / "results.sqlite").rows("run")) == 1  # and leaves it as it was
    again = capsys.readouterr().out
    assert "[1/" not in again and "0 networks to measure" in again and "0 runs to train" in again
    stored = out.relative_to(checkout) / "results.sqlite"
    for stage, item in [
        ("peers", "network"),
        ("layers", "case"),
        ("speed", "point"),
        ("onnx", "point"),
        ("pipeline", "feed"),
    ]:
        assert f"{stage}: every {item} is in {stored} already; nothing to measure" in again


def test_a_second_run_on_the_same_store_is_refused(tmp_path, capsys):
    import fcntl

    store = tmp_path / "results.sqlite"
    with open(tmp_path / "results.sqlite.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        assert main(["profile", "--models", "lenet", "--store", str(store)]) == 2
    assert "another run is using" in capsys.readouterr().err


def test_a_stage_that_fails_or_has_nothing_to_do_is_recorded_and_the_rest_run(
    tmp_path, capsys, monkeypatch
):
    from bench.stages import speed
    from bench.stages.run_all import PLANS, Step

    def broken(args):
        raise RuntimeError("a bug in the layers stage")

    monkeypatch.setitem(STAGES, "layers", dataclasses.replace(STAGES["layers"], run=broken))
    # a plan may run a stage again, under the step's name
    again = speed.Settings(batch_sizes=(2,), mode=("infer",), time_cap=0.01)
    monkeypatch.setitem(PLANS, "smoke", (*PLANS["smoke"], Step("speed", again, "speed: batch 2")))
    out = tmp_path / "reports"
    argv = [
        "all",
        "--preset",
        "smoke",
        "--models",
        "bn_lenet",
        "--store",
        str(out / "results.sqlite"),
        "--out",
        str(out),
    ]
    assert main(argv) == 1  # the failed stage; everything else did what it could
    printed = capsys.readouterr().out
    assert "layers failed: RuntimeError: a bug in the layers stage; the next stage runs" in printed
    # bn_lenet cannot take a training step on one image: not applicable, not an error
    assert "bn_lenet train batch 1: n/a not applicable: batch norm in training needs" in printed
    assert "pipeline skipped: the pipeline cases are lenet, resnet18, alexnet" in printed
    assert "[1/1] bn_lenet, lr 0.1, batch 128, 28 px, 4 epochs" in printed  # training still ran
    store = Store(out / "results.sqlite")
    (run,) = store.rows("run")
    assert run["stages"] == {
        "profile": "ok",
        "peers": "ok",
        "layers": "failed: RuntimeError: a bug in the layers stage",
        "speed": "ok",
        "memory": "ok",
        "onnx": "ok",
        "train": "ok",
        "speed: batch 2": "ok",
        "pipeline": "skipped: the pipeline cases are lenet, resnet18, alexnet",
    }
    assert run["stage_s"].keys() == run["stages"].keys()  # each step's time, beside its outcome
    index = (out / "index.md").read_text()
    assert re.search(
        r"layers: failed: RuntimeError: a bug in the layers stage, \d+ s; speed: ok", index
    )
    assert "== speed: batch 2 (smoke preset) ==" in printed
    assert re.search(r"all stages in \d+ s \(profile \d+ s, peers \d+ s, layers \d+ s, ", printed)
    inferred = sorted(
        r["config"]["batch_size"] for r in store.rows("speed") if r["config"]["mode"] == "infer"
    )
    assert inferred == [1, 2, 8, 128]  # the smoke plan's batch sizes, then the step's


def test_a_run_stopped_before_it_stored_anything_is_recorded_with_where_it_stopped(
    tmp_path, capsys, monkeypatch
):
    def stopped(args):
        raise KeyboardInterrupt  # Ctrl-C in the first step

    monkeypatch.setitem(STAGES, "profile", dataclasses.replace(STAGES["profile"], run=stopped))
    store_path = tmp_path / "results.sqlite"
    argv = ["all", "--preset", "smoke", "--store", str(store_path), "--out", str(tmp_path)]
    assert main(argv) == 130
    (run,) = Store(store_path).rows("run")
    assert run["stages"] == {} and list(run["stage_s"]) == ["profile"]


def test_models_replace_a_plans_sweep_but_narrow_a_step_for_particular_networks(tmp_path):
    """`--models 'resnet*'` under the cpu preset: the speed sweep times every ResNet, the step
    for 8.7.7.3 (DenseNet-121 and ResNet-50) only ResNet-50, AlexNet's step none; a pattern
    that matches no network stops the run before it starts."""
    from bench.stages import run_all

    def speed_models(models):
        settings = run_all.Settings(models=models, out=tmp_path, store=tmp_path / "r.sqlite")
        return {
            name: step and step.models
            for stage, step, name, _ in run_all.stage_settings(settings, "cpu")
            if stage == "speed"
        }

    resnets = ",".join(archs.list_models("resnet*"))
    assert speed_models("resnet*") == {
        "speed": resnets,
        "speed: AlexNet at batch 16 and 128": None,
        "speed: DenseNet-121 and ResNet-50 training at batch 16": "resnet50",
    }
    assert speed_models(None) == {
        "speed": f"{run_all.BOOK},{run_all.EXERCISE_SPEED}",
        "speed: AlexNet at batch 16 and 128": "alexnet",
        "speed: DenseNet-121 and ResNet-50 training at batch 16": "densenet121,resnet50",
    }
    with pytest.raises(UsageError, match="no model matches 'resnot\\*'"):
        speed_models("resnot*")


def test_a_plans_whole_seconds_key_a_point_as_the_command_line_does():
    """The cpu plan gives its speed step `max_step=1`, the command line reads `--max-step 1` as
    1.0: each must find the other's rows in the store (their keys' JSON would tell 1 from 1.0),
    or a run resumed the other way measures everything again."""
    from bench.cli import build_parser
    from bench.stages import speed
    from bench.stages.common import settings_from
    from bench.store import config_hash

    typed = build_parser().parse_args(["speed", "--time-cap", "1", "--max-step", "1"])
    keys = [
        config_hash(speed.config(settings, "CPU X", "lenet", 1, "infer", 28))
        for settings in (
            settings_from(typed, speed.Settings),
            speed.Settings(time_cap=1, max_step=1),
        )
    ]
    assert keys[0] == keys[1]


def test_the_book_plan_puts_what_the_books_networks_buy_first_and_compiles_last():
    from bench.recipes import EXPERIMENTS
    from bench.stages.run_all import PLANS

    plan = PLANS["book"]
    # counting only (at the book's sides, and two networks at 224), then training
    assert [s.stage for s in plan[:3]] == ["profile", "profile", "train"]
    assert plan[2].settings.experiment == ("book",) and plan[2].settings.preset == "book"
    assert len({s.name or s.stage for s in plan}) == len(plan)  # each step named apart
    trained = [e for s in plan if s.stage == "train" for e in s.settings.experiment]
    assert sorted(trained) == sorted(EXPERIMENTS)  # every experiment, once
    timed = [
        (s.settings.models, s.settings.precision, s.settings.compile)
        for s in plan
        if s.stage == "speed"
    ]
    book = ",".join(archs.BOOK_MODELS)
    assert timed == [
        (book, "fp32", False),
        (book, "bf16", False),
        ("*", "fp32", False),
        ("*", "bf16", False),
        (book, "fp32", True),
        (book, "bf16", True),
    ]
    assert next(i for i, s in enumerate(plan) if s.stage == "speed") == 3  # right after training


def test_training_on_the_books_pipeline_starts_its_loader_workers_in_the_child(tmp_path, capsys):
    argv = [
        "train",
        "--preset",
        "smoke",
        "--models",
        "lenet",
        "--pipeline",
        "torchvision",
        "--store",
        str(tmp_path / "r.sqlite"),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    (row,) = Store(tmp_path / "r.sqlite").rows("train")
    assert row["status"] == "ok" and row["pipeline"] == "torchvision" and row["evaluations"] == 4


def test_a_preset_has_one_name():
    """--preset names what a run trains on; --profile is the profile stage's word alone."""
    from bench.cli import build_parser

    assert build_parser().parse_args(["all", "--preset", "cpu"]).preset == "cpu"
    with pytest.raises(UsageError, match="unrecognized arguments: --profile"):
        build_parser().parse_args(["train", "--profile", "smoke"])


def test_a_torchvision_network_is_profiled_with_its_three_channels(tmp_path):
    argv = [
        "profile",
        "--models",
        "tv:resnet18",
        "--batch-size",
        "2",
        "--workers",
        "1",
        "--store",
        str(tmp_path / "r.sqlite"),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    (row,) = Store(tmp_path / "r.sqlite").rows("profile")
    assert (row["model"], row["in_channels"], row["image_size"]) == ("tv:resnet18", 3, 224)
    assert row["params"] == sum(p.numel() for p in torchvision.models.resnet18().parameters())
    assert "| tv:resnet18 | 3 x 224 x 224 |" in (tmp_path / "profile" / "summary.md").read_text()


def test_the_ray_executor_without_ray_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as where it is not installed
    assert main(["layers", "--executor", "ray", "--store", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err == "python -m bench: error: --executor ray needs Ray: pip install -e '.[ray]'\n"


def test_runs_train_shortest_first_on_one_device_longest_first_side_by_side(tmp_path, full_row):
    """By counted training FLOPs where the store has the network's profile, the others after
    them in their own order."""
    from bench.recipes import PRESETS, Run, config
    from bench.stages.train import by_work

    store, book = Store(tmp_path / "r.sqlite"), PRESETS["book"]
    todo = [
        (run, config(run, book, "ours"))
        for run in (Run("lenet"), Run("nin"), Run("alexnet"), Run("resnet18"))
    ]
    for name, fwd in (("lenet", 1e6), ("alexnet", 1e9), ("resnet18", 2e8)):  # nin: none
        side = config(Run(name), book, "ours")["resize"] or 28
        store.put(
            "profile",
            name,
            {"image_size": side, "in_channels": 1, "batch_size": 128},
            full_row("profile", model=name, fwd_flops_per_image=fwd, bwd_flops_per_image=2 * fwd),
        )
    for longest_first, expected in (
        (True, ["alexnet", "resnet18", "lenet", "nin"]),
        (False, ["lenet", "resnet18", "alexnet", "nin"]),
    ):
        assert [run.model for run, _ in by_work(store, todo, longest_first)] == expected


def test_the_help_examples_run_as_written():
    """Each example of ``python -m bench --help`` is a command the parser takes, and the run
    folders it names exist."""
    import shlex

    from bench.cli import EXAMPLES, build_parser

    root = Path(__file__).parents[1]
    lines = [line.split("  #")[0].strip() for line in EXAMPLES.splitlines()[1:]]
    assert lines
    for line in lines:
        words = shlex.split(line)
        assert words[:3] == ["python", "-m", "bench"]
        args = build_parser().parse_args(words[3:])
        if args.command == "compare":
            assert (root / args.a).is_dir() and (root / args.b).is_dir()
