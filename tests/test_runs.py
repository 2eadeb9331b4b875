"""Run folders: where a run writes, the index of runs, and the committed runs re-rendered from
their stores byte for byte."""

import filecmp
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from bench import runs
from bench.cli import main
from bench.store import Store

ROOT = Path(__file__).parents[1]
PUBLISHED = sorted(p.parent for p in (ROOT / "reports").glob(f"*/{runs.STORE_NAME}"))


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("AMD EPYC", "amd-epyc"),
        ("AMD EPYC 7B13 64-Core Processor", "amd-epyc-7b13"),
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "intel-xeon-platinum"),
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb"),
        ("", "unknown"),
    ],
)
def test_device_slug(name, slug):
    assert runs.device_slug(name) == slug


@pytest.mark.parametrize(
    ("flags", "folder"),
    [
        ("fpu sse sse2 avx avx2 fma", "cpu-amd-epyc-avx2"),
        ("fpu sse avx2 avx512f avx512_bf16", "cpu-amd-epyc-avx512-bf16"),
        ("fp asimd", "cpu-amd-epyc"),  # Arm's Features: no x86 vector set to name
    ],
)
def test_a_cpus_run_folder_names_its_vector_instructions(flags, folder, tmp_path, monkeypatch):
    """Two virtual machines that report one CPU name but differ in vector instructions get
    a run folder each, unless told otherwise."""
    from bench import device
    from bench.cli import _located, build_parser
    from bench.stages import COMMANDS
    from bench.stages.common import settings_from

    (tmp_path / "cpuinfo").write_text(f"model name\t: AMD EPYC\nflags\t\t: {flags}\n")
    monkeypatch.setattr(device, "CPUINFO", tmp_path / "cpuinfo")
    args = build_parser().parse_args(["speed", "--device", "cpu"])
    settings = _located(settings_from(args, COMMANDS["speed"].settings))
    assert settings.out == runs.RUNS / folder
    assert settings.store == runs.RUNS / folder / runs.STORE_NAME


def test_where_a_run_writes():
    default, store, out = Path("reports/cpu-x"), Path("s/r.sqlite"), Path("o")
    assert runs.locate(None, None, default) == (default / "results.sqlite", default)
    assert runs.locate(store, None, default) == (store, Path("s"))  # pages beside the store
    assert runs.locate(None, out, default) == (out / "results.sqlite", out)
    assert runs.locate(store, out, default) == (store, out)


def test_the_index_of_runs_lists_published_runs_only(tmp_path):
    root = tmp_path / "reports"
    for name in ("cpu-x", "smoke-x"):
        store = Store(root / name / runs.STORE_NAME)
        store.put(
            "run",
            name.split("-")[0],
            {"started": "t"},
            {
                "preset": name.split("-")[0],
                "models": None,
                "wall_s": 120.0,
                "stages": {},
                "stage_s": {},
                "not_trained": [],
            },
        )
        store.close()
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\nrest\n")
    runs.write_runs_index(root)
    index = (root / "index.md").read_text()
    assert "| [cpu-x](cpu-x/index.md) | cpu |" in index and "2 min over 1 run of `all`" in index
    table = runs.results_table(root, "reports/")  # the README's copy, its links from the README
    assert (
        readme.read_text()
        == f"intro\n<!-- results:start -->\n{table}\n<!-- results:end -->\nrest\n"
    )
    assert "[cpu-x](reports/cpu-x/index.md)" in table and "smoke-x" not in table
    assert "smoke-x" not in index
    assert '<a href="cpu-x/index.html">cpu-x</a>' in (root / "index.html").read_text()


@pytest.fixture(scope="module", params=PUBLISHED, ids=[p.name for p in PUBLISHED])
def rendered(request, tmp_path_factory):
    """A published run folder, its store rendered again into a fresh folder, and the files git
    holds for it."""
    folder = request.param
    copy = tmp_path_factory.mktemp("render") / folder.name
    copy.mkdir()
    shutil.copy(folder / runs.STORE_NAME, copy / runs.STORE_NAME)
    assert main(["render", str(copy)]) == 0
    listed = subprocess.run(
        ["git", "ls-files", folder.relative_to(ROOT)], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode != 0:  # e.g. a copy of the tree without .git, as a GPU machine gets
        pytest.skip("not a git checkout: which of the folder's files are committed is unknown")
    committed = listed.stdout.split()
    return folder, copy, sorted(Path(p).relative_to(folder.relative_to(ROOT)) for p in committed)


def _same(folder, copy, files):
    return [str(p) for p in files if not filecmp.cmp(copy / p, folder / p, shallow=False)]


@pytest.mark.skipif(not PUBLISHED, reason="no published run folder in reports/")
def test_a_published_run_renders_again_byte_for_byte(rendered):
    folder, copy, committed = rendered
    files = sorted(p.relative_to(copy) for p in copy.rglob("*") if p.is_file())
    assert files == committed  # no page missing, none left over from another run
    assert _same(folder, copy, [p for p in files if p.parts[0] != "plots"]) == []


def _pixels_apart(a: Path, b: Path) -> int:
    """How many pixels of two PNGs differ (every one, if their sizes differ)."""
    x, y = (np.asarray(Image.open(p).convert("RGBA")) for p in (a, b))
    return int((x != y).any(axis=-1).sum()) if x.shape == y.shape else x.size


@pytest.mark.skipif(not PUBLISHED, reason="no published run folder in reports/")
def test_a_published_runs_plots_draw_again(rendered):
    """The SVGs byte for byte; each PNG to within a few anti-aliased pixels, which another
    Python rounds differently (under 3.12, four of one plot; a moved mark differs by
    thousands)."""
    folder, copy, committed = rendered
    plots = [p for p in committed if p.parts[0] == "plots"]
    svg = next(p for p in plots if p.suffix == ".svg")
    drawn_with = re.findall(r"Matplotlib v([\w.]+)", (folder / svg).read_text())
    if drawn_with != [matplotlib.__version__]:
        pytest.skip(
            f"the plots were drawn by matplotlib {drawn_with}, this is "
            f"{matplotlib.__version__}: their bytes may differ"
        )
    assert _same(folder, copy, [p for p in plots if p.suffix == ".svg"]) == []
    apart = {str(p): _pixels_apart(folder / p, copy / p) for p in plots if p.suffix == ".png"}
    assert {p: n for p, n in apart.items() if n > 10} == {}


@pytest.mark.skipif(not PUBLISHED, reason="no published run folder in reports/")
def test_the_committed_index_of_runs_is_the_stores(tmp_path):
    for folder in PUBLISHED:
        (tmp_path / folder.name).mkdir()
        shutil.copy(folder / runs.STORE_NAME, tmp_path / folder.name / runs.STORE_NAME)
    runs.write_runs_index(tmp_path)
    for page in ("index.md", "index.html"):
        assert (tmp_path / page).read_text() == (ROOT / "reports" / page).read_text()


def test_the_index_lists_each_run_of_all_with_its_steps_outcomes_and_times(tmp_path):
    from bench.render.index import runs_of_all

    store = Store(tmp_path / runs.STORE_NAME)
    store.put(
        "run",
        "cpu",
        {"started": "2026-01-01T00:00:00+00:00"},
        {
            "preset": "cpu",
            "models": "lenet",
            "wall_s": 95.0,
            "stages": {"profile": "ok"},
            "stage_s": {"profile": 4.6, "speed": 80.0},
            "not_trained": [],
        },
    )
    (run,) = runs_of_all(store).to_dict("records")
    assert (run["networks"], run["wall"]) == ("lenet", "1.6 min")
    assert run["steps"] == "profile: ok, 5 s; speed: did not finish, 1.3 min"  # stopped in speed
