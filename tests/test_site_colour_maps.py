"""Colour that colour-blind readers can tell apart (issue 25, WCAG 1.4.1): the conventions check fails on a
notebook cell that names a rainbow or red-green colour map, and course_utils names none."""
from __future__ import annotations

from pathlib import Path

import nbformat

from course_utils.authoring import conventions
from course_utils.authoring.conventions import unsafe_colour_maps

ROOT = Path(__file__).resolve().parent.parent


def test_unsafe_colour_maps_finds_every_way_of_naming_one():
    code = ('ax.imshow(x, cmap="jet")\nplt.get_cmap( "hsv")\nmatplotlib.colormaps["turbo_r"]\nc = cm.nipy_spectral(0.5)\n'
            "ax.imshow(y, cmap = 'Spectral')\nax.imshow(z, cmap=cmap)")
    assert unsafe_colour_maps(code) == ["jet", "hsv", "turbo_r", "nipy_spectral", "Spectral"]


def test_safe_colour_maps_pass():
    code = ('ax.imshow(x, cmap="viridis")\nax.imshow(x, cmap="magma")\nax.imshow(x, cmap="coolwarm", vmin=-1)\n'
            'ax.imshow(x, cmap="gray_r")\nax.imshow(x, cmap="tab10")\njet_lag = 3  # jet, rainbow in a comment')
    assert unsafe_colour_maps(code) == []


def test_the_conventions_check_fails_on_a_rainbow_colour_map(tmp_path):
    rel = "notebooks/99_tmp.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# A title\n\n{conventions.badge(rel)}\n\n## Learning goals\n- one"),
                nbformat.v4.new_code_cell(conventions.SETUP_SOURCE, execution_count=1),
                nbformat.v4.new_code_cell('ax.imshow(heat, cmap="viridis")', execution_count=2),
                nbformat.v4.new_markdown_cell("## Try it\nChange a number.\n\n## Summary\nDone.")]
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    assert conventions.problems(path, tmp_path) == []
    nb.cells[2].source = 'ax.imshow(heat, cmap="jet")'  # planted
    nbformat.write(nb, path)
    found = conventions.problems(path, tmp_path)
    assert len(found) == 1 and "cell 2 uses the colour map 'jet'" in found[0] and "viridis" in found[0]


def test_course_utils_names_no_colour_map_colour_blind_readers_cannot_read():
    found = {p.relative_to(ROOT).as_posix(): names for p in sorted((ROOT / "course_utils").rglob("*.py"))
             if (names := unsafe_colour_maps(p.read_text(encoding="utf-8")))
             and p.name != "conventions.py"}  # which lists them
    assert found == {}
