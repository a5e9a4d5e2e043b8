"""The website builder (course_utils.authoring.site): what it stages, and that a warning fails the build.

The browser tests of the real site are in test_site_browser.py; these need no browser.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from browser_support import require_site_stack
from course_utils.authoring import site
from course_utils.authoring.conventions import badge, colab_url
from course_utils.authoring.exercise import NOTEBOOK as EXERCISE

ROOT = Path(__file__).resolve().parent.parent
NB08 = ROOT / "notebooks" / "08_receptive_field_fcn.ipynb"


def _widget_cell(nb: nbformat.NotebookNode) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                and any(site.WIDGET_VIEW in o.get("data", {}) for o in c.outputs))


def test_the_site_has_every_notebook_in_order_and_the_exercise_as_its_student_version():
    found = [p.as_posix() for p in site.course_notebooks(ROOT)]
    numbers = [Path(p).name.split("_")[0] for p in found]
    assert numbers == sorted(numbers) and numbers[:14] == [f"{i:02d}" for i in range(5)] + ["04b"] + [
        f"{i:02d}" for i in range(5, 13)]
    assert f"notebooks/student/{EXERCISE}.ipynb" in found
    assert f"notebooks/{EXERCISE}.ipynb" not in found  # the solution source is never published


def test_in_a_release_the_student_version_alone_stands_for_the_exercise(tmp_path):
    (tmp_path / "notebooks" / "student").mkdir(parents=True)
    for name in ("00_start_here", "12_segmentation_architectures"):
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text("{}")
    (tmp_path / "notebooks" / "student" / f"{EXERCISE}.ipynb").write_text("{}")
    assert [p.as_posix() for p in site.course_notebooks(tmp_path)] == [
        "notebooks/00_start_here.ipynb", f"notebooks/student/{EXERCISE}.ipynb",
        "notebooks/12_segmentation_architectures.ipynb"]


def test_a_lettered_notebook_sits_between_its_neighbours_with_its_own_number(tmp_path):
    (tmp_path / "notebooks" / "student").mkdir(parents=True)
    for name in ("05_c", "04b_b", "04_a", "4_not_numbered", "04bb_not_numbered", "notes"):
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text("{}")
    assert [p.name for p in site.course_notebooks(tmp_path)] == ["04_a.ipynb", "04b_b.ipynb", "05_c.ipynb"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 04b · Backprop by hand")])
    assert site.notebook_title(nb) == "Backprop by hand"
    table = ("| # | notebook | what it covers |\n|---|---|---|\n| 04 | [a](notebooks/04_a.ipynb) | layers |\n"
             "| 04b | [b](notebooks/04b_b.ipynb) | backprop |\n")
    assert site.readme_summaries(table) == {"04": "layers", "04b": "backprop"}
    entries = [(Path("notebooks/04_a.ipynb"), "A"), (Path("notebooks/04b_b.ipynb"), "B")]
    page = site.landing_page("# T\n\nIntro.\n\n" + table, entries)
    assert "| 04 | [A](notebooks/04_a.ipynb) | layers |" in page and "| 04b | [B](notebooks/04b_b.ipynb) | backprop |" in page


def test_a_missing_student_version_is_an_error_that_says_what_to_run(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / f"{EXERCISE}.ipynb").write_text("{}")
    with pytest.raises(FileNotFoundError, match="student_version"):
        site.course_notebooks(tmp_path)


def test_the_colab_badge_becomes_a_text_link_to_the_same_notebook():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        f"# 08 · Title\n\n{badge('notebooks/08_x.ipynb')}\n\nText.")])
    out = site.site_notebook(nb).cells[0].source
    assert out == f"# 08 · Title\n\n[Open this notebook in Colab]({colab_url('notebooks/08_x.ipynb')})\n\nText."
    assert site.notebook_title(nb) == "Title"


def test_a_saved_widget_shows_its_saved_values_and_the_figure_saved_for_them():
    nb = nbformat.read(NB08, as_version=4)
    i = _widget_cell(nb)
    models = nb.metadata["widgets"][site.WIDGET_STATE]["state"]
    saved_png = next(o["data"]["image/png"] for m in models.values() if m["model_name"] == "OutputModel"
                     for o in m["state"]["outputs"] if "image/png" in o.get("data", {}))
    staged = site.site_notebook(nb)
    note, *rest = staged.cells[i].outputs
    text = note.data["text/html"]
    assert site.WIDGET_NOTE_CLASS in text and "work when the notebook runs" in text
    # 08 sets dilation 2 and depth 3 in code: the saved values, not the sliders' defaults
    for name, value in [("kernel", 3), ("stride", 1), ("dilation", 2), ("depth", 3)]:
        assert f'aria-label="{name}"><span>{value} (from' in text, name
    assert [o.data["image/png"] for o in rest if "image/png" in o.get("data", {})] == [saved_png]
    assert "widgets" not in staged.metadata  # no widget JavaScript on the page
    assert "interactive(children=" not in json.dumps(staged)
    assert "widgets" in nb.metadata  # the notebook itself is not changed


def test_a_widget_without_saved_state_says_the_slider_works_when_the_notebook_runs():
    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("w", outputs=[nbformat.v4.new_output(
        "display_data", data={site.WIDGET_VIEW: view, "text/plain": "interactive(children=(IntSlider(value=3),))"})])])
    outputs = site.site_notebook(nb).cells[0].outputs
    assert len(outputs) == 1
    assert "The slider works when the notebook runs" in outputs[0].data["text/html"]
    assert "interactive(children=" not in json.dumps(outputs)


def test_a_dropdown_is_drawn_at_its_saved_choice():
    models = {"box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_dd", "IPY_MODEL_out"]}},
              "dd": {"model_name": "DropdownModel", "state": {"description": "pattern", "index": 1,
                                                               "_options_labels": ["RGGB", "BGGR"]}},
              "out": {"model_name": "OutputModel", "state": {"outputs": [
                  {"output_type": "stream", "name": "stdout", "text": "BGGR chosen\n"}]}}}
    note, saved = site.static_widget({"model_id": "box"}, models)
    assert "<option>RGGB</option><option selected>BGGR</option>" in note.data["text/html"]
    assert saved.text == "BGGR chosen\n"


def test_readme_sections_and_summaries():
    readme = "# T\n\nIntro [lic](LICENSE).\n\n## The notebooks\n\n| # | notebook | what it covers |\n|---|---|---|\n" \
             "| 00 | [a](notebooks/00_a.ipynb) | what |\n" \
             "\n## For instructors: grading\n\nText.\n\n```bash\n## not a heading\n```\n### Sub\n\n## Next\n"
    assert site.readme_summaries(readme) == {"00": "what"}
    assert site.readme_section(readme, "") == "Intro [lic](LICENSE).\n"
    section = site.readme_section(readme, "For instructors")
    assert section.startswith("## For instructors: grading") and "## Next" not in section
    with pytest.raises(ValueError, match="no section '## Releasing"):
        site.readme_section(readme, "Releasing")


README_ROW = re.compile(r"^\| (\d\d[a-z]?) \| \[[^\]]+\]\(notebooks/[^)]+\.ipynb\) \| (.+?) \| \[!\[Open In Colab\]")


def test_every_notebook_summary_is_its_own_readme_row():
    """Read independently of readme_summaries: the notebook table's rows, as a person reads them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(m.groups() for line in readme.splitlines() if (m := README_ROW.match(line)))
    assert len(rows) == len(site.course_notebooks(ROOT)) >= 14
    assert site.readme_summaries(readme) == rows
    assert rows["00"].startswith("environment check")  # not "02", the time table's header cell


def test_only_the_notebook_table_gives_summaries():
    table = "| # | notebook | what it covers |\n|---|---|---|\n| 00 | [a](notebooks/00_a.ipynb) | what |\n"
    times = "\n| 00 | 01 | 02 |\n|---|---|---|\n| 1 s | 2 s | 3 s |\n"
    assert site.readme_summaries("# T\n\n" + table + times) == {"00": "what"}
    assert site.readme_summaries("# T\n\n" + times + "\n" + table) == {"00": "what"}
    with pytest.raises(ValueError, match="no notebook table"):
        site.readme_summaries("# T\n" + times)
    with pytest.raises(ValueError, match="two rows for notebook 00"):
        site.readme_summaries("# T\n\n" + table + "| 00 | [b](notebooks/00_b.ipynb) | again |\n")


def test_the_landing_page_needs_a_readme_row_for_every_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    entries = [(Path("notebooks/99_new.ipynb"), "New")]
    with pytest.raises(ValueError, match="no row for notebooks/99_new.ipynb"):
        site.landing_page(readme, entries)


# ------------------------------------------------------------------------------------- a tiny site

def _tiny_repo(root: Path, markdown: str) -> None:
    """A repository with one notebook (title, badge, ``markdown``, a figure, a cell that fails if it runs)
    and a README."""
    (root / "notebooks").mkdir(parents=True)
    nb = nbformat.read(ROOT / "notebooks" / "00_start_here.ipynb", as_version=4)
    figure = next(c for c in nb.cells if c.cell_type == "code" and any("image/png" in o.get("data", {})
                                                                         for o in c.outputs))
    nb.cells = [nbformat.v4.new_markdown_cell(f"# 00 · Tiny\n\n{badge('notebooks/00_tiny.ipynb')}\n\n## Math\n\n"
                                              f"$c = a + b$\n\n{markdown}"), figure,
                nbformat.v4.new_code_cell("raise RuntimeError('the site build must not run the notebooks')")]
    nbformat.write(nb, root / "notebooks" / "00_tiny.ipynb")
    (root / "README.md").write_text("# Tiny\n\nA tiny course.\n\n## The notebooks\n\n| # | notebook | what it covers |\n"
                                    "|---|---|---|\n| 00 | [00_tiny](notebooks/00_tiny.ipynb) | one page |\n\n"
                                    "## For instructors\n\nSee the [license](LICENSE).\n")


def test_the_build_fails_on_a_missing_image_a_broken_reference_or_any_warning(tmp_path):
    require_site_stack()
    _tiny_repo(tmp_path / "repo", "![a figure](figures/missing.png)\n\nSee [notebook 99](99_missing.ipynb) and "
                                  "[a section](#no-such-section).\n\n#### A skipped heading level\n")
    site.stage(tmp_path / "repo", tmp_path / "src")
    staged = (tmp_path / "src" / "notebooks" / "00_tiny.ipynb").read_text(encoding="utf-8")
    assert "colab-badge.svg" not in staged and "Open this notebook in Colab" in staged
    assert "github.com/cnn-seg-course" in (tmp_path / "src" / "instructors.md").read_text()  # LICENSE, absolute
    result = site.build(tmp_path / "src", tmp_path / "out", capture=True)
    assert result.returncode != 0
    for warning in ["image file not readable: notebooks/figures/missing.png",
                    "cross-reference target not found: '99_missing.ipynb'",
                    "cross-reference target not found: 'no-such-section'",
                    "Non-consecutive header level increase; H2 to H4"]:
        assert warning in result.stderr, (warning, result.stderr[-3000:])
    # the tiny site is clean otherwise: no other warning, and the failing cell was not run
    assert result.stderr.count("WARNING") == 4, result.stderr[-3000:]
