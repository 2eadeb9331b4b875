"""The README's list of networks is the registry's, as printed by ``python -m archs``."""

from pathlib import Path

from archs.__main__ import markdown_table


def test_readme_lists_every_network():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    listed = readme.split("<!-- networks:start -->\n")[1].split("\n<!-- networks:end -->")[0]
    assert listed == markdown_table(), "README out of date: paste the output of python -m archs"
