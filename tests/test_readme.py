"""The README says what the code does: its list of networks is the registry's, its Python
examples run as written, and every command it shows is one the CLI and nox accept."""

import re
import shlex
from pathlib import Path

import pytest

from archs.__main__ import markdown_table
from bench.__main__ import build_parser

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


def test_readme_lists_every_network():
    listed = README.split("<!-- networks:start -->\n")[1].split("\n<!-- networks:end -->")[0]
    assert listed == markdown_table(), "README out of date: paste the output of python -m archs"


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
