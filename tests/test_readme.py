"""The README says what the code does: its results are the published stores', its Python
examples run as written, every command it shows is one the CLI and nox accept, and the
networks page lists the registry."""

import re
import shlex
from pathlib import Path

import pytest

from archs.__main__ import markdown_table
from bench.cli import build_parser

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```$", README, flags=re.M | re.S)
PYTHON = [code for language, code in BLOCKS if language == "python"]
COMMANDS = [
    line.split("  #")[0].strip()
    for language, code in BLOCKS
    if language == ""
    for line in code.splitlines()
    if line.strip()
]


def _between(text: str, marker: str) -> str:
    return text.split(f"<!-- {marker}:start -->\n")[1].split(f"\n<!-- {marker}:end -->")[0]


def test_the_networks_page_lists_every_network():
    listed = _between((ROOT / "docs" / "networks.md").read_text(), "networks")
    assert listed == markdown_table(), "docs/networks.md out of date: paste python -m archs"


def test_the_results_table_is_rendered_from_the_published_stores():
    from bench.runs import results_table

    assert _between(README, "results") == results_table(ROOT / "reports", "reports/"), (
        "README out of date: python -m bench render reports/<folder> renders its table"
    )


def test_the_readme_is_a_front_door():
    assert len(README.splitlines()) <= 250
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    assert {"Install", "Quick start", "Results"} <= set(headings)
    linked = re.findall(r"\]\((docs/[\w.]+|CONTRIBUTING.md|reports/[\w./-]+)\)", README)
    assert [path for path in linked if not (ROOT / path).exists()] == []


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_python_examples_run_as_written(code):
    exec(compile(code, "README.md", "exec"), {})


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_are_ones_the_cli_and_nox_accept(command):
    words = shlex.split(command)
    if words[:3] == ["python", "-m", "bench"]:
        build_parser().parse_args(words[3:])  # raises on an unknown stage or option
    elif words[:2] == ["nox", "-s"]:
        sessions = re.findall(r"^def (\w+)\(session", (ROOT / "noxfile.py").read_text(), re.M)
        assert words[2] in sessions
    else:
        assert words[:3] == ["python", "-m", "archs"], (
            f"a command the test does not know: {command}"
        )
