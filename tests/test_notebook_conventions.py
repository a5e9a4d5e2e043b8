"""Every notebook follows the course conventions (see README: "Notebook conventions")."""
from pathlib import Path

import nbformat
import pytest

from course_utils import notebooks as nbtool

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = nbtool.notebook_paths(ROOT)


def test_there_are_notebooks():
    assert any(p.name.startswith("00_") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_notebook_follows_conventions(path):
    assert nbtool.problems(path, ROOT) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_badge_and_setup_cell_are_current(path):
    nb = nbformat.read(path, as_version=4)
    assert not nbtool.refresh(nb, nbtool.relpath_of(path, ROOT)), "run `python -m course_utils.notebooks`"


# ---- the checker itself, on temporary notebooks --------------------------------------------

def _good_notebook(rel: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# A title\n\n{nbtool.badge(rel)}\n\n## Learning goals\n- one"),
        nbformat.v4.new_code_cell(nbtool.SETUP_SOURCE, execution_count=1),
        nbformat.v4.new_markdown_cell("## Try it\nChange a number.\n\n## Summary\nDone."),
    ]
    return nb


def _write(tmp_path, nb, rel="notebooks/99_tmp.ipynb"):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_checker_accepts_a_good_notebook(tmp_path):
    path = _write(tmp_path, _good_notebook("notebooks/99_tmp.ipynb"))
    assert nbtool.problems(path, tmp_path) == []


def test_checker_rejects_a_notebook_without_badge(tmp_path):
    nb = _good_notebook("notebooks/99_tmp.ipynb")
    nb.cells[0].source = "# A title\n\n## Learning goals\n- one"
    problems = nbtool.problems(_write(tmp_path, nb), tmp_path)
    assert any("badge" in p for p in problems)


def test_checker_rejects_a_badge_that_points_elsewhere(tmp_path):
    nb = _good_notebook("notebooks/01_other.ipynb")
    problems = nbtool.problems(_write(tmp_path, nb), tmp_path)
    assert any("badge" in p for p in problems)


def test_checker_rejects_errors_paths_unexecuted_cells_and_missing_setup(tmp_path):
    nb = _good_notebook("notebooks/99_tmp.ipynb")
    nb.cells[1].source = "import course_utils"
    bad = nbformat.v4.new_code_cell("1/0", execution_count=2)
    bad.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])]
    nb.cells.append(bad)
    nb.cells.append(nbformat.v4.new_code_cell("open('/home/alice/data.csv')"))
    nb.cells.append(nbformat.v4.new_code_cell("print(1)", execution_count=None))
    problems = "\n".join(nbtool.problems(_write(tmp_path, nb), tmp_path))
    for expected in ("setup cell", "error output", "absolute machine path", "never executed"):
        assert expected in problems


def test_checker_rejects_big_and_invalid_notebooks(tmp_path):
    nb = _good_notebook("notebooks/99_tmp.ipynb")
    nb.cells.append(nbformat.v4.new_markdown_cell("x" * 3_100_000))
    assert any("3 MB" in p for p in nbtool.problems(_write(tmp_path, nb), tmp_path))
    broken = tmp_path / "notebooks" / "98_broken.ipynb"
    broken.write_text("{not json")
    assert any("not a valid notebook" in p for p in nbtool.problems(broken, tmp_path))


def test_checker_wants_goals_try_it_and_summary(tmp_path):
    nb = _good_notebook("notebooks/99_tmp.ipynb")
    nb.cells[2].source = "Nothing here."
    problems = "\n".join(nbtool.problems(_write(tmp_path, nb), tmp_path))
    assert "Try it" in problems and "Summary" in problems


def test_refresh_adds_badge_and_setup_and_is_idempotent(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\nText"), nbformat.v4.new_code_cell("x = 1")]
    assert nbtool.refresh(nb, "notebooks/05_x.ipynb")
    assert nbtool.badge("notebooks/05_x.ipynb") in nb.cells[0].source
    assert nb.cells[1].source == nbtool.SETUP_SOURCE and nb.cells[2].source == "x = 1"
    assert not nbtool.refresh(nb, "notebooks/05_x.ipynb")
    assert nbtool.refresh(nb, "notebooks/06_moved.ipynb")  # a renamed notebook gets a new badge
    assert nb.cells[0].source.count("colab-badge.svg") == 1


def test_refresh_needs_a_title_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    with pytest.raises(ValueError, match="markdown"):
        nbtool.refresh(nb, "notebooks/x.ipynb")


def test_setup_cell_is_colab_only_for_installs():
    src = nbtool.SETUP_SOURCE
    assert 'if "google.colab" in sys.modules' in src and "pip install" in src
    assert "torch" not in src.split("import course_utils")[0].replace("torch stays", "")
