"""The HTML pages: Markdown rendered by a Markdown library, links that work in a browser, and
(where Chromium is installed) a page that a headless browser actually draws."""

import shutil
import subprocess

import matplotlib.image
import pytest

from bench.render.html import page, write_twin

TEXT = """# A run

Intro with `code` and *emphasis*, see [the exercises](exercises.md#8153) and
[the runs](../index.md), or [a site](https://example.org/a.md).

![the headline plot](plots/headline.png)

| model | accuracy |
| :--- | ---: |
| lenet | 69.2% |
"""


def test_markdown_becomes_html_with_links_to_the_html_twins():
    html = page(TEXT)
    assert "<title>A run</title>" in html and "<h1>A run</h1>" in html
    assert "<code>code</code>" in html and "<em>emphasis</em>" in html  # not literal * and `
    assert 'href="exercises.html#8153"' in html and 'href="../index.html"' in html
    assert 'href="https://example.org/a.md"' in html  # another site's links are left alone
    assert '<img alt="the headline plot" src="plots/headline.png"' in html
    assert '<td style="text-align: left;">lenet</td>' in html
    assert '<td style="text-align: right;">69.2%</td>' in html


def test_a_twin_is_written_beside_its_page(tmp_path):
    source = tmp_path / "index.md"
    source.write_text(TEXT)
    assert write_twin(source) == tmp_path / "index.html"
    assert (tmp_path / "index.html").read_text() == page(TEXT)


BROWSER = next(
    (b for b in ("chromium-headless-shell", "chromium", "chromium-browser") if shutil.which(b)),
    None,
)


@pytest.mark.skipif(BROWSER is None, reason="no chromium on this machine (nox -s screenshot)")
def test_a_headless_browser_draws_the_table_and_the_plot(tmp_path):
    import matplotlib.pyplot as plt

    (tmp_path / "plots").mkdir()
    figure, axes = plt.subplots(figsize=(3, 2))
    axes.plot([0, 1], [0, 1], color="red", linewidth=8)
    figure.savefig(tmp_path / "plots" / "headline.png")
    plt.close(figure)
    source = tmp_path / "index.md"
    source.write_text(TEXT)
    url = write_twin(source).as_uri()
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=800,600"]
    dom = subprocess.run(
        [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "<table>" in dom and "lenet" in dom and 'src="plots/headline.png"' in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True
    )
    pixels = matplotlib.image.imread(shot)[..., :3]
    red = (pixels[..., 0] > 0.8) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3)
    assert red.sum() > 100  # the plot's red line was loaded and drawn
