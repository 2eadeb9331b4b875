"""``python -m archs [PATTERN]``: the registry as a Markdown table (the README's list of
networks), or the networks whose names match a shell-style pattern."""

from __future__ import annotations

import argparse
import sys

import archs


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage plus message
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def markdown_table(pattern: str = "*") -> str:
    """One row per registered network matching ``pattern``: where it comes from, its input
    sizes, size and recipe."""
    columns = ["name", "book section", "family", "book input", "smallest input", "parameters"]
    columns += ["recipe", "what it is"]
    rows = [f"| {' | '.join(columns)} |", "| --- | --- | --- | --- | --- | ---: | --- | --- |"]
    for name in archs.list_models(pattern):
        spec = archs.spec(name)
        params = sum(p.numel() for p in archs.build(name, device="meta").parameters())
        recipe = spec.recipe
        trained = f"lr {recipe.lr}, {recipe.resize or 28} px" if recipe else "-"
        rows.append(
            f"| `{name}` | {spec.section} | {spec.family} | {spec.image_size} | "
            f"{spec.min_image_size} | {params:,} | {trained} | {spec.summary} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m archs", description="The registered networks as a Markdown table."
    )
    parser.add_argument(
        "pattern", nargs="?", default="*", help="shell-style pattern of names (default: all)"
    )
    pattern = parser.parse_args(argv).pattern
    if not archs.list_models(pattern):
        parser.error(f"no network matches {pattern!r}")
    print(markdown_table(pattern))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
