"""``python -m archs``: the registry as a Markdown table (the README's list of networks)."""

from __future__ import annotations

import archs


def markdown_table() -> str:
    """One row per registered network: where it comes from, its input sizes, size and recipe."""
    columns = ["name", "book section", "family", "book input", "smallest input", "parameters"]
    columns += ["recipe", "what it is"]
    rows = [f"| {' | '.join(columns)} |", "| --- | --- | --- | --- | --- | ---: | --- | --- |"]
    for name in archs.list_models():
        spec = archs.spec(name)
        params = sum(p.numel() for p in archs.build(name, device="meta").parameters())
        recipe = spec.recipe
        trained = f"lr {recipe.lr}, {recipe.resize or 28} px" if recipe else "-"
        rows.append(
            f"| `{name}` | {spec.section} | {spec.family} | {spec.image_size} | "
            f"{spec.min_image_size} | {params:,} | {trained} | {spec.summary} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
