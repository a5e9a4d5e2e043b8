"""Every figure has a real text alternative: its alt text, written in the cell's metadata next to the
plotting code, is what the website shows as the figure's ``<img alt>``; the conventions check fails on
a figure without one (issue 25). The browser tests check the built site's pages themselves."""
from __future__ import annotations

import copy
import html
import re
from pathlib import Path

import nbformat
import pytest

from browser_support import require_site_stack
from course_utils.authoring import conventions, site
from course_utils.authoring.conventions import alt_problem, badge, figure_count, figures_without_alt

ROOT = Path(__file__).resolve().parent.parent
ALT = "Three test digits with their true ink centre and the regressed centre marked on each."


def _png() -> str:
    nb = nbformat.read(ROOT / "notebooks" / "00_start_here.ipynb", as_version=4)
    return next(o["data"]["image/png"] for c in nb.cells if c.cell_type == "code"
                for o in c.get("outputs", []) if "image/png" in o.get("data", {}))


def _figure_cell(png: str, alt: str | None = ALT, count: int = 1) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("plt.show()", execution_count=2, outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}) for _ in range(count)])
    if alt is not None:
        cell.metadata["mystnb"] = {"image": {"alt": alt}}
    return cell


def _widget(png: str, alt: str | None) -> tuple[nbformat.NotebookNode, dict]:
    """A cell showing a widget whose saved output area holds a figure, and the notebook's widget state."""
    models = {"box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_k", "IPY_MODEL_out"]}},
              "k": {"model_name": "IntSliderModel", "state": {"description": "kernel", "value": 3, "min": 1,
                                                               "max": 7, "step": 2}},
              "out": {"model_name": "OutputModel", "state": {"outputs": [
                  {"output_type": "display_data", "data": {"image/png": png, "text/plain": "<Figure>"},
                   "metadata": {}}]}}}
    cell = nbformat.v4.new_code_cell("interact(draw, kernel=(1, 7, 2))", execution_count=3, outputs=[
        nbformat.v4.new_output("display_data", data={site.WIDGET_VIEW: {"model_id": "box"},
                                                     "text/plain": "interactive(children=...)"})])
    if alt is not None:
        cell.metadata["mystnb"] = {"image": {"alt": alt}}
    return cell, {"state": models, "version_major": 2, "version_minor": 0}


# ------------------------------------------------------------------------------------- what counts

@pytest.mark.parametrize("alt, expected", [
    (None, "no alt text"), ("", "no alt text"), ("  \n", "no alt text"),
    ("../_images/0d47ab9e.png", "a file name"), ("loss.PNG", "a file name"), ("figures/loss", "a file name"),
    ("0d47ab9e0d47ab9e0d47", "a file name"),
    ("figure", "generic"), ("A plot.", "generic"), ("The image", "generic"), ("my figure", "generic"),
    ("Loss curves", "too short"),
])
def test_alt_problem_names_what_is_wrong(alt, expected):
    assert expected in alt_problem(alt, min_words=conventions.MIN_ALT_WORDS)


@pytest.mark.parametrize("alt", [ALT, "Loss over 10 epochs: validation stops falling after epoch 4.",
                                 "The file flower.png shown as its red, green and blue planes."])
def test_alt_problem_accepts_a_description(alt):
    assert alt_problem(alt, min_words=conventions.MIN_ALT_WORDS) is None
    assert alt_problem("Colab logo") is None  # a short name is fine for an icon (no minimum by default)


def test_a_widgets_saved_figure_counts_as_a_figure_of_its_cell():
    png = _png()
    cell, state = _widget(png, None)
    assert figure_count(cell, state["state"]) == 1
    assert figure_count(cell, {}) == 0  # no saved state: the site shows a note, no figure
    assert figure_count(_figure_cell(png, count=2), {}) == 2
    assert figure_count(nbformat.v4.new_code_cell("print(1)"), {}) == 0


# ------------------------------------------------------------------------------------- the conventions rule

def _good(rel: str, cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# A title\n\n{badge(rel)}\n\n## Learning goals\n- one"),
                nbformat.v4.new_code_cell(conventions.SETUP_SOURCE, execution_count=1), *cells,
                nbformat.v4.new_markdown_cell("## Try it\nChange a number.\n\n## Summary\nDone.")]
    return nb


def _problems(tmp_path: Path, nb: nbformat.NotebookNode, rel: str) -> list[str]:
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return conventions.problems(path, tmp_path)


def test_the_conventions_check_fails_on_each_figure_without_a_real_alt_text(tmp_path):
    rel, png = "notebooks/99_tmp.ipynb", _png()
    widget, state = _widget(png, "The kernel slider at 3 and the receptive field it gives, a 3x3 square.")
    nb = _good(rel, [_figure_cell(png), widget])
    nb.metadata["widgets"] = {conventions.WIDGET_STATE: state}
    assert _problems(tmp_path, nb, rel) == []  # alt on the figure and on the widget: nothing to report
    # planted: no alt on the figure, a file name on the widget, and a figure with a generic one
    del nb.cells[2].metadata["mystnb"]
    nb.cells[3].metadata["mystnb"]["image"]["alt"] = "../_images/0d47ab9e.png"
    nb.cells.insert(4, _figure_cell(png, alt="Figure"))
    found = _problems(tmp_path, nb, rel)
    assert [re.match(r".*: cell (\d+) shows a figure", p).group(1) for p in found] == ["2", "3", "4"], found
    assert "no alt text" in found[0] and '"mystnb": {"image": {"alt":' in found[0]
    assert "a file name" in found[1] and "generic" in found[2]
    assert "its widget saved" in found[1] and "its widget saved" not in found[0] + found[2]
    assert [i for i, _ in figures_without_alt(nb)] == [2, 3, 4]


def test_a_real_notebook_with_alt_text_passes_and_fails_once_one_is_removed(tmp_path):
    rel = "notebooks/10_segmentation_metrics.ipynb"
    nb = nbformat.read(ROOT / rel, as_version=4)
    figures = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and figure_count(c, {})]
    assert len(figures) >= 5
    if figures_without_alt(nb):
        pytest.skip("notebook 10 lost an alt text; test_notebook_conventions reports it")
    broken = copy.deepcopy(nb)
    del broken.cells[figures[2]].metadata["mystnb"]
    assert figures_without_alt(broken) == [(figures[2], "no alt text")]
    found = [p for p in _problems(tmp_path, broken, rel) if "shows a figure" in p]
    assert found and len(found) == 1 and f"cell {figures[2]} " in found[0]


# ------------------------------------------------------------------------------------- the built page

def test_the_website_shows_each_figures_alt_text_as_its_img_alt(tmp_path):
    """A tiny repository, built with the site's own stage and build: the figure and the widget's saved
    figure carry their cells' alt texts; a figure without one shows what the conventions check forbids."""
    require_site_stack()
    png = _png()
    widget_alt = "The kernel slider at 3 and the receptive field it gives, a 3x3 square."
    widget, state = _widget(png, widget_alt)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# 00 · Tiny\n\n{badge('notebooks/00_tiny.ipynb')}\n\n## Figures"),
                _figure_cell(png, alt='A "quoted" word & an ampersand in a description of two panels.', count=2),
                widget, _figure_cell(png, alt=None)]
    nb.metadata["widgets"] = {conventions.WIDGET_STATE: state}
    nb.metadata["language_info"] = {"name": "python"}  # for the code cells' highlighting
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    nbformat.write(nb, repo / "notebooks" / "00_tiny.ipynb")
    (repo / "README.md").write_text("# Tiny\n\nA tiny course.\n\n## The notebooks\n\n| # | notebook | what it covers |\n"
                                    "|---|---|---|\n| 00 | [00_tiny](notebooks/00_tiny.ipynb) | one page |\n\n"
                                    "## For instructors\n\nNothing.\n")
    site.stage(repo, tmp_path / "src")
    result = site.build(tmp_path / "src", tmp_path / "out", capture=True)
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "out" / "html" / "notebooks" / "00_tiny.html").read_text(encoding="utf-8")
    alts = [html.unescape(a) for a in re.findall(r'<img [^>]*alt="([^"]*)"', page) if a != "Colab logo"]  # the theme's launch button
    assert alts[:3] == ['A "quoted" word & an ampersand in a description of two panels.'] * 2 + [widget_alt]
    assert len(alts) == 4 and alt_problem(alts[3]) is not None  # without alt: the file name (Sphinx's fallback)
    assert [i for i, _ in figures_without_alt(nb)] == [3]  # ... which the conventions check reports
