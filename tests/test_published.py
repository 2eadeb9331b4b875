"""A user's run measures the user's machine: on a checkout holding a published run of this very
machine's kind, commands measure into runs/ and leave the published folder, and git, as they
were; each stage command answers in the terminal."""

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import archs
from bench import runs
from bench.cli import main
from bench.device import backend_for, cpu_flags, vector_isa
from bench.store import Store

ROOT = Path(__file__).parents[1]
PUBLISHED = sorted(p.parent for p in (ROOT / "reports").glob(f"*/{runs.STORE_NAME}"))
GIT = ["git", "-c", "user.name=cnnbench", "-c", "user.email=cnnbench@localhost"]


def _status(folder: Path) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def published_here(checkout):
    """The checkout holds, as a published run of this machine's cpu preset, a copy of a
    committed store: the folder a command on this machine would have written to before."""
    name = runs.folder("cpu", backend_for(torch.device("cpu")).name, vector_isa(cpu_flags())).name
    folder = checkout / "reports" / name
    folder.mkdir()
    shutil.copy(PUBLISHED[0] / runs.STORE_NAME, folder / runs.STORE_NAME)
    Store(folder / runs.STORE_NAME).close()  # as the code opens it: with every table it reads
    subprocess.run([*GIT, "add", "."], cwd=checkout, check=True)
    subprocess.run([*GIT, "commit", "-qm", "publish"], cwd=checkout, check=True)
    return folder


@pytest.mark.skipif(not PUBLISHED, reason="no published run folder in reports/")
def test_commands_measure_into_runs_and_leave_a_published_run_alone(published_here, capsys):
    checkout = published_here.parents[1]
    before = (published_here / runs.STORE_NAME).read_bytes()
    assert main(["profile", "--models", "tv:mobilenet_v3_small"]) == 0
    assert (
        main(
            [
                "speed",
                "--device",
                "cpu",
                "--models",
                "lenet",
                "--batch-sizes",
                "1,8",
                "--time-cap",
                "0.05",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "1 network to measure, 0 already in runs/" in out  # measured, not found published
    assert (published_here / runs.STORE_NAME).read_bytes() == before
    assert _status(checkout) == ""  # runs/ is ignored, and nothing tracked changed
    own = checkout / "runs" / published_here.name
    profile = own / "profile"
    assert sorted(p.name for p in profile.glob("tv*.md")) == [
        "tv-mobilenet_v3_small_224px_c3_b128.md"
    ]
    assert not [p for p in own.rglob("*") if ":" in p.name]


def test_a_stage_prints_its_figures_and_the_page_that_holds_them(checkout, capsys):
    assert main(["profile", "--models", "resnet18"]) == 0
    out = capsys.readouterr().out
    params = sum(p.numel() for p in archs.build("resnet18", device="meta").parameters())
    assert f"| resnet18 | 96 | {params:,} |" in out
    (page,) = [line for line in out.splitlines() if line.startswith("every figure: ")]
    assert Path(page.removeprefix("every figure: ")).name == "summary.md"
    capsys.readouterr()
    assert main(["profile", "--models", "resnet18"]) == 0  # found stored: the figures again
    assert f"| resnet18 | 96 | {params:,} |" in capsys.readouterr().out


def test_every_page_and_its_twin_agree_with_the_store_after_a_stage(checkout, capsys):
    from bench.render.html import write_twin

    assert main(["profile", "--models", "lenet"]) == 0
    assert main(["profile", "--models", "bn_lenet"]) == 0  # a second stage command
    (own,) = (checkout / "runs").iterdir()
    for page in own.rglob("*.md"):
        twin = page.with_suffix(".html")
        drawn = twin.read_text()
        write_twin(page)
        assert twin.read_text() == drawn, page
    assert "| bn_lenet |" in (own / "index.md").read_text()


def test_all_sets_its_figures_beside_the_published_run_of_its_kind(
    smoke_run, tmp_path, capsys, monkeypatch
):
    """A published smoke run of this machine (copied from the session's), then ``all`` again
    in a folder of its own: the summary of the comparison and the full one on disk."""
    checkout = tmp_path
    (checkout / "reports" / smoke_run.name).mkdir(parents=True)
    shutil.copy(smoke_run / runs.STORE_NAME, checkout / "reports" / smoke_run.name)
    monkeypatch.chdir(checkout)
    out = checkout / "runs" / smoke_run.name
    out.mkdir(parents=True)
    shutil.copy(smoke_run / runs.STORE_NAME, out / runs.STORE_NAME)
    assert main(["all", "--preset", "smoke"]) == 0
    printed = capsys.readouterr().out
    assert f"this machine against the published run reports/{smoke_run.name}" in printed
    assert "profile: " in printed and "0 beyond the noise" in printed  # the same store
    assert "| lenet |" in (out / "against-published.md").read_text()
